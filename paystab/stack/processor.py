"""Turning one payment into provider attempts until somebody gives an answer.

The loop: ask the router for candidates; write the attempt's intent to the ledger; send
it; classify the answer with the unified taxonomy. A customer decline or an approval ends
the payment. A connect failure, a 5xx, a throttle or a "not supported" moves on to the next
provider, within the retry budget. A response timeout or a cut-off answer means the money
may have moved: look the key up at the provider first, take its answer if it has one, and
otherwise move on and leave the attempt to the resolver, which voids it if it turns out to
have been charged after all. Only when no provider could answer does the payment fail.
Spans are emitted after the answer, from a few timestamps kept on the way: only for
payments that erred or won the sampling draw, so unsampled successes allocate no spans.
"""

from __future__ import annotations

import itertools
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from paystab.collector.stats import GatewayStats
from paystab.stack.catalog import RoutingSettings, card_brand
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    ChargeRequest,
    ProviderAnswer,
)
from paystab.stack.errors import lookup
from paystab.stack.ledger import GatewayLedger, durable
from paystab.stack.payment_api import PaymentRequest, RequestProblem
from paystab.stack.provider_client import ConnectFailed, OutcomeUnknown, ProviderClient
from paystab.stack.routing import RetryBudget, Route, Router


@dataclass(slots=True)
class AttemptTrace:
    provider: str
    n: int
    start_ns: int
    end_ns: int
    code: str
    resolved_by_lookup: bool
    server_address: str
    server_port: int
    latency_bucket: int
    latency_s: float


@dataclass(slots=True)
class Outcome:
    status: str  # approved | declined | pending | failed
    code: str
    provider: str | None
    provider_ref: str | None
    attempts: int
    decided_by: int | None  # attempt number whose answer stands
    http_status: int = 200
    traces: list[AttemptTrace] = field(default_factory=list)


@dataclass(slots=True)
class UnknownAttempt:
    payment_id: str
    n: int
    provider: str
    key: str
    first_seen: float
    first_not_found: float | None = None  # when the provider first said it never saw the key


