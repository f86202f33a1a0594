"""What the gateway's HTTP server tolerates from a client, and how it stops the rest.

:class:`GatewayLimits` is the one place that names every bound, its unit and default
(``paystab gateway --limit name=value`` sets them; docs/security.md lists them). aiohttp
already bounds the request line, each header and the header count; what it does not do
is time a client out while it sends its request head, or limit connections per client.
:class:`GuardedRequestHandler` adds both to aiohttp's own protocol: a head deadline armed
when a connection opens and whenever the first bytes of a new request arrive, disarmed
once the head is parsed (slowloris: closed at the deadline, with a 408 if it had started),
and a per-IP connection count (over it: one 429 and the connection is closed).
:func:`read_body` reads a request body within the size limit and the body deadline, and
maps every way a body can be broken (length, encoding, time) to a problem. Costs nothing
measurable per request: a request whose head arrives in one segment never arms a timer.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import TypeAdapter

from paystab.exceptions import InvalidInput
from paystab.stack.payment_api import MAX_BODY_BYTES, MAX_JSON_DEPTH, PROBLEM_TYPE, RequestProblem

ENCODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate"})


@dataclass(frozen=True)
class GatewayLimits:
    """Every bound on what one client can make the gateway hold (units in the names)."""

    max_body_bytes: int = MAX_BODY_BYTES  # after decompression; 413 above
    max_json_depth: int = MAX_JSON_DEPTH  # nested arrays/objects; 400 above
    max_header_bytes: int = 8190  # the request line, and each header line; 400 above
    max_headers: int = 64  # header lines per request; 400 above
    header_read_timeout_s: float = 10.0  # connection open / first byte → full request head
    body_read_timeout_s: float = 10.0  # handler starts reading → full body; 408 after
    idle_timeout_s: float = 60.0  # keep-alive connection with no request in it
    max_connections_per_ip: int = 4096  # open connections from one client address; 429 above

    @classmethod
    def from_pairs(cls, pairs: tuple[str, ...] | list[str], flag: str = "--limit") -> GatewayLimits:
        """Defaults overridden by ``name=value`` strings (``flag``); exit 2 on a bad one."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, float | int] = {}
        for pair in pairs:
            name, sep, text = pair.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in known:
                raise InvalidInput(f"unknown gateway limit {pair!r}", field=flag,
                                   expected="name=value with name one of " + ", ".join(known))
            try:
                number = float(text) if name.endswith("_s") else int(text)
            except ValueError:
                raise InvalidInput(f"{name} must be a number, got {text!r}", field=flag,
                                   expected="a positive number") from None
            if not math.isfinite(number) or number <= 0:
                raise InvalidInput(f"{name} must be positive, got {text!r}", field=flag,
                                   expected="a positive number")
            values[name] = number
        # names and types are checked above; the adapter builds the dataclass typed, where
        # cls(**values) needed a `type: ignore` (a typo in a name would pass mypy)
        return TypeAdapter(cls).validate_python(values)

    def handler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiohttp's request handler (via ``AppRunner``)."""
        return {"max_line_size": self.max_header_bytes, "max_field_size": self.max_header_bytes,
                "max_headers": self.max_headers, "keepalive_timeout": self.idle_timeout_s,
                "lingering_time": self.body_read_timeout_s}


