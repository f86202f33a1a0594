"""The one door for outbound control calls: fault APIs, admin APIs, /metrics, Prometheus.

Every HTTP call paystab makes to *control* something (a simulator's fault API, a
Toxiproxy API, the gateway's admin API, a ``/metrics`` scrape, the Prometheus HTTP API,
a drill's target and probes) goes through :func:`request`. It owns four rules:

* **Timeouts**: ``timeout_s`` bounds each phase (connect, each read, each write); there
  is no call without one.
* **The token**: ``token`` becomes ``Authorization: Bearer <token>`` and is sent only to
  the URL given; redirects are never followed (so it never travels to a ``Location``).
  It never appears in a message, a URL or a log line (:func:`safe_url` strips userinfo).
* **Proxies**: environment proxies (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
  ``.netrc``) are ignored for a loopback host and for any call that carries a token: a
  proxy must never see a control call to this machine nor a bearer token. An untokened
  call to another host honours them, as any HTTP tool would.
* **Errors**: nothing answering (refused, reset, timed out, DNS) is :class:`Unreachable`
  (an :class:`EnvironmentProblem`, exit 4) naming the URL; an HTTP status is a
  :class:`Reply` the caller judges, with :meth:`Reply.expect_ok` as the common mapping
  (401/403 → "token missing or wrong", anything else → the status and the error text).

``via`` pins the address contacted: the caller resolves the host once (the blast radius
is checked on that address, :mod:`paystab.chaos.address`) and the connection goes to it,
with the original ``Host`` header (and SNI for https), so a DNS answer that changes
between check and call changes nothing.

Why httpx: it has per-phase timeouts, ``trust_env`` to switch environment proxies off per
client, no redirect following by default, typed exceptions for connect / timeout /
protocol failures, and its sync client runs on plain sockets, so it works unchanged in a
process gevent has monkey-patched (the drill process under Locust; tested in
``tests/test_httpclient.py``). urllib has one timeout per socket operation and only a
global opener switch for proxies — four hand-written wrappers of it drifted apart, and one
sent a bearer token to ``HTTP_PROXY``. Each call uses a fresh client (no shared pool,
so no lock a signal handler or a greenlet could find held). Measured on loopback (2 shared
cores, 300 GETs of a small JSON body after a warm-up): 1.6-1.8 ms median per call, against
0.6-0.8 ms for a bare urllib opener; building and closing the client is 0.06 ms of that,
the rest is httpx's own request path, which a shared pool would not remove. Control calls
are a few per second at most, so this is well under 1 % of a core.
"""

from __future__ import annotations

import functools
import json
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from paystab.exceptions import EnvironmentProblem
from paystab.net import is_loopback_host as is_loopback_host  # the one rule, used here too

DEFAULT_TIMEOUT_S = 5.0
MAX_ERROR_TEXT = 300