class Processor:
    def __init__(self, router: Router, clients: dict[str, ProviderClient], ledger: GatewayLedger,
                 stats: GatewayStats, settings: RoutingSettings, tracer: trace.Tracer,
                 sample_ratio: float, telemetry_on: bool, seed: int | None = None) -> None:
        self.router = router
        self.clients = clients
        self.ledger = ledger
        self.stats = stats
        self.settings = settings
        self.tracer = tracer
        self.sample_ratio = sample_ratio
        self.telemetry_on = telemetry_on
        self.budget = RetryBudget(settings.retry_budget_ratio, settings.retry_budget_min_per_s)
        self.unknown: dict[str, UnknownAttempt] = {}  # provider key -> attempt to resolve
        self._rng = random.Random(seed)
        self._token = 0
        self.response_timeout_s = settings.response_timeout_ms / 1000.0
        self.lookup_timeout_s = settings.status_lookup_timeout_ms / 1000.0

    # -- one payment -------------------------------------------------------------------
    async def run(self, payment_id: str, request: PaymentRequest, first_n: int) -> Outcome:
        brand = card_brand(request.card.number) if request.card else request.wallet_brand
        tried: set[str] = set()
        traces: list[AttemptTrace] = []
        last_error = "error.unknown"
        n = first_n
        for i in range(self.settings.max_attempts):
            routes = self.router.candidates(request.method, request.currency, request.country,
                                            brand, tried)
            if not routes:
                if i == 0:
                    raise RequestProblem(
                        422, "unroutable", "No provider takes this payment",
                        f"no configured provider takes {request.method} in {request.currency} "
                        f"from {request.country}" + (f" ({brand})" if brand else ""))
                break
            if i == 0:
                self.budget.on_first_attempt()
            elif not self.budget.try_spend():
                self.stats.retry_budget_exhausted += 1
                break
            else:
                self.stats.count_retry(last_error.split(".", 1)[-1])
            route = routes[0]
            n += 1
            answer, _resolved = await self._attempt(route, payment_id, n, request, traces)
            code = lookup(answer.code)
            if code.outcome in ("approved", "pending") or (
                    code.outcome == "declined" and not code.retryable):
                status = "approved" if code.outcome == "approved" else code.outcome
                return Outcome(status, code.code, route.spec.name, answer.provider_ref, n - first_n,
                               n, 200, traces)
            tried.add(route.spec.name)
            last_error = code.code
        http_status = 504 if last_error == "error.timeout" else 503 if not traces else 502
        return Outcome("failed", last_error, None, None, n - first_n, None, http_status, traces)

    async def _attempt(self, route: Route, payment_id: str, n: int, request: PaymentRequest,
                       traces: list[AttemptTrace]) -> tuple[ProviderAnswer, bool]:
        name = route.spec.name
        client = self.clients[name]
        key = f"{payment_id}.{n}"
        # Durable before the provider hears of it: after a crash, every key that may have
        # been charged is in the ledger and can be looked up.
        await durable(self.ledger.stage_intent(payment_id, n, name, key))
        charge = ChargeRequest(key, payment_id, request.amount, request.currency, request.method,
                               request.country, request.card, request.wallet_brand,
                               request.customer_id)
        stats = route.stats
        self._token += 1
        token = self._token
        started = time.monotonic()
        start_ns = time.time_ns()
        stats.inflight[token] = started
        route.breaker.on_send()
        resolved = False
        try:
            status, ctype, body = await client.send(client.dialect.charge_call(charge),
                                                    self.response_timeout_s)
            answer = client.dialect.parse_charge(status, ctype, body)
        except ConnectFailed as exc:
            answer = ProviderAnswer("error.connect", detail=str(exc))
        except OutcomeUnknown as exc:
            answer = ProviderAnswer(f"error.{exc.kind}", detail=str(exc))
        finally:
            del stats.inflight[token]
        elapsed = time.monotonic() - started
        code = lookup(answer.code)
        stats.count_attempt(code.outcome, code.error_type)
        bucket = stats.latency.observe(elapsed)
        self.router.record(route, code.counts_against_provider,
                           code.outcome in ("approved", "pending"), elapsed)
        state: str = code.outcome
        final_answer = answer
        if code.code in ("error.timeout", "error.malformed"):
            # The provider may have charged: ask before going elsewhere.
            found = await self._lookup(client, key)
            if found is not None and found.code not in (LOOKUP_NOT_FOUND,) and \
                    lookup(found.code).outcome in ("approved", "pending", "declined"):
                final_answer, resolved = found, True
                state = lookup(found.code).outcome
            else:
                state = "unknown"
                self.unknown[key] = UnknownAttempt(payment_id, n, name, key, time.monotonic())
        self.ledger.stage_attempt_result(payment_id, n, state, final_answer.code, final_answer.provider_ref)
        traces.append(AttemptTrace(name, n, start_ns, time.time_ns(), answer.code, resolved,
                                   client.server_address, client.server_port, bucket, elapsed))
        return final_answer, resolved

    async def _lookup(self, client: ProviderClient, key: str) -> ProviderAnswer | None:
        try:
            status, ctype, body = await client.send(client.dialect.status_call(key),
                                                    self.lookup_timeout_s)
        except (ConnectFailed, OutcomeUnknown):
            return None
        return client.dialect.parse_status(status, ctype, body)

    # -- spans ---------------------------------------------------------------------------
    def should_trace(self, outcome: Outcome) -> bool:
        if not self.telemetry_on:
            return False
        if outcome.status == "failed" or any(t.code.startswith("error.") for t in outcome.traces):
            return True
        return self._rng.random() < self.sample_ratio

    def emit_spans(self, payment_id: str, request: PaymentRequest, outcome: Outcome,
                   start_ns: int, end_ns: int, http_status: int) -> str | None:
        """Create the server span and one client span per attempt, after the fact."""
        attrs: dict[str, Any] = {
            "http.request.method": "POST",
            "http.route": "/v1/payments",
            "http.response.status_code": http_status,
            "paystab.payment.id": payment_id,
            "paystab.payment.method": request.method,
            "paystab.payment.currency": request.currency,
            "paystab.payment.country": request.country,
            "paystab.payment.amount": request.amount,
            "paystab.payment.outcome": outcome.status,
            "paystab.payment.code": outcome.code,
            "paystab.payment.attempts": outcome.attempts,
        }
        if outcome.provider:
            attrs["paystab.payment.provider"] = outcome.provider
        server = self.tracer.start_span("POST /v1/payments", kind=trace.SpanKind.SERVER,
                                        start_time=start_ns, attributes=attrs)
        if outcome.status == "failed":
            server.set_status(trace.Status(trace.StatusCode.ERROR, outcome.code))
            server.set_attribute("error.type", outcome.code)
        ctx = trace.set_span_in_context(server)
        for i, t in enumerate(outcome.traces):
            client_attrs: dict[str, Any] = {
                "paystab.payment.provider": t.provider,
                "paystab.payment.code": t.code,
                "paystab.payment.method": request.method,
                "http.request.method": "POST",
                "http.request.resend_count": i,
                "server.address": t.server_address,
                "server.port": t.server_port,
                "paystab.attempt.resolved_by_lookup": t.resolved_by_lookup,
            }
            span = self.tracer.start_span(f"charge {t.provider}", context=ctx,
                                          kind=trace.SpanKind.CLIENT, start_time=t.start_ns,
                                          attributes=client_attrs)
            if t.code.startswith("error."):
                span.set_attribute("error.type", t.code)
                span.set_status(trace.Status(trace.StatusCode.ERROR, t.code))
            span.end(end_time=t.end_ns)
        server.end(end_time=end_ns)
        trace_id = server.get_span_context().trace_id
        return f"{trace_id:032x}" if trace_id else None


_id_counter = itertools.count(secrets.randbelow(1 << 24))
_ID_PROCESS = secrets.token_hex(3)


def new_payment_id() -> str:
    """``pay_`` + 24 hex digits: milliseconds since the epoch, a per-process tag, a counter.

    Unique across restarts and concurrent gateways (the tag), and ordered by creation time,
    so ledger inserts land on the right edge of the primary-key and attempts indexes rather
    than on a random page each: a commit writes a handful of WAL pages, not dozens.
    """
    return f"pay_{time.time_ns() // 1_000_000:012x}{_ID_PROCESS}{next(_id_counter) & 0xFFFFFF:06x}"

