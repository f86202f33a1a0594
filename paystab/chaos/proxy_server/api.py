"""The HTTP control API, compatible with Toxiproxy v2 (aiohttp).

Endpoints, JSON shapes, status codes and error bodies are Toxiproxy's, so its clients and
tooling work unchanged::

    GET  /proxies                      {name: proxy}
    POST /proxies                      201 proxy      (409 exists, 400 bad body)
    POST /populate                     201 {"proxies": [proxy...]}
    GET  /proxies/{p}                  proxy          (404)
    POST|PATCH /proxies/{p}            proxy          (update listen/upstream/enabled)
    DELETE /proxies/{p}                204
    GET  /proxies/{p}/toxics           [toxic]
    POST /proxies/{p}/toxics           200 toxic      (400 unknown type/stream, 409 exists)
    GET  /proxies/{p}/toxics/{t}       toxic          (404)
    POST|PATCH /proxies/{p}/toxics/{t} toxic          (update attributes/toxicity)
    DELETE /proxies/{p}/toxics/{t}     204
    POST /reset                        204            (enable all, remove all toxics)
    GET  /version                      {"version": ...}
    GET  /metrics                      Prometheus text (paystab's own metric names)
    GET  /openapi.json                 OpenAPI 3.1 of all of the above (``openapi.py``)

Errors are ``{"error": message, "status": code}``. Like Toxiproxy, requests whose
User-Agent looks like a browser get 403 (a web page must not be able to drive the proxy).
With a token configured every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from paystab import __version__
from paystab.chaos.proxy_server import errors
from paystab.chaos.proxy_server.collection import ProxyCollection
from paystab.chaos.proxy_server.errors import ApiError

VERSION = f"paystab-{__version__}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _body(request: web.Request) -> object:
    raw = await request.read()
    if not raw.strip():
        raise errors.bad_request_body("EOF")  # what Go's decoder says about an empty body
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request_body(str(exc)) from None


def build_app(
    collection: ProxyCollection, registry: CollectorRegistry, token: str | None = None
) -> web.Application:
    """The aiohttp application serving ``collection``."""
    expected_auth = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.headers.get("User-Agent", "").startswith("Mozilla/"):
                raise ApiError("User agent not allowed", 403)
            if expected_auth is not None:
                given = request.headers.get("Authorization", "").encode()
                if not hmac.compare_digest(given, expected_auth):
                    raise ApiError("missing or wrong bearer token", 401)
            return await handler(request)
        except ApiError as exc:
            return _json(exc.body(), exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _json({"error": exc.reason.lower(), "status": exc.status}, exc.status)

    async def proxy_index(request: web.Request) -> web.Response:
        return _json({name: p.to_json() for name, p in collection.proxies.items()})

    async def proxy_create(request: web.Request) -> web.Response:
        proxy = await collection.create(await _body(request))
        return _json(proxy.to_json(), 201)

    async def populate(request: web.Request) -> web.Response:
        applied, error = await collection.populate(await _body(request))
        body: dict[str, object] = {"proxies": [p.to_json() for p in applied]}
        if error is not None:
            body.update(error.body())
            return _json(body, error.status)
        return _json(body, 201)

    async def proxy_show(request: web.Request) -> web.Response:
        return _json(collection.get(request.match_info["proxy"]).to_json())

    async def proxy_update(request: web.Request) -> web.Response:
        name = request.match_info["proxy"]
        collection.get(name)  # 404 before complaining about the body
        proxy = await collection.update(name, await _body(request))
        return _json(proxy.to_json())

    async def proxy_delete(request: web.Request) -> web.Response:
        await collection.delete(request.match_info["proxy"])
        return web.Response(status=204)

    async def toxic_index(request: web.Request) -> web.Response:
        return _json(collection.get(request.match_info["proxy"]).toxics_json())

    async def toxic_create(request: web.Request) -> web.Response:
        name = request.match_info["proxy"]
        collection.get(name)
        spec = await collection.add_toxic(name, await _body(request))
        return _json(spec.to_json())

    async def toxic_show(request: web.Request) -> web.Response:
        spec = collection.get_toxic(request.match_info["proxy"], request.match_info["toxic"])
        return _json(spec.to_json())

    async def toxic_update(request: web.Request) -> web.Response:
        proxy, toxic = request.match_info["proxy"], request.match_info["toxic"]
        collection.get_toxic(proxy, toxic)
        spec = await collection.update_toxic(proxy, toxic, await _body(request))
        return _json(spec.to_json())

    async def toxic_delete(request: web.Request) -> web.Response:
        await collection.remove_toxic(request.match_info["proxy"], request.match_info["toxic"])
        return web.Response(status=204)

    async def reset(request: web.Request) -> web.Response:
        await collection.reset()
        return web.Response(status=204)

    async def version(request: web.Request) -> web.Response:
        return _json({"version": VERSION, "api": "toxiproxy/2"})

    async def openapi(request: web.Request) -> web.Response:
        from paystab.chaos.proxy_server.openapi import proxy_document

        return _json(proxy_document(token is not None))

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={
            "Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[guard])
    app.router.add_get("/proxies", proxy_index)
    app.router.add_post("/proxies", proxy_create)
    app.router.add_post("/populate", populate)
    app.router.add_get("/proxies/{proxy}", proxy_show)
    app.router.add_post("/proxies/{proxy}", proxy_update)
    app.router.add_patch("/proxies/{proxy}", proxy_update)
    app.router.add_delete("/proxies/{proxy}", proxy_delete)
    app.router.add_get("/proxies/{proxy}/toxics", toxic_index)
    app.router.add_post("/proxies/{proxy}/toxics", toxic_create)
    app.router.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show)
    app.router.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    app.router.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    app.router.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    app.router.add_post("/reset", reset)
    app.router.add_get("/version", version)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app
