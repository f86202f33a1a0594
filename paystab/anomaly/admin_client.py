"""A small synchronous client of the gateway admin API (``stack/endpoints.py`` documents it).

``GET /admin/providers``, ``POST /admin/providers/{name}/drain`` and ``.../restore`` with a
``{"reason", "source"}`` body and an optional bearer token. urllib only, so it works the same
in a plain process and in a gevent-patched one. Failures become :class:`EnvironmentProblem`
(the gateway is down or refuses) — the controller decides what to do with them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from paystab.exceptions import EnvironmentProblem


class GatewayAdmin:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", errors="replace")
            raise EnvironmentProblem(
                f"gateway admin {method} {path} answered HTTP {exc.code}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise EnvironmentProblem(
                f"gateway admin API at {self.base_url} does not answer: {exc}",
                hint="is the gateway running, and is --admin-url / the ready file right?",
            ) from None
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise EnvironmentProblem(f"gateway admin {path} answered non-JSON") from None

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
