"""What the drill saw, on the drill's clock: customer requests and provider samples.

Customer records come from the load harness (one per checkout); they are bucketed by
arrival second so the live view, ``abort_when`` conditions and steady-state probes can ask
for "the last 30 s" cheaply, and kept whole for the SLO math at the end. Provider samples
come from the series sampler and are folded into one :class:`ProviderPoint` per provider per
second for the report's plots.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from paystab.collector.series import Sample
from paystab.report.model import ProviderPoint
from paystab.slo import RequestSample
from paystab.stats_math import percentile

# A failure that ended this close before the stop signal is still counted as cut off: the
# signal reaches the drill a few milliseconds after the terminal delivered it to the group.
CUT_OFF_SLACK_S = 0.05


@dataclass
class _Second:
    requests: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class Recorder:
    def __init__(self, t0_wall: float) -> None:
        self.t0_wall = t0_wall
        self.samples: list[RequestSample] = []
        self._seconds: dict[int, _Second] = defaultdict(_Second)
        self._providers: dict[tuple[str, int], ProviderPoint] = {}
        self._drained: dict[str, bool] = {}
        self._lock = threading.Lock()
        # Set when the drill is stopped early (Ctrl-C, SIGTERM, abort_when): a checkout that
        # failed at or after that moment was cut off by the stop, not failed by the stack.
        self.stopped_at: float | None = None
        self.cut_off = 0
        self.generator_lags_ms: list[float] = []  # scheduled arrival → start, per checkout

    def stop_at(self, wall: float) -> None:
        if self.stopped_at is None:
            self.stopped_at = wall

    # -- inputs -----------------------------------------------------------------------------
    def on_checkout(self, record: Any) -> None:
        stopped = self.stopped_at
        if (stopped is not None and record.outcome == "failed"
                and float(record.started_at) + float(record.latency_ms) / 1000.0 >= stopped - CUT_OFF_SLACK_S):
            with self._lock:
                self.cut_off += 1
            return
        t_s = float(record.started_at) - self.t0_wall
        sample = RequestSample(t_s, str(record.outcome), float(record.latency_ms))
        with self._lock:
            self.generator_lags_ms.append(float(getattr(record, "lag_ms", 0.0)))
            self.samples.append(sample)
            second = self._seconds[math.floor(t_s)]
            second.requests += 1
            second.failed += sample.outcome == "failed"
            second.latencies_ms.append(sample.latency_ms)

    def on_samples(self, samples: list[Sample]) -> None:
        with self._lock:
            for s in samples:
                t = math.floor(s.time - self.t0_wall)
                key = (s.provider, t)
                point = self._providers.get(key)
                if point is None:
                    point = self._providers[key] = ProviderPoint(float(t), s.provider)
                point.attempts += s.attempts
                point.failures += s.failures
                point.timeouts += s.timeouts
                if s.p95_ms is not None:
                    point.p95_ms = max(point.p95_ms or 0.0, s.p95_ms)
                point.oldest_inflight_age_s = max(point.oldest_inflight_age_s or 0.0, s.oldest_inflight_age_s)
                point.drained = self._drained.get(s.provider, False)

    def set_drained(self, provider: str, drained: bool) -> None:
        with self._lock:
            self._drained[provider] = drained

    # -- queries ----------------------------------------------------------------------------
    def window(self, end_s: float, window_s: float) -> dict[str, float | None]:
        """Customer metrics over arrivals in [end_s - window_s, end_s)."""
        lo, hi = math.floor(end_s - window_s), math.floor(end_s)
        requests = failed = 0
        latencies: list[float] = []
        with self._lock:
            for t in range(lo, hi):
                second = self._seconds.get(t)
                if second:
                    requests += second.requests
                    failed += second.failed
                    latencies.extend(second.latencies_ms)
        latencies.sort()
        return {
            "requests": float(requests),
            "availability": (requests - failed) / requests if requests else None,
            "failure_rate": failed / requests if requests else None,
            "p50_ms": percentile(latencies, 50.0),
            "p95_ms": percentile(latencies, 95.0),
            "p99_ms": percentile(latencies, 99.0),
            "rps": requests / window_s if window_s > 0 else None,
        }

    def totals(self) -> tuple[int, int]:
        with self._lock:
            return len(self.samples), sum(1 for s in self.samples if s.outcome == "failed")

    def provider_points(self) -> list[ProviderPoint]:
        with self._lock:
            return sorted(self._providers.values(), key=lambda p: (p.t_s, p.provider))

    def recent_provider_rates(self, now_s: float, span_s: int = 5) -> dict[str, tuple[float, float | None]]:
        """provider → (attempts per second, success ratio) over the last seconds."""
        out: dict[str, tuple[float, float | None]] = {}
        hi = math.floor(now_s)
        with self._lock:
            by_provider: dict[str, list[ProviderPoint]] = defaultdict(list)
            for (provider, t), point in self._providers.items():
                if hi - span_s <= t < hi:
                    by_provider[provider].append(point)
        for provider, points in by_provider.items():
            attempts = sum(p.attempts for p in points)
            failures = sum(p.failures for p in points)
            out[provider] = (attempts / span_s, 1 - failures / attempts if attempts else None)
        return out
