"""A tiny synchronous JSON-over-HTTP client for control APIs (provider admin, Toxiproxy).

Fault backends talk to loopback control APIs a few times per fault, from a signal-safe
path (the journal, ``chaos clear``), so this is plain ``urllib`` with short timeouts and
no environment proxies (an ``HTTP_PROXY`` must never see a loopback control call).
A refused connection is an :class:`EnvironmentProblem` naming the URL; an HTTP error
status is returned to the caller, which knows which ones are fine (404 on a delete).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from paystab.exceptions import EnvironmentProblem

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, the raw text when not JSON, None when empty


class Unreachable(EnvironmentProblem):
    """The control API did not answer (refused, reset, timed out)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}",
                         hint="is the service running, and is the address right?")
        self.url = url
        self.refused = "refused" in reason.lower()


def call(method: str, url: str, body: Any = None, *, timeout_s: float = 5.0,
         token: str | None = None) -> Reply:
    """One request; JSON in and out. Raises :class:`Unreachable` when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return Reply(response.status, _parse(response.read()))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, _parse(exc.read()))
    except urllib.error.URLError as exc:
        raise Unreachable(url, str(exc.reason)) from None
    except (OSError, TimeoutError) as exc:
        raise Unreachable(url, str(exc) or type(exc).__name__) from None


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def error_text(reply: Reply) -> str:
    """The ``error`` field of a JSON error body, or the body itself."""
    if isinstance(reply.body, dict) and "error" in reply.body:
        return str(reply.body["error"])
    return str(reply.body)[:200]
