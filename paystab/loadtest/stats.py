"""SLO arithmetic over checkout records: a summary for any time span, and windows.

The same :class:`Summary` serves the whole run, each window, each capacity step and the
live view, so a threshold means the same thing everywhere. Definitions:

* ``failure_rate`` = failed / requests; ``availability`` = answered / requests (approved,
  declined and pending are answers — a decline is a correct answer, not an outage);
* ``dropped_rate`` = dropped arrivals / (requests + dropped): arrivals the generator could
  not start because every user was busy — the slow responses coordinated omission hides;
* ``rps`` = requests / span length; latency percentiles (ms) by linear interpolation.

Windows are fixed-length slices of the run by checkout start time; a last slice shorter
than half a window is merged into the previous one so a tail of a few requests cannot fail
a percentile threshold on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from paystab import stats_math
from paystab.loadtest.records import DROP_TICK_S, CheckoutRecord


def _percentile_or_nan(sorted_values: Sequence[float], q: float) -> float:
    """:func:`paystab.stats_math.percentile` (q in percent) with nan for no data: a
    :class:`Summary` field is a float, and ``to_json`` turns nan into null."""
    value = stats_math.percentile(sorted_values, q)
    return math.nan if value is None else value


@dataclass(frozen=True)
class Summary:
    start_s: float  # seconds from the run start
    end_s: float
    requests: int
    approved: int
    declined: int
    pending: int
    failed: int
    dropped: int
    attempts: int
    failure_rate: float
    availability: float
    decline_rate: float
    dropped_rate: float
    rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    min_ms: float
    max_ms: float
    latencies_ms: tuple[float, ...] = ()  # sorted; kept for p(N) thresholds, not serialised

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def retries(self) -> int:
        return self.attempts - self.requests

    def latency_percentile(self, q: float) -> float:
        return _percentile_or_nan(self.latencies_ms, q)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["latencies_ms"]
        data["retries"] = self.retries
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in data.items()}


def summarize(
    records: Sequence[CheckoutRecord], dropped: int, start_s: float, end_s: float,
) -> Summary:
    """Summary of ``records`` (already selected) plus ``dropped`` arrivals over a span."""
    counts = dict.fromkeys(("approved", "declined", "pending", "failed"), 0)
    attempts = 0
    for r in records:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
        attempts += r.attempts
    latencies = tuple(sorted(r.latency_ms for r in records))
    n = len(records)
    span = max(end_s - start_s, 1e-9)
    nan = math.nan
    return Summary(
        start_s=start_s, end_s=end_s, requests=n, approved=counts["approved"],
        declined=counts["declined"], pending=counts["pending"], failed=counts["failed"],
        dropped=dropped, attempts=attempts,
        failure_rate=counts["failed"] / n if n else nan,
        availability=(n - counts["failed"]) / n if n else nan,
        decline_rate=counts["declined"] / n if n else nan,
        dropped_rate=dropped / (n + dropped) if n + dropped else nan,
        rps=n / span,
        p50_ms=_percentile_or_nan(latencies, 50), p90_ms=_percentile_or_nan(latencies, 90),
        p95_ms=_percentile_or_nan(latencies, 95), p99_ms=_percentile_or_nan(latencies, 99),
        avg_ms=sum(latencies) / n if n else nan,
        min_ms=latencies[0] if n else nan, max_ms=latencies[-1] if n else nan,
        latencies_ms=latencies,
    )


def dropped_between(dropped_by_tick: Mapping[int, int], t0: float, t1: float) -> int:
    """Dropped arrivals whose tick starts in [t0, t1) (epoch seconds)."""
    return sum(c for tick, c in dropped_by_tick.items() if t0 <= tick * DROP_TICK_S + 1e-9 < t1)


def span_summary(
    records: Sequence[CheckoutRecord], dropped_by_tick: Mapping[int, int],
    run_start: float, start_s: float, end_s: float,
) -> Summary:
    """Summary of the checkouts that started in [start_s, end_s) seconds from ``run_start``."""
    t0, t1 = run_start + start_s, run_start + end_s
    chosen = [r for r in records if t0 <= r.started_at < t1]
    return summarize(chosen, dropped_between(dropped_by_tick, t0, t1), start_s, end_s)


@dataclass(frozen=True)
class Window:
    index: int
    summary: Summary

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, **self.summary.to_json()}


def window_bounds(duration_s: float, window_s: float) -> list[tuple[float, float]]:
    """[start, end) pairs covering [0, duration_s); a short tail joins the previous slice."""
    if window_s <= 0:
        raise ValueError("window must be > 0")
    bounds: list[tuple[float, float]] = []
    t = 0.0
    while t < duration_s - 1e-9:
        bounds.append((t, min(t + window_s, duration_s)))
        t += window_s
    if len(bounds) >= 2 and bounds[-1][1] - bounds[-1][0] < window_s / 2:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def windows(
    records: Sequence[CheckoutRecord], dropped_by_tick: Mapping[int, int], run_start: float,
    duration_s: float, window_s: float,
) -> list[Window]:
    """Per-window summaries of a run, in time order (one pass over the records)."""
    bounds = window_bounds(duration_s, window_s)
    buckets: list[list[CheckoutRecord]] = [[] for _ in bounds]
    for r in records:
        offset = r.started_at - run_start
        i = min(max(int(offset // window_s), 0), len(bounds) - 1) if bounds else 0
        if bounds:
            buckets[i].append(r)
    out: list[Window] = []
    for i, (b0, b1) in enumerate(bounds):
        # the first and last windows also take drops just outside the run (clock skew)
        lo = run_start + b0 if i else -math.inf
        hi = run_start + b1 if i < len(bounds) - 1 else math.inf
        dropped = dropped_between(dropped_by_tick, lo, hi)
        out.append(Window(i, summarize(buckets[i], dropped, b0, b1)))
    return out
