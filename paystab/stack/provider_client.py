"""One HTTP exchange with a provider, and what a failure means for the money.

The distinction that matters for payments is *did the provider see the request?*

* a **connect** failure (refused, connect timeout): it did not; retrying elsewhere is safe;
* a **response** failure (read timeout, connection dropped after sending, truncated body):
  it may have charged; the outcome is unknown until a status look-up by key says so.

:class:`ProviderClient` sends a dialect's :class:`HttpCall` and returns the raw answer or
raises :class:`ConnectFailed` / :class:`OutcomeUnknown`; the processor decides what to do.

Credentials and trust come from the provider's endpoint (the ready file): an ``https://``
provider with a ``ca_file`` is verified against that CA (``stack/tls.py``; system roots
otherwise), and with an ``api_key`` the dialect says how to present it — static headers
from ``dialect.client_auth_headers(api_key)`` (stripe: ``Authorization: Bearer``), or a
per-call signature from ``dialect.sign_call(call, api_key)`` (an HMAC over the body).
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import aiohttp

from paystab.stack.dialects.base import Dialect, HttpCall, uses_bearer_default
from paystab.stack.endpoints import ProviderEndpoint
from paystab.stack.tls import client_context


def abortive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A client socket whose close() is an abort (SO_LINGER 0): RST, unsent data dropped.

    When the gateway gives up on an attempt (response timeout) and closes the connection,
    a graceful close would leave the request in the kernel's send queue, and TCP would keep
    retransmitting it: behind a partition that heals later, the provider would receive the
    charge seconds after the gateway decided it never arrived and paid elsewhere — a double
    charge. Aborting the connection guarantees an abandoned request is never delivered late.
    """
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class ConnectFailed(Exception):
    """The request never reached the provider."""


class OutcomeUnknown(Exception):
    """The request may have reached the provider; ``kind`` is ``timeout`` or ``malformed``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class ProviderClient:
    def __init__(self, endpoint: ProviderEndpoint, dialect: Dialect,
                 session: aiohttp.ClientSession, connect_timeout_s: float,
                 loop_lag_s: Callable[[], float] | None = None) -> None:
        self.endpoint = endpoint
        # The gateway's own event-loop lateness right now (LoopLagMonitor.lag_s), to tell a
        # connect time-out the gateway caused from one the provider caused.
        self.loop_lag_s = loop_lag_s or (lambda: 0.0)
        self.late_connects_retried = 0
        self.dialect = dialect
        self.session = session
        self.base_url = endpoint.url.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        host_port = self.base_url.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        self.server_address = host or host_port
        https = self.base_url.startswith("https://")
        self.server_port = int(port) if port.isdigit() else (443 if https else 80)
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        # True = aiohttp's default verification (system roots); a context trusts the CA file
        self._ssl: ssl.SSLContext | bool = (client_context(endpoint.ca_file)
                                            if https and endpoint.ca_file else True)
        self._auth_headers: dict[str, str] = {}
        self._sign: Callable[[HttpCall], HttpCall] | None = None
        api_key = endpoint.api_key
        if api_key:
            static = getattr(dialect, "client_auth_headers", None)
            if static is not None:
                self._auth_headers = dict(static(api_key))
            elif uses_bearer_default(dialect):  # a simulator bound off loopback, no PSP scheme
                self._auth_headers = {"Authorization": f"Bearer {api_key}"}
            sign_call = getattr(dialect, "sign_call", None)
            if sign_call is not None:
                self._sign = lambda call: sign_call(call, api_key)

    def _timeout(self, timeout_s: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(timeout_s)
        if timeout is None:  # a handful of distinct values: response, look-up, void
            timeout = self._timeouts[timeout_s] = aiohttp.ClientTimeout(
                total=timeout_s, sock_connect=self.connect_timeout_s)
        return timeout

    async def send(self, call: HttpCall, timeout_s: float) -> tuple[int, str, bytes]:
        timeout = self._timeout(timeout_s)
        if self._sign is not None:
            call = self._sign(call)
        headers = {**call.headers, **self._auth_headers} if self._auth_headers else call.headers
        try:
            try:
                return await self._send_once(call, headers, timeout)
            except aiohttp.ConnectionTimeoutError:
                # A connect time-out while the gateway's own loop was late by half the limit
                # or more says nothing about the provider: on loopback or a LAN the handshake
                # completes in the kernel at once, and the time-out callback merely ran before
                # the completion did. Nothing reached the provider, so one more try is safe.
                if self.loop_lag_s() < self.connect_timeout_s / 2:
                    raise
                self.late_connects_retried += 1
                return await self._send_once(call, headers, timeout)
        except aiohttp.ConnectionTimeoutError as exc:
            raise ConnectFailed(f"connect timeout after {self.connect_timeout_s:.3f}s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"cannot connect: {exc.os_error}") from exc
        except TimeoutError as exc:
            raise OutcomeUnknown("timeout", f"no answer within {timeout_s:.3f}s") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise OutcomeUnknown("malformed", f"answer cut off: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise OutcomeUnknown("malformed", f"answer unusable: {type(exc).__name__}: {exc}") from exc

    async def _send_once(self, call: HttpCall, headers: dict[str, str],
                         timeout: aiohttp.ClientTimeout) -> tuple[int, str, bytes]:
        async with self.session.request(
            call.method, self.base_url + call.path, data=call.body or None,
            headers=headers, timeout=timeout, allow_redirects=False, ssl=self._ssl,
        ) as response:
            body = await response.read()
            return response.status, response.headers.get("Content-Type", ""), body