def _raw_problem(status: int, reason: str, slug: str, detail: str) -> bytes:
    body = json.dumps({"type": PROBLEM_TYPE + slug, "title": reason, "status": status,
                       "detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class ConnectionGuard:
    """Shared by every connection of one server: the limits and the per-IP counts."""

    def __init__(self, limits: GatewayLimits) -> None:
        self.limits = limits
        self.per_ip: dict[str, int] = {}
        self.refused_total = 0
        self.head_timeouts_total = 0
        self.too_many = _raw_problem(429, "Too Many Requests", "too-many-connections",
                                     f"at most {limits.max_connections_per_ip} connections per client")
        self.head_timeout = _raw_problem(408, "Request Timeout", "header-timeout",
                                         f"the request head took over {limits.header_read_timeout_s:g} s")

    def admit(self, ip: str) -> bool:
        count = self.per_ip.get(ip, 0)
        if count >= self.limits.max_connections_per_ip:
            self.refused_total += 1
            return False
        self.per_ip[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self.per_ip.get(ip, 0) - 1
        if count > 0:
            self.per_ip[ip] = count
        else:
            self.per_ip.pop(ip, None)

    def collector(self) -> Collector:
        """What the guard did, for the gateway's /metrics."""
        return _GuardCollector(self)


class _GuardCollector(Collector):
    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard

    def collect(self) -> Iterator[Metric]:
        guard = self.guard
        yield GaugeMetricFamily("paystab_gateway_open_connections", "Client connections open now",
                                value=sum(guard.per_ip.values()))
        yield CounterMetricFamily("paystab_gateway_connections_refused",
                                  "Connections refused with 429: over max_connections_per_ip",
                                  value=guard.refused_total)
        yield CounterMetricFamily("paystab_gateway_request_head_timeouts",
                                  "Connections closed for not sending a request head within "
                                  "header_read_timeout_s (slowloris)", value=guard.head_timeouts_total)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol with a request-head deadline and a per-IP connection limit."""

    __slots__ = ("_client_ip", "_guard", "_head_bytes", "_head_timer")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._client_ip: str | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard.admit(ip):
            assert isinstance(transport, asyncio.Transport)
            transport.write(self._guard.too_many)
            self.force_close()
            transport.close()
            return
        self._client_ip = ip
        self._arm(False)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._client_ip is not None:
            self._guard.release(self._client_ip)
            self._client_ip = None
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:  # a head is complete: its deadline is met
            self._disarm()
        elif self._head_timer is None:
            if not (self._request_in_progress or self._messages):
                self._arm(True)  # the first bytes of a new request
        else:
            self._head_bytes = True

    def _arm(self, started: bool) -> None:
        self._head_bytes = started
        self._head_timer = self._loop.call_later(self._guard.limits.header_read_timeout_s,
                                                 self._head_deadline)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._request_in_progress or self._messages or self.transport is None:
            return  # a request is being handled: its body has a deadline of its own
        transport = self.transport
        self._guard.head_timeouts_total += 1
        if self._head_bytes:
            assert isinstance(transport, asyncio.Transport)
            transport.write(self._guard.head_timeout)
        self.force_close()
        transport.close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Errors aiohttp finds itself (bad request line, header too long) as problem+json."""
        if status >= 500:  # a bug of ours, not the client's: keep aiohttp's logging
            super().handle_error(request, status, exc, message)
        slug = "malformed-request" if status < 500 else "internal-error"
        detail = (message or "").splitlines()[0][:200] if status < 500 else "unexpected error"
        body = {"type": PROBLEM_TYPE + slug, "title": "Bad request" if status < 500 else "Server error",
                "status": status, "detail": detail}
        response = web.Response(status=status, body=json.dumps(body).encode(),
                                content_type="application/problem+json")
        response.force_close()
        return response


class GuardedSite(web.TCPSite):
    """A TCP site whose connections are :class:`GuardedRequestHandler` instances."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard,
                 handler_kwargs: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._guard_args = (guard, handler_kwargs)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        assert server is not None
        guard, handler_kwargs = self._guard_args
        loop = asyncio.get_running_loop()

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, guard, loop=loop, **handler_kwargs)

        self._server = await loop.create_server(protocol, self._host, self._port,
                                                backlog=self._backlog,
                                                reuse_address=self._reuse_address)

    __slots__ = ("_guard_args",)


async def read_body(request: web.Request, limits: GatewayLimits) -> bytes:
    """The request body, decompressed, within ``max_body_bytes`` and ``body_read_timeout_s``."""
    encoding = request.headers.get("Content-Encoding")
    if encoding is not None and encoding.strip().lower() not in ENCODINGS:
        raise RequestProblem(415, "unsupported-content-encoding", "Unsupported content encoding",
                             f"Content-Encoding must be one of {', '.join(sorted(ENCODINGS))}",
                             field="Content-Encoding")
    length = request.content_length
    if length is not None and length > limits.max_body_bytes:
        raise _too_large(f"Content-Length {length}", limits)
    content = request.content
    try:
        if content.is_eof():  # everything arrived with the head (nearly every payment)
            return _bounded(await content.read(), limits)
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(limits.body_read_timeout_s):
            while chunk := await content.readany():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise _too_large(f"over {size} bytes", limits)
                chunks.append(chunk)
        return b"".join(chunks)
    except TimeoutError:
        raise _close(RequestProblem(408, "body-timeout", "Request body timeout",
                                    f"the body did not arrive within {limits.body_read_timeout_s:g} s")) from None
    except (HttpProcessingError, RequestPayloadError, ConnectionError) as exc:
        raise _close(RequestProblem(400, "bad-body", "Unreadable request body",
                                    f"the body could not be read as sent ({_reason(exc)})",
                                    field="Content-Encoding" if encoding else None)) from None


def _bounded(raw: bytes, limits: GatewayLimits) -> bytes:
    if len(raw) > limits.max_body_bytes:
        raise _too_large(f"{len(raw)} bytes", limits)
    return raw


def _too_large(what: str, limits: GatewayLimits) -> RequestProblem:
    return _close(RequestProblem(413, "body-too-large", "Request body too large",
                                 f"the body is {what}; at most {limits.max_body_bytes} bytes are accepted"))


def _close(problem: RequestProblem) -> RequestProblem:
    problem.close_connection = True
    return problem


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = getattr(cause, "message", None) or str(cause) or type(cause).__name__
    return str(text).splitlines()[0][:120] if str(text).strip() else type(cause).__name__
