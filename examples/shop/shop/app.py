"""The shop's HTTP service (aiohttp): its checkout API, its metrics and its failover switch.

=================================  ==========================================================
POST /api/orders                   ``{"amount": 1999, "currency": "JPY"}`` → 201 the order
                                   (``{"id": "ord_…", "state": "created", …}``)
POST /api/orders/{id}/pay          ``{"card": {"number", "exp_month", "exp_year", "cvc"}}`` →
                                   200 ``{"state": "paid"}`` | 402 ``{"state": "declined"}``
                                   | 502 ``{"state": "failed"}`` (no PSP could answer) | 409
                                   while another pay request holds the order
GET  /api/orders/{id}              the order
GET  /healthz, GET /metrics        liveness; Prometheus exposition (shop/metrics.py; also on
                                   SHOP_METRICS_LISTEN, served by a thread of its own)
GET  /internal/psp                 the PSPs, their priority and switch state
PUT  /internal/psp/{name}          ``{"enabled": false, "reason": "…"}``: the failover switch
=================================  ==========================================================

``/internal/*`` answers loopback callers only, or, with ``SHOP_ADMIN_TOKEN`` set, callers
sending ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server

from shop.config import ConfigError, Settings, load_settings
from shop.db import Order, Orders
from shop.metrics import ShopMetrics
from shop.psps import Card, ChargeResult, Payment, Psp, make_psp
from shop.routing import LateSuccessVoider, Router

log = logging.getLogger("shop")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PAN = re.compile(r"^[0-9]{12,19}$")
STATUS_OF_STATE = {"paid": 200, "declined": 402, "failed": 502, "processing": 409}


class BadRequest(web.HTTPBadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _card(value: Any) -> Card:
    if not isinstance(value, dict):
        raise BadRequest("card: expected {number, exp_month, exp_year, cvc}")
    number = str(value.get("number", "")).replace(" ", "")
    month, year, cvc = value.get("exp_month"), value.get("exp_year"), str(value.get("cvc", ""))
    if not _PAN.match(number):
        raise BadRequest("card.number: 12 to 19 digits")
    if not (isinstance(month, int) and 1 <= month <= 12 and isinstance(year, int)
            and 2000 <= year <= 2100 and cvc.isdigit()):
        raise BadRequest("card: exp_month 1-12, exp_year yyyy and a numeric cvc are needed")
    return Card(number, month, year, cvc, str(value.get("name") or "Shop Customer")[:64])


class Shop:
    def __init__(self, settings: Settings, orders: Orders, psps: list[Psp]) -> None:
        self.settings = settings
        self.orders = orders
        self.metrics = ShopMetrics([p.name for p in psps])
        self.router = Router(psps, self.metrics)
        self.voider = LateSuccessVoider(self.metrics)

    # -- checkout API ---------------------------------------------------------------------
    async def create_order(self, request: web.Request) -> web.Response:
        body = await _body(request)
        amount, currency = body.get("amount"), str(body.get("currency", "")).upper()
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= 10**9:
            raise BadRequest("amount: an integer number of minor units, 1 to 10^9")
        if not _CURRENCY.match(currency):
            raise BadRequest("currency: an ISO 4217 code such as JPY")
        order = await self.orders.create("ord_" + secrets.token_hex(8), amount, currency)
        return web.json_response(order.as_json(), status=201)

    async def get_order(self, request: web.Request) -> web.Response:
        order = await self.orders.get(request.match_info["order_id"])
        if order is None:
            raise web.HTTPNotFound(text='{"error": "no such order"}', content_type="application/json")
        return web.json_response(order.as_json())

    async def pay(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        reference = request.match_info["order_id"]
        card = _card((await _body(request)).get("card"))
        order = await self.orders.claim(reference)
        if order is None:  # not payable: unknown, paid, or being paid by another request
            existing = await self.orders.get(reference)
            if existing is None:
                raise web.HTTPNotFound(text='{"error": "no such order"}',
                                       content_type="application/json")
            return web.json_response(existing.as_json(),
                                     status=STATUS_OF_STATE.get(existing.state, 409))
        final = await self._charge(order, card)
        self.metrics.orders.labels(final.state).inc()
        self.metrics.checkout_seconds.observe(time.monotonic() - started)
        doc = final.as_json()
        if final.decline_code:
            doc["reason"] = final.decline_code
        return web.json_response(doc, status=STATUS_OF_STATE[final.state])

    async def _charge(self, order: Order, card: Card) -> Order:
        """Primary first, the next PSP when the answer is no decision; see routing.py."""
        for psp in self.router.candidates():
            payment = Payment(order.reference, order.amount_minor, order.currency, card,
                              idempotency_key=f"{order.reference}-{psp.name}")
            result = await self._call(psp, payment)
            if result is not None and result.outcome == "approved":
                done = await self.orders.finish(order.reference, "paid", psp.name,
                                                result.psp_reference)
                break
            if result is not None and result.outcome == "declined":
                done = await self.orders.finish(order.reference, "declined", psp.name,
                                                result.psp_reference, result.detail)
                break
        else:
            done = await self.orders.finish(order.reference, "failed", None, None)
        assert done is not None
        return done

    async def _call(self, psp: Psp, payment: Payment) -> ChargeResult | None:
        """The PSP's answer; None when the switch turned the PSP off while we waited."""
        loop = asyncio.get_running_loop()
        call = loop.create_task(self._timed_charge(psp, payment))
        result: ChargeResult | None = None
        if self.router.enabled[psp.name]:
            switched_off = loop.create_task(self.router.until_switched_off(psp.name))
            waits: set[asyncio.Future[Any]] = {call, switched_off}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            switched_off.cancel()
            if call.done():
                result = call.result()
        else:  # every PSP is off and this one is tried anyway: wait for it
            result = await call
        if result is None or result.in_doubt:
            self.voider.watch(psp, payment, call)
        return result

    async def _timed_charge(self, psp: Psp, payment: Payment) -> ChargeResult:
        started = time.perf_counter()
        with self.metrics.inflight.track(psp.name):
            try:
                result = await psp.charge(payment)
            except Exception:  # an SDK surprise: the charge may exist, so it is in doubt
                log.exception("charge at %s failed unexpectedly", psp.name)
                result = ChargeResult("error", detail="unexpected", in_doubt=True)
        self.metrics.psp_seconds.labels(psp.name).observe(time.perf_counter() - started)
        self.metrics.psp_requests.labels(psp.name, result.outcome).inc()
        return result

    # -- operations -----------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _authorize(self, request: web.Request) -> None:
        token = self.settings.admin_token
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise web.HTTPUnauthorized(text='{"error": "bearer token required"}',
                                           content_type="application/json")
            return
        try:
            loopback = ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise web.HTTPForbidden(text='{"error": "loopback only"}', content_type="application/json")

    async def list_psps(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return web.json_response({"psps": self.router.describe(),
                                  "in_doubt_payments": self.voider.pending})

    async def set_psp(self, request: web.Request) -> web.Response:
        self._authorize(request)
        name = request.match_info["name"]
        if name not in self.router.psps:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no PSP {name!r}"}),
                                   content_type="application/json")
        body = await _body(request)
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise BadRequest('enabled: true or false, e.g. {"enabled": false}')
        self.router.set_enabled(name, enabled, str(body.get("reason", ""))[:200])
        return web.json_response({"name": name, "enabled": enabled})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/orders", self.create_order),
            web.get("/api/orders/{order_id}", self.get_order),
            web.post("/api/orders/{order_id}/pay", self.pay),
            web.get("/healthz", self.health),
            web.get("/metrics", self.metrics_page),
            web.get("/internal/psp", self.list_psps),
            web.put("/internal/psp/{name}", self.set_psp),
        ]


