"""A stand-in shop for the checkout-flow tests: not paystab's API, its own words.

``POST /api/checkout`` answers ``{"state": "succeeded"}`` (or ``"declined"`` for the decline
test cards); ``POST /api/orders`` creates an order, ``POST /api/orders/{id}/pay`` starts
paying it (``{"state": "processing"}``) and ``GET /api/orders/{id}`` answers ``processing``
on the first poll, then the final state. It keeps what it saw so tests can check which
values a flow carried from one step to the next. A real aiohttp app on 127.0.0.1:<free
port> in a thread with its own loop (the test process is never gevent-patched).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DECLINE_CARDS = {"4000000000009995", "4000000000000002", "4000000000000069", "4100000000000019"}


@dataclass
class Shop:
    url: str = ""
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkouts: list[dict[str, Any]] = field(default_factory=list)
    pay_keys: list[str] = field(default_factory=list)
    unknown_order_pays: int = 0
    polls: int = 0

    def _final(self, card: str) -> str:
        return "declined" if card in DECLINE_CARDS else "succeeded"

    async def checkout(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.checkouts.append({"key": request.headers.get("X-Request-Id", ""), **body})
        return web.json_response({"state": self._final(str(body.get("card", "")))})

    async def create_order(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        order_id = f"ord_{len(self.orders) + 1}"
        self.orders[order_id] = {"amount": body["amount"], "currency": body["currency"],
                                 "state": "created", "polls": 0}
        return web.json_response({"order": {"id": order_id}}, status=201)

    async def pay(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            self.unknown_order_pays += 1
            return web.json_response({"error": "no such order"}, status=404)
        body = json.loads(await request.read())
        self.pay_keys.append(request.headers.get("Idempotency-Key", ""))
        order["final"] = self._final(str(body.get("card", "")))
        order["state"] = "processing"
        return web.json_response({"state": "processing"}, status=202)

    async def status(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            return web.json_response({"error": "no such order"}, status=404)
        self.polls += 1
        order["polls"] += 1
        if order["polls"] >= 2 and "final" in order:
            order["state"] = order["final"]
        return web.json_response({"id": request.match_info["order_id"], "state": order["state"]})

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


class ShopServer:
    """Runs a :class:`Shop` until ``stop()``."""

    def __init__(self) -> None:
        self.shop = Shop()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        shop = self.shop
        app.router.add_post("/api/checkout", shop.checkout)
        app.router.add_post("/api/orders", shop.create_order)
        app.router.add_post("/api/orders/{order_id}/pay", shop.pay)
        app.router.add_get("/api/orders/{order_id}", shop.status)
        app.router.add_get("/healthz", shop.health)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        shop.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> Shop:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stand-in shop did not start")
        return self.shop

    def stop(self) -> None:
        async def _close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
