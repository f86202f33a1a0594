"""The reference payment gateway: the payment API, idempotency, admin API, /metrics.

HTTP only; the work is done by ``processor`` (attempts), ``routing`` (choice, breakers),
``resolver`` (unknown outcomes, crash recovery) and ``ledger`` (SQLite). Idempotency-Key
semantics: missing → 400; same key with another body → 422; same key still in flight →
409; same key done → the stored answer, byte for byte. A failed payment (502/503/504) is
not final: the same key runs it again, with the earlier attempts still known to the
resolver so nothing is charged twice. Load shedding answers 503 with Retry-After once
``max_concurrency`` payments are in flight.

A request is validated whole, body and key (``payment_api``), and checked routable
before anything is written to the ledger; what bounds a client is in ``http_guard``.
Idempotency keys are kept (in memory and in the ledger) only as a keyed hash: a card
number pasted into the header is never at rest. The key is the per-stack secret of
:func:`paystab.stack.ledger.ledger_secret`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from paystab.collector.prometheus import make_registry, render
from paystab.collector.redact import redact
from paystab.collector.stats import GatewayStats
from paystab.collector.telemetry import Telemetry
from paystab.httpclient import is_loopback_host
from paystab.stack.catalog import METHODS, StackSettings
from paystab.stack.dialects import get_dialect
from paystab.stack.endpoints import ProviderEndpoint
from paystab.stack.http_guard import ConnectionGuard, GatewayLimits, read_body
from paystab.stack.ledger import FINAL_STATUSES, GatewayLedger, durable, ledger_secret
from paystab.stack.loop_lag import LoopLagMonitor
from paystab.stack.payment_api import (
    PAYMENT_ID,
    KeyedHash,
    PaymentRequest,
    RequestProblem,
    parse_payment,
    validate_idempotency_key,
)
from paystab.stack.processor import Outcome, Processor, new_payment_id
from paystab.stack.provider_client import ProviderClient, abortive_socket
from paystab.stack.resolver import Resolver
from paystab.stack.routing import Router

JSON = "application/json"
PROBLEM = "application/problem+json"
DONE_CACHE_SIZE = 200_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(problem: RequestProblem, extra: dict[str, Any] | None = None) -> web.Response:
    body = problem.body()
    if extra:
        body.update(extra)
    headers = {"Retry-After": str(problem.retry_after_s)} if problem.retry_after_s else None
    response = web.Response(status=problem.status, body=json.dumps(body).encode(),
                            content_type=PROBLEM, headers=headers)
    if problem.close_connection:
        response.force_close()
    return response


@dataclass
class GatewayOptions:
    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None  # required on /admin/* when set; required to bind non-loopback
    limits: GatewayLimits = field(default_factory=GatewayLimits)
    key_secret: bytes | None = None  # keys idempotency hashes; default: beside the ledger


class Gateway:
    def __init__(self, settings: StackSettings, providers: dict[str, ProviderEndpoint],
                 ledger_path: str | Path, telemetry: Telemetry, options: GatewayOptions) -> None:
        self.settings = settings
        self.options = options
        self.telemetry = telemetry
        self.ledger = GatewayLedger(ledger_path)
        self.limits = options.limits
        # Keys and body fingerprints are kept only as HMACs under the stack's secret.
        self.keyed = KeyedHash(options.key_secret or ledger_secret(ledger_path))
        self.stats = GatewayStats()
        specs = [s for s in settings.providers if s.name in providers]
        for spec in specs:
            self.stats.provider(spec.name, spec.methods)
        self.endpoints = providers
        self.router = Router(specs, self.stats.providers, settings.routing, settings.seed)
        self.registry = make_registry(self.stats, METHODS)
        self.guard = ConnectionGuard(self.limits)  # shared by every connection (gateway_main)
        self.registry.register(self.guard.collector())
        self.loop_lag = LoopLagMonitor()  # host-wide slowness, for the detectors
        self.registry.register(self.loop_lag.collector())
        self._inflight_keys: dict[str, str] = {}
        self._done: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.session: aiohttp.ClientSession | None = None
        self.processor: Processor | None = None
        self.resolver: Resolver | None = None
        self._openapi: bytes | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_body_bytes + 1,
                              middlewares=[self._errors])
        app.router.add_post("/v1/payments", self.post_payment)
        app.router.add_get("/v1/payments/{id}", self.get_payment)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/openapi.json", self.openapi)
        # Off loopback the exposition (providers, traffic, drains) needs the admin token.
        exposed = not is_loopback_host(self.options.host)
        app.router.add_get("/metrics", self._admin(self.metrics) if exposed else self.metrics)
        app.router.add_get("/admin/providers", self._admin(self.admin_providers))
        app.router.add_post("/admin/providers/{name}/drain", self._admin(self.admin_drain))
        app.router.add_post("/admin/providers/{name}/restore", self._admin(self.admin_restore))
        app.router.add_get("/admin/unresolved", self._admin(self.admin_unresolved))
        app.router.add_post("/admin/resolve", self._admin(self.admin_resolve))
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _app: web.Application) -> None:
        self.loop_lag.start()
        routing = self.settings.routing
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=512, keepalive_timeout=30,
                                         socket_factory=abortive_socket)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        clients = {
            name: ProviderClient(ep, get_dialect(ep.dialect), self.session,
                                 routing.connect_timeout_ms / 1000.0, self.loop_lag.lag_s)
            for name, ep in self.endpoints.items()
        }
        self.processor = Processor(self.router, clients, self.ledger, self.stats, routing,
                                   self.telemetry.tracer, self.telemetry.sample_ratio,
                                   self.telemetry.enabled, self.settings.seed)
        self.resolver = Resolver(self.processor, self.ledger, self.stats, clients)
        self.resolver.start()
        if self.telemetry.meter is not None:
            from paystab.collector.otel_metrics import register_gateway_instruments

            register_gateway_instruments(self.telemetry.meter, self.stats, self.router)

    async def _cleanup(self, _app: web.Application) -> None:
        await self.loop_lag.stop()
        if self.resolver:
            await self.resolver.stop()
        if self.session:
            await self.session.close()
        self.ledger.close()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except RequestProblem as problem:
            return problem_response(problem)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
                exc.status, "http-error")
            response = problem_response(RequestProblem(exc.status, slug, exc.reason, exc.reason))
            if "Allow" in exc.headers:  # 405 says what is allowed
                response.headers["Allow"] = exc.headers["Allow"]
            return response

    # -- payment API -------------------------------------------------------------------
    async def post_payment(self, request: web.Request) -> web.Response:
        start_ns = time.time_ns()
        started = time.monotonic()
        routing = self.settings.routing
        if self.stats.inflight >= routing.max_concurrency:
            self.stats.shed += 1
            raise RequestProblem(503, "overloaded", "Gateway overloaded",
                                 "too many payments in flight; retry shortly", retry_after_s=1)
        raw_key = validate_idempotency_key(request.headers.get("Idempotency-Key"))
        limits = self.limits
        payment = parse_payment(await read_body(request, limits), request.headers.get("Content-Type"),
                                max_body_bytes=limits.max_body_bytes,
                                max_json_depth=limits.max_json_depth, keyed=self.keyed)
        if not self.router.routable(payment.method, payment.currency, payment.country, payment.brand):
            raise RequestProblem(
                422, "unroutable", "No provider takes this payment",
                f"no configured provider takes {payment.method} in {payment.currency} from "
                f"{payment.country}" + (f" ({payment.brand})" if payment.brand else
                                        " (card scheme not accepted)" if payment.card else ""))
        key = self.keyed.hex(raw_key.encode())  # == ledger.keyed_hash(secret, raw_key)
        # No await between these checks and registering the key: same-key races are settled.
        busy_fp = self._inflight_keys.get(key)
        if busy_fp is not None:
            raise self._conflict(busy_fp, payment) or RequestProblem(
                409, "idempotency-in-flight", "Payment in progress",
                "a payment with this Idempotency-Key is still being processed; retry later",
                retry_after_s=1)
        cached = self._done.get(key)
        if cached is not None:
            conflict = self._conflict(cached[0], payment)
            if conflict:
                raise conflict
            return web.Response(body=cached[1], content_type=JSON)
        stored = self.ledger.find_by_key(key)
        first_n = 0
        if stored is not None:
            conflict = self._conflict(stored.fingerprint, payment)
            if conflict:
                raise conflict
            if stored.status in FINAL_STATUSES and stored.response is not None:
                body = json.dumps(stored.response).encode()
                self._remember(key, payment.fingerprint, body)
                return web.Response(body=body, content_type=JSON)
            if stored.status == "processing":
                raise RequestProblem(409, "idempotency-in-flight", "Payment in progress",
                                     "this payment is being recovered; retry shortly",
                                     retry_after_s=1)
            payment_id = stored.id
            first_n = max((a.n for a in self.ledger.attempts_of(payment_id)), default=0)
        else:
            payment_id = new_payment_id()
        assert self.processor is not None and self.resolver is not None
        # The key stays in flight until the payment's final state is committed, so a key
        # with staged ledger writes is never looked up in the ledger (see GatewayLedger).
        self._inflight_keys[key] = payment.fingerprint
        self.resolver.inflight_payments.add(payment_id)
        self.stats.inflight += 1
        try:
            if stored is not None:
                self.ledger.stage_restart(payment_id)
            else:
                self.ledger.begin_payment(payment_id, key, payment.fingerprint, payment.amount,
                                          payment.currency, payment.method, payment.country)
            try:
                outcome = await self.processor.run(payment_id, payment, first_n)
            except RequestProblem as problem:
                await durable(self.ledger.stage_finish(payment_id, "failed", problem.slug, None, 0,
                                                       problem.body()))
                raise
            return await self._answer(key, payment_id, payment, outcome, start_ns, started)
        finally:
            del self._inflight_keys[key]
            self.resolver.inflight_payments.discard(payment_id)
            self.stats.inflight -= 1

    async def _answer(self, key: str, payment_id: str, payment: PaymentRequest, outcome: Outcome,
                      start_ns: int, started: float) -> web.Response:
        body: dict[str, Any] = {
            "id": payment_id, "status": outcome.status, "code": outcome.code,
            "provider": outcome.provider, "attempts": outcome.attempts,
            "amount": payment.amount, "currency": payment.currency, "method": payment.method,
        }
        http_status = outcome.http_status if outcome.status == "failed" else 200
        if outcome.status == "failed":
            title = {502: "Bad gateway", 503: "No provider available", 504: "Provider timeout"}
            body.update({"type": "https://paystab.dev/problems/payment-failed",
                         "title": title.get(http_status, "Payment failed"), "status": http_status,
                         "detail": f"no provider could answer ({outcome.code})",
                         "payment_status": "failed"})
            body["status"] = http_status
        text = json.dumps(body)
        # The ledger keeps the payment's own status ("failed"), not the HTTP status.
        stored = json.dumps(dict(body, status=outcome.status)) if outcome.status == "failed" else text
        # Durable before the customer hears the answer: what they were told is never lost.
        await durable(self.ledger.stage_finish(payment_id, outcome.status, outcome.code,
                                               outcome.provider, outcome.attempts, stored))
        encoded = text.encode()
        if outcome.status != "failed":
            self._remember(key, payment.fingerprint, encoded)
        self.stats.count_payment(payment.method, outcome.status, time.monotonic() - started)
        assert self.processor is not None
        if self.processor.should_trace(outcome):
            asyncio.get_running_loop().call_soon(
                self._trace, payment_id, payment, outcome, start_ns, time.time_ns(), http_status)
        if outcome.status == "failed":
            headers = {"Retry-After": "1"} if http_status == 503 else None
            return web.Response(status=http_status, body=encoded, content_type=PROBLEM,
                                headers=headers)
        return web.Response(body=encoded, content_type=JSON)

    def _trace(self, payment_id: str, payment: PaymentRequest, outcome: Outcome,
               start_ns: int, end_ns: int, http_status: int) -> None:
        assert self.processor is not None
        trace_id = self.processor.emit_spans(payment_id, payment, outcome, start_ns, end_ns,
                                             http_status)
        if trace_id:
            for t in outcome.traces:
                self.stats.provider(t.provider).latency.set_exemplar(t.latency_bucket, trace_id,
                                                                     t.latency_s)

    @staticmethod
    def _conflict(fingerprint: str, payment: PaymentRequest) -> RequestProblem | None:
        if fingerprint == payment.fingerprint:
            return None
        return RequestProblem(422, "idempotency-key-reused", "Idempotency-Key reused",
                              "this Idempotency-Key was used with a different request body")

    def _remember(self, key: str, fingerprint: str, body: bytes) -> None:
        self._done[key] = (fingerprint, body)
        if len(self._done) > DONE_CACHE_SIZE:
            self._done.popitem(last=False)

    async def get_payment(self, request: web.Request) -> web.Response:
        payment_id = request.match_info["id"]
        stored = self.ledger.find_by_id(payment_id) if PAYMENT_ID.matches(payment_id) else None
        if stored is None or stored.response is None:
            raise RequestProblem(404, "not-found", "Payment not found",
                                 f"no payment {redact(payment_id[:40])!r}")
        return web.json_response(stored.response)

    async def openapi(self, _request: web.Request) -> web.Response:
        from paystab.stack.openapi import gateway_document

        if self._openapi is None:
            self._openapi = json.dumps(gateway_document(
                self.options.token is not None, list(self.router.routes), self.limits)).encode()
        return web.Response(body=self._openapi, content_type=JSON)

    async def healthz(self, _request: web.Request) -> web.Response:
        active = sum(1 for r in self.router.routes.values() if not r.drained)
        return web.json_response({"status": "ok", "providers": len(self.router.routes),
                                  "active_providers": active, "inflight": self.stats.inflight})

    async def metrics(self, request: web.Request) -> web.Response:
        self.router.refresh_gauges()
        body, content_type = render(self.registry, request.headers.get("Accept"))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    # -- admin API ---------------------------------------------------------------------
    def _admin(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            token = self.options.token
            if token:
                given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if not hmac.compare_digest(given.encode(), token.encode()):
                    raise RequestProblem(401, "unauthorized", "Unauthorized",
                                         "the admin API needs Authorization: Bearer <token>")
            return await handler(request)
        return guarded

    def _state(self, name: str) -> dict[str, Any]:
        route = self.router.routes[name]
        now = time.monotonic()
        success, _ = route.health.rates(now)
        p95 = route.stats.latency.quantile(0.95)
        return {
            "name": name, "methods": list(route.spec.methods),
            "state": "drained" if route.drained else "active",
            "breaker": route.breaker.state, "health_score": route.stats.health_score,
            "inflight": len(route.stats.inflight),
            "oldest_inflight_age_s": round(route.stats.oldest_inflight_age_s(now), 4),
            "success_rate": round(success, 6),
            "p95_ms": round(p95 * 1000, 2) if p95 is not None else None,
            "backup": route.spec.backup,
        }

    async def admin_providers(self, _request: web.Request) -> web.Response:
        self.router.refresh_gauges()
        return web.json_response({"providers": [self._state(n) for n in self.router.routes]})

    async def _set_drained(self, request: web.Request, drained: bool) -> web.Response:
        name = request.match_info["name"]
        route = self.router.routes.get(name)
        if route is None:
            raise RequestProblem(404, "not-found", "Unknown provider",
                                 f"no provider {name!r}; known: {', '.join(self.router.routes)}")
        if route.drained != drained:
            route.drained = drained
            route.stats.drained = drained
            action = "drain" if drained else "restore"
            route.stats.failovers[action] = route.stats.failovers.get(action, 0) + 1
        return web.json_response(self._state(name))

    async def admin_drain(self, request: web.Request) -> web.Response:
        return await self._set_drained(request, True)

    async def admin_restore(self, request: web.Request) -> web.Response:
        return await self._set_drained(request, False)

    async def admin_unresolved(self, _request: web.Request) -> web.Response:
        assert self.resolver is not None
        return web.json_response({"unresolved": self.resolver.pending_count()})

    async def admin_resolve(self, _request: web.Request) -> web.Response:
        assert self.resolver is not None
        remaining = await self.resolver.resolve_once()
        return web.json_response({"unresolved": remaining})
