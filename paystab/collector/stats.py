"""Cheap in-process counters the gateway updates on its hot path.

prometheus-client metric objects take a lock and a label look-up on every update; the
gateway instead bumps plain integers here (it runs on one event loop thread) and the
Prometheus collector (``collector/prometheus.py``), the OTLP metric callbacks and the series
sampler read them when asked. This is one of the reasons telemetry costs the gateway
little: the work happens per scrape, not per request.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

from paystab.collector.names import LATENCY_BUCKETS_S


@dataclass
class Exemplar:
    trace_id: str
    value_s: float
    timestamp: float


class Histogram:
    """Cumulative-on-read latency histogram with one exemplar per bucket."""

    __slots__ = ("bounds", "counts", "exemplars", "sum_s")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # last = +Inf
        self.exemplars: list[Exemplar | None] = [None] * (len(bounds) + 1)
        self.sum_s = 0.0

    def observe(self, value_s: float) -> int:
        index = bisect.bisect_left(self.bounds, value_s)
        self.counts[index] += 1
        self.sum_s += value_s
        return index

    def set_exemplar(self, index: int, trace_id: str, value_s: float) -> None:
        self.exemplars[index] = Exemplar(trace_id, value_s, time.time())

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out

    def quantile(self, q: float) -> float | None:
        """Quantile by linear interpolation inside the bucket, like histogram_quantile()."""
        total = self.count
        if total == 0:
            return None
        rank = q * total
        running = 0
        for i, c in enumerate(self.counts):
            if running + c >= rank and c > 0:
                lo = self.bounds[i - 1] if i > 0 else 0.0
                hi = self.bounds[i] if i < len(self.bounds) else self.bounds[-1]
                return lo + (hi - lo) * ((rank - running) / c)
            running += c
        return self.bounds[-1]


@dataclass
class ProviderStats:
    name: str
    methods: tuple[str, ...] = ()
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)  # (outcome, error_type)
    latency: Histogram = field(default_factory=Histogram)
    # token -> monotonic start; dicts keep insertion order, so the first entry is the oldest
    inflight: dict[int, float] = field(default_factory=dict)
    health_score: float = 1.0
    breaker_state: str = "closed"
    drained: bool = False
    failovers: dict[str, int] = field(default_factory=lambda: {"drain": 0, "restore": 0})
    late_success_voids: int = 0

    def count_attempt(self, outcome: str, error_type: str) -> None:
        key = (outcome, error_type)
        self.attempts[key] = self.attempts.get(key, 0) + 1

    def oldest_inflight_age_s(self, now: float | None = None) -> float:
        if not self.inflight:
            return 0.0
        first = next(iter(self.inflight.values()))
        return max(0.0, (now if now is not None else time.monotonic()) - first)


@dataclass
class GatewayStats:
    providers: dict[str, ProviderStats] = field(default_factory=dict)
    payments: dict[tuple[str, str], int] = field(default_factory=dict)  # (method, outcome)
    durations: dict[str, Histogram] = field(default_factory=dict)  # method -> histogram
    inflight: int = 0
    shed: int = 0
    retries: dict[str, int] = field(default_factory=dict)  # reason -> count
    retry_budget_exhausted: int = 0

    def provider(self, name: str, methods: tuple[str, ...] = ()) -> ProviderStats:
        stats = self.providers.get(name)
        if stats is None:
            stats = self.providers[name] = ProviderStats(name, methods)
        return stats

    def count_payment(self, method: str, outcome: str, duration_s: float) -> None:
        key = (method, outcome)
        self.payments[key] = self.payments.get(key, 0) + 1
        hist = self.durations.get(method)
        if hist is None:
            hist = self.durations[method] = Histogram()
        hist.observe(duration_s)

    def count_retry(self, reason: str) -> None:
        self.retries[reason] = self.retries.get(reason, 0) + 1