async def build_app(settings: Settings) -> web.Application:
    orders = Orders(settings.database_url)
    await orders.open()
    # Adyen's SDK blocks: its calls run on these threads, as many as rate x latency needs
    # after a failover (measured at 100 checkouts/s on a busy host: 12 threads could not
    # keep up with card-bravo's 45 ms answers, and checkouts queued for seconds).
    executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="psp")
    psps = [make_psp(a, settings, executor) for a in settings.psps]
    shop = Shop(settings, orders, psps)
    app = web.Application()
    app.add_routes(shop.routes())

    shop.metrics.loop_lag.start()

    async def close(_app: web.Application) -> None:
        await shop.metrics.loop_lag.stop()
        await shop.voider.drain(timeout_s=2 * settings.psp_timeout_s)
        for psp in psps:
            await psp.close()
        executor.shutdown(wait=False, cancel_futures=True)
        await orders.close()

    app.on_cleanup.append(close)
    if settings.metrics_listen is not None:
        host, port = settings.metrics_listen
        server, _thread = start_http_server(port, host, registry=shop.metrics.registry)

        async def stop_metrics(_app: web.Application) -> None:
            server.shutdown()

        app.on_cleanup.append(stop_metrics)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("stripe").setLevel(logging.WARNING)  # one INFO line per API call
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"shop: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    log.info("shop on http://%s:%d, PSPs %s", settings.host, settings.port,
             ", ".join(f"{a.name} ({a.kind})" for a in settings.psps))
    web.run_app(build_app(settings), host=settings.host, port=settings.port, access_log=None,
                print=None)

