"""Prometheus exposition of the gateway's in-process stats.

A custom collector turns :class:`GatewayStats` into metric families at scrape time, with
the names of ``collector/names.py``. Latency buckets carry trace exemplars, which only the
OpenMetrics format can show: ``/metrics`` answers OpenMetrics when the scraper asks for it
(Prometheus does when exemplar storage is on) and the classic text format otherwise, which
is what ``promtool check metrics`` reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_exposition
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar as PromExemplar

from paystab.collector import names
from paystab.collector.names import BREAKER_STATES, ERROR_TYPES
from paystab.collector.stats import GatewayStats, Histogram

_ATTEMPT_SERIES = [("approved", "none"), ("declined", "none"), ("pending", "none")] + [
    ("error", e) for e in ERROR_TYPES
]


def _buckets(hist: Histogram) -> list[tuple[str, float] | tuple[str, float, PromExemplar]]:
    out: list[tuple[str, float] | tuple[str, float, PromExemplar]] = []
    cumulative = hist.cumulative()
    bounds = [*(repr(float(b)) for b in hist.bounds), "+Inf"]
    for bound, count, ex in zip(bounds, cumulative, hist.exemplars, strict=True):
        if ex is None:
            out.append((bound, float(count)))
        else:
            out.append((bound, float(count), PromExemplar({"trace_id": ex.trace_id}, ex.value_s, ex.timestamp)))
    return out


def _base(name: str) -> str:
    """Counter families are named without ``_total``; the client library appends it."""
    return name.removesuffix("_total")


class GatewayCollector(Collector):
    """Reads :class:`GatewayStats` on every scrape; nothing is computed per request."""

    def __init__(self, stats: GatewayStats, methods: tuple[str, ...]) -> None:
        self.stats = stats
        self.methods = methods

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        now = time.monotonic()
        payments = CounterMetricFamily(
            _base(names.PAYMENTS_TOTAL), "Payments answered, by method and outcome",
            labels=["method", "outcome"],
        )
        for method in self.methods:
            for outcome in names.PAYMENT_OUTCOMES:
                payments.add_metric([method, outcome], s.payments.get((method, outcome), 0))
        yield payments

        duration = HistogramMetricFamily(
            names.PAYMENT_DURATION, "Time to answer a payment, as the customer waits",
            labels=["method"], unit="seconds",
        )
        for method in self.methods:
            hist = s.durations.get(method) or Histogram()
            duration.add_metric([method], _buckets(hist), hist.sum_s)
        yield duration

        yield GaugeMetricFamily(names.GATEWAY_INFLIGHT, "Payments in flight", value=s.inflight)
        yield CounterMetricFamily(
            _base(names.GATEWAY_SHED_TOTAL), "Payments refused with 503 by load shedding",
            value=s.shed,
        )
        retries = CounterMetricFamily(
            _base(names.RETRIES_TOTAL), "Attempts beyond the first, by reason", labels=["reason"]
        )
        for reason in ("connect", "timeout", "provider_5xx", "rate_limited", "malformed",
                       "unknown", "not_supported", "issuer_unavailable"):
            retries.add_metric([reason], s.retries.get(reason, 0))
        yield retries
        yield CounterMetricFamily(
            _base(names.RETRY_BUDGET_EXHAUSTED_TOTAL), "Retries refused by the retry budget",
            value=s.retry_budget_exhausted,
        )

        attempts = CounterMetricFamily(
            _base(names.ATTEMPTS_TOTAL), "Provider attempts by outcome and error type",
            labels=["provider", "outcome", "error_type"],
        )
        latency = HistogramMetricFamily(
            names.PROVIDER_LATENCY, "Provider attempt latency", labels=["provider"],
            unit="seconds",
        )
        inflight = GaugeMetricFamily(names.PROVIDER_INFLIGHT, "Attempts in flight", labels=["provider"])
        oldest = GaugeMetricFamily(
            names.PROVIDER_OLDEST_INFLIGHT_AGE,
            "Age of the oldest attempt still waiting for this provider", labels=["provider"],
            unit="seconds",
        )
        health = GaugeMetricFamily(names.PROVIDER_HEALTH_SCORE, "Routing health score 0..1", labels=["provider"])
        breaker = GaugeMetricFamily(
            names.PROVIDER_BREAKER_STATE, "Circuit breaker: 0 closed, 1 half-open, 2 open",
            labels=["provider"],
        )
        drained = GaugeMetricFamily(names.PROVIDER_DRAINED, "1 when drained by failover", labels=["provider"])
        failovers = CounterMetricFamily(
            _base(names.FAILOVERS_TOTAL), "Drain and restore decisions applied",
            labels=["provider", "action"],
        )
        voids = CounterMetricFamily(
            _base(names.LATE_SUCCESS_VOIDS_TOTAL), "Late provider successes voided",
            labels=["provider"],
        )
        for name, p in s.providers.items():
            for outcome, error_type in _ATTEMPT_SERIES:
                attempts.add_metric([name, outcome, error_type], p.attempts.get((outcome, error_type), 0))
            latency.add_metric([name], _buckets(p.latency), p.latency.sum_s)
            inflight.add_metric([name], len(p.inflight))
            oldest.add_metric([name], p.oldest_inflight_age_s(now))
            health.add_metric([name], p.health_score)
            breaker.add_metric([name], BREAKER_STATES.get(p.breaker_state, 0))
            drained.add_metric([name], 1.0 if p.drained else 0.0)
            for action in ("drain", "restore"):
                failovers.add_metric([name, action], p.failovers.get(action, 0))
            voids.add_metric([name], p.late_success_voids)
        yield from (attempts, latency, inflight, oldest, health, breaker, drained, failovers, voids)


def make_registry(stats: GatewayStats, methods: tuple[str, ...]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(stats, methods))
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Encode for a scraper: OpenMetrics (with exemplars) if asked for, else text 0.0.4."""
    if accept and "application/openmetrics-text" in accept:
        return om_exposition.generate_latest(registry), om_exposition.CONTENT_TYPE_LATEST  # type: ignore[no-untyped-call]
    return text_exposition.generate_latest(registry), text_exposition.CONTENT_TYPE_LATEST
