"""The loopback admin API of a providers process: runtime faults and metrics.

Endpoints (the contract is in ``stack/endpoints.py``)::

    GET    /admin/providers                      {"providers": [{"name", "url", "dialect",
                                                  "methods", "faults"}]}
    GET    /admin/providers/{name}/faults        {"faults": [Fault...]}
    POST   /admin/providers/{name}/faults        Fault -> 201 Fault (with "id"); 400 on an
                                                 invalid fault, 409 on a duplicate id
    DELETE /admin/providers/{name}/faults/{id}   204, 404 if no such fault
    DELETE /admin/providers/{name}/faults        204 (clear that provider's faults)
    DELETE /admin/faults                         204 (clear every provider's faults)
    GET    /metrics                              Prometheus text exposition
    GET    /healthz                              {"status": "ok", "providers": n}

Errors are ``{"error": reason}``. With a token, every ``/admin/`` request needs
``Authorization: Bearer <token>`` (401 otherwise). ``/metrics`` needs it too when the
admin listener is bound off loopback (``metrics_need_token``): the exposition names every
provider, its faults and its traffic. ``/healthz`` stays open for liveness probes (it says
only "ok" and how many providers run).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from paystab.stack.providers.faults import FaultConflict, FaultError
from paystab.stack.providers.metrics import SimMetrics
from paystab.stack.providers.server import SimProvider

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class AdminApi:
    def __init__(self, providers: dict[str, SimProvider], metrics: SimMetrics,
                 token: str | None, metrics_need_token: bool = False) -> None:
        self._providers = providers
        self._metrics = metrics
        self._token = token
        self._guarded = ("/admin/", "/metrics") if metrics_need_token else ("/admin/",)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024, middlewares=[self._auth])
        app.router.add_get("/admin/providers", self.list_providers)
        app.router.add_get("/admin/providers/{name}/faults", self.list_faults)
        app.router.add_post("/admin/providers/{name}/faults", self.add_fault)
        app.router.add_delete("/admin/providers/{name}/faults/{fault_id}", self.remove_fault)
        app.router.add_delete("/admin/providers/{name}/faults", self.clear_faults)
        app.router.add_delete("/admin/faults", self.clear_all)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.health)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is not None and request.path.startswith(self._guarded):
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {self._token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _error(401, "missing or wrong bearer token")
        return await handler(request)

    def _provider(self, request: web.Request) -> SimProvider:
        name = request.match_info["name"]
        provider = self._providers.get(name)
        if provider is None:
            known = ", ".join(self._providers)
            raise web.HTTPNotFound(text=json.dumps(
                {"error": f"unknown provider {name!r}; known: {known}"}),
                content_type="application/json")
        return provider

    async def list_providers(self, request: web.Request) -> web.Response:
        return web.json_response({"providers": [
            {"name": p.name, "url": p.url, "dialect": p.dialect.name,
             "methods": list(p.spec.methods), "faults": [f.to_json() for f in p.faults.active()]}
            for p in self._providers.values()]})

    async def list_faults(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        return web.json_response({"faults": [f.to_json() for f in provider.faults.active()]})

    async def add_fault(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return _error(400, "body is not JSON")
        try:
            fault = provider.faults.add(body, time.monotonic())
        except FaultConflict as exc:
            return _error(409, str(exc))
        except FaultError as exc:
            return _error(400, str(exc))
        return web.json_response(fault.to_json(), status=201)

    async def remove_fault(self, request: web.Request) -> web.Response:
        provider = self._provider(request)
        fault_id = request.match_info["fault_id"]
        if not provider.faults.remove(fault_id):
            return _error(404, f"no active fault {fault_id!r} on {provider.name}")
        return web.Response(status=204)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._provider(request).faults.clear()
        return web.Response(status=204)

    async def clear_all(self, request: web.Request) -> web.Response:
        for provider in self._providers.values():
            provider.faults.clear()
        return web.Response(status=204)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "providers": len(self._providers)})