def safe_url(url: str) -> str:
    """The URL for a message: no userinfo (a password), no query string (a secret?)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Reply:
    """An HTTP answer. ``body``: parsed JSON, the text when not JSON, None when empty."""

    status: int
    body: Any
    url: str = ""
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")

    def error_text(self) -> str:
        """The ``error`` field of a JSON error body, or the start of the body."""
        if isinstance(self.body, dict) and "error" in self.body:
            return str(self.body["error"])[:MAX_ERROR_TEXT]
        return str(self.body)[:MAX_ERROR_TEXT]

    def expect_ok(self, what: str) -> Reply:
        """Self when 2xx; else the one mapping of HTTP errors to :class:`EnvironmentProblem`."""
        if self.ok:
            return self
        if self.status in (401, 403):
            raise EnvironmentProblem(
                f"{what}: {safe_url(self.url)} refused the call (HTTP {self.status}): "
                "token missing or wrong",
                hint="pass the stack's admin token (--token, the ready file's admin_token or "
                     "PAYSTAB_ADMIN_TOKEN)")
        raise EnvironmentProblem(
            f"{what}: {safe_url(self.url)} answered HTTP {self.status}: {self.error_text()}")

    def json_object(self, what: str) -> dict[str, Any]:
        """The body as a JSON object, or EnvironmentProblem saying it is not one."""
        if not isinstance(self.body, dict):
            raise EnvironmentProblem(f"{what}: {safe_url(self.url)} did not answer a JSON "
                                     f"object (HTTP {self.status})")
        return self.body


class Unreachable(EnvironmentProblem):
    """Nothing answered: refused, reset, timed out, unknown host, broken HTTP."""

    def __init__(self, url: str, reason: str, *, refused: bool = False,
                 timed_out: bool = False) -> None:
        super().__init__(f"cannot reach {safe_url(url)}: {reason}",
                         hint="is the service running, and is the address right?")
        self.url = safe_url(url)
        self.refused = refused
        self.timed_out = timed_out


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Built once, on first use: httpx would load the CA bundle again for every client.
    return ssl.create_default_context()


def uses_environment_proxy(url: str, token: str | None) -> bool:
    """Whether a call may go through ``HTTP(S)_PROXY``: never for loopback or a token."""
    host = urllib.parse.urlsplit(url).hostname or ""
    return not token and not is_loopback_host(host)


def _pinned(url: str, via: str) -> tuple[str, str, str]:
    """(URL with ``via`` as its host, the original Host header, the original host name)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{via}]" if ":" in via else via
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), parts.netloc.rpartition("@")[2], host


def request(method: str, url: str, body: Any = None, *, token: str | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S, params: Mapping[str, str] | None = None,
            accept: str = "application/json", content: bytes | None = None,
            headers: Mapping[str, str] | None = None, via: str | None = None) -> Reply:
    """One control call; see the module docstring for the rules it enforces.

    ``body`` is sent as JSON (``content`` as raw bytes instead); ``via`` is an IP address
    to connect to instead of resolving the URL's host. Raises :class:`Unreachable` when
    nothing answers; any HTTP status is returned.
    """
    send_headers = {"Accept": accept, **(headers or {})}
    if token:
        send_headers["Authorization"] = f"Bearer {token}"
    data = content
    if body is not None:
        data = json.dumps(body).encode()
        send_headers.setdefault("Content-Type", "application/json")
    target = url
    extensions: dict[str, Any] = {}
    if via is not None:
        target, send_headers["Host"], original = _pinned(url, via)
        if target.startswith("https:"):
            extensions["sni_hostname"] = original
    trust_env = uses_environment_proxy(url, token) and via is None
    try:
        with httpx.Client(trust_env=trust_env, follow_redirects=False,
                          timeout=httpx.Timeout(timeout_s),
                          verify=_tls_context()) as client:
            response = client.request(method, target, content=data, params=params,
                                      headers=send_headers, extensions=extensions or None)
    except httpx.ConnectError as exc:
        text = str(exc) or type(exc).__name__
        raise Unreachable(url, text, refused="refused" in text.lower()) from None
    except httpx.TimeoutException as exc:
        raise Unreachable(url, f"timed out after {timeout_s:g}s ({type(exc).__name__})",
                          timed_out=True) from None
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        raise Unreachable(url, str(exc) or type(exc).__name__) from None
    raw = response.content
    content_type = response.headers.get("content-type", "")
    return Reply(response.status_code, _parse(raw, content_type), url, content_type,
                 dict(response.headers), raw)


def _parse(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "json" in content_type or raw[:1] in (b"{", b"["):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", errors="replace")


def get_status(url: str, timeout_s: float = 2.0, token: str | None = None) -> int:
    """The HTTP status of ``GET url``, 0 when nothing answers (probes, health checks)."""
    try:
        return request("GET", url, token=token, timeout_s=timeout_s, accept="*/*").status
    except Unreachable:
        return 0
