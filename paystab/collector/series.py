"""Per-provider time series: one :class:`Sample` per provider per sampling interval.

The sampler (``collector/sampler.py``) turns the gateway's cumulative Prometheus counters
into these per-interval deltas; the detectors (``anomaly/``) consume them. A sample is what
happened to one provider during ``[time - interval_s, time]``: attempts that completed,
failures among them (``outcome="error"`` only — customer declines are correct answers and
never count), timeouts, latency quantiles of the completed attempts, and two gauges read at
``time``: how many attempts are in flight and how old the oldest one is. The last gauge is
what lets the hang detector see a provider that stopped answering before any attempt
completes (or times out).

Two more things make "this provider is slow" distinguishable from "this host is slow":
``loop_lag_s``, the gateway's event-loop lag at ``time`` (the same for every provider: a
blocked loop ages every in-flight attempt and delays every completion), and the **peer
context** that :func:`with_peer_context` adds to each sample of one round — the median
oldest in-flight age and the median p50 of the *other* providers carrying traffic in the
same interval. A provider that is slow together with its peers is not a provider anomaly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """What one provider did during one sampling interval ending at ``time`` (unix s)."""

    time: float
    provider: str
    attempts: int = 0  # completed attempts in the interval (approved+declined+pending+error)
    failures: int = 0  # outcome="error" among them; declines excluded
    timeouts: int = 0  # error_type="timeout" among the failures
    p50_ms: float | None = None  # None when no attempt completed in the interval
    p95_ms: float | None = None
    p99_ms: float | None = None
    inflight: float = 0.0  # gauge at `time`
    oldest_inflight_age_s: float = 0.0  # gauge at `time`; 0 when nothing is in flight
    interval_s: float = 0.0  # length of the interval (0 when unknown)
    loop_lag_s: float = 0.0  # the gateway's event-loop lag at `time` (host-wide)
    # The gateway's breaker for this provider at `time` was not closed (open or half-open):
    # the gateway itself is holding its traffic back, so few attempts reach it.
    breaker_open: bool = False
    peers: int = 0  # other providers carrying traffic in the same round
    peer_oldest_inflight_age_s: float | None = None  # their median oldest in-flight age
    peer_p50_ms: float | None = None  # their median p50 (those that completed attempts)

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.attempts if self.attempts > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def median_without(ordered: Sequence[float], value: float | None) -> float | None:
    """The median of ``ordered`` (sorted) with one occurrence of ``value`` left out (none
    when ``value`` is None or absent): O(log n), so a round of n providers costs n log n."""
    import bisect

    n = len(ordered)
    k = -1
    if value is not None:
        k = bisect.bisect_left(ordered, value)
        if k >= n or ordered[k] != value:
            k = -1
    m = n - 1 if k >= 0 else n
    if m <= 0:
        return None

    def at(j: int) -> float:
        return ordered[j + 1 if 0 <= k <= j else j]

    mid = m // 2
    return at(mid) if m % 2 else 0.5 * (at(mid - 1) + at(mid))


def with_peer_context(samples: Sequence[Sample]) -> list[Sample]:
    """The samples of one round (one per provider, same interval), each with the median
    oldest in-flight age and median p50 of the *other* providers that carry traffic
    (attempts completed or in flight). A drained or idle provider is nobody's peer."""
    busy = [s for s in samples if s.attempts > 0 or s.inflight > 0]
    ages = sorted(s.oldest_inflight_age_s for s in busy)
    p50s = sorted(s.p50_ms for s in busy if s.p50_ms is not None)
    out = []
    for sample in samples:
        mine = sample.attempts > 0 or sample.inflight > 0
        peers = len(busy) - (1 if mine else 0)
        if peers <= 0:
            out.append(sample)
            continue
        out.append(replace(
            sample, peers=peers,
            peer_oldest_inflight_age_s=median_without(
                ages, sample.oldest_inflight_age_s if mine else None),
            peer_p50_ms=median_without(p50s, sample.p50_ms if mine else None),
        ))
    return out


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Quantile ``q`` (0..1) from cumulative histogram buckets ``[(le, count), ...]``.

    The same linear interpolation inside a bucket as Prometheus' ``histogram_quantile``:
    buckets sorted by upper bound, the ``+Inf`` bucket holding the total; a quantile that
    falls in the ``+Inf`` bucket answers the highest finite bound. ``None`` when empty.
    """
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered:
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            if width <= 0:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / width
        prev_le, prev_count = le, count
    return ordered[-1][0] if not math.isinf(ordered[-1][0]) else prev_le


def bucket_deltas(
    now: Mapping[float, float], before: Mapping[float, float] | None
) -> list[tuple[float, float]] | None:
    """Per-interval cumulative buckets (``now - before``); a counter reset answers ``now``.

    A reset (the process restarted, so any bucket went down) means ``before`` no longer
    applies: the new counts are what happened since the restart, the best delta we have.
    """
    if before is None:
        return sorted(now.items())
    if any(now.get(le, 0.0) < count for le, count in before.items()):
        return sorted(now.items())
    return sorted((le, count - before.get(le, 0.0)) for le, count in now.items())


def counter_delta(now: float, before: float | None) -> float:
    """Increase of a counter since ``before``; a reset (``now < before``) answers ``now``."""
    if before is None:
        return 0.0
    return now if now < before else now - before
