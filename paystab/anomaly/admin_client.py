"""A small synchronous client of the gateway admin API (``stack/endpoints.py`` documents it).

``GET /admin/providers``, ``POST /admin/providers/{name}/drain`` and ``.../restore`` with a
``{"reason", "source"}`` body and an optional bearer token, through :mod:`paystab.httpclient`
(timeouts, no environment proxy for a token or loopback, works in a gevent-patched
process). Failures become :class:`EnvironmentProblem` (the gateway is down or refuses) —
the controller decides what to do with them.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from paystab import httpclient
from paystab.exceptions import EnvironmentProblem


class GatewayAdmin:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            reply = httpclient.request(method, f"{self.base_url}{path}", body,
                                       token=self.token, timeout_s=self.timeout_s)
        except httpclient.Unreachable as exc:
            raise EnvironmentProblem(
                f"gateway admin API at {httpclient.safe_url(self.base_url)} does not answer: "
                f"{exc.message}",
                hint="is the gateway running, and is --admin-url / the ready file right?",
            ) from None
        reply.expect_ok(f"gateway admin {method} {path}")
        if reply.body is None:
            return {}
        if isinstance(reply.body, str):
            raise EnvironmentProblem(f"gateway admin {path} answered non-JSON")
        return reply.body

    def providers(self) -> list[dict[str, Any]]:
        data = self._call("GET", "/admin/providers")
        providers = data.get("providers") if isinstance(data, dict) else None
        if not isinstance(providers, list):
            raise EnvironmentProblem("gateway admin /admin/providers: no 'providers' list")
        return [p for p in providers if isinstance(p, dict)]

    def drain(self, name: str, reason: str, source: str = "paystab-controller") -> Any:
        quoted = urllib.parse.quote(name, safe="")
        return self._call("POST", f"/admin/providers/{quoted}/drain",
                          {"reason": reason[:500], "source": source})

    def restore(self, name: str, reason: str, source: str = "paystab-controller") -> Any:
        quoted = urllib.parse.quote(name, safe="")
        return self._call("POST", f"/admin/providers/{quoted}/restore",
                          {"reason": reason[:500], "source": source})
