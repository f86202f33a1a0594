"""The labelled corpus of the detection benchmark: seeded synthetic provider traffic.

Two levels of detail, both reproducible from a ``numpy`` generator:

* :class:`AttemptStream` — the Bernoulli stream of one provider: per-second attempt counts
  (Poisson around a rate that may vary: surges, diurnal swings) and the exact indices of the
  failed attempts. The failure probability is piecewise constant in *attempt* index
  (segments), drawn as geometric gaps, so a stream of days costs memory only per failure.
  The failure-rate detector and the baselines (fixed threshold, Prometheus rule, Envoy
  consecutive-5xx) all read the same stream.
* :func:`request_samples` — request-level traffic (Poisson arrivals, log-normal latency, a
  hang, a latency shift or one slow request) reduced to the 100 ms :class:`Sample` series the
  sampler would produce (completions, histogram quantiles on the gateway's buckets, in-flight
  count, oldest in-flight age), for the hang and latency detectors.
  :func:`request_rounds` runs several providers through the same host, so host-wide
  slowness (every latency x3, event-loop stalls, a starved load generator bursting its
  backlog, a cold start) reaches all of them at once, with the loop-lag gauge and the peer
  context the sampler adds.
* :func:`noisy_stream` — the failure-rate corpus with the noise of real traffic (issue 12):
  over-dispersed arrivals, a baseline drifting between 0.1 % and 0.9 %, isolated clusters
  of 2–4 extra failures (a dozen per provider-day), 10x surges, at any volume.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from paystab.collector.names import LATENCY_BUCKETS_S
from paystab.collector.series import Sample, histogram_quantile, with_peer_context

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass
class AttemptStream:
    """One provider's attempts: ``per_second[s]`` attempts in second ``s`` and the sorted
    indices of the failed ones (attempt ``i`` happens in second ``second_of(i)``)."""

    per_second: IntArray
    failures: IntArray

    @property
    def attempts(self) -> int:
        return int(self.per_second.sum())

    def cumulative(self) -> IntArray:
        return np.cumsum(self.per_second)

    def time_of(self, index: IntArray | int) -> FloatArray:
        """Time (s) of attempts by index: spread evenly inside their second."""
        cum = self.cumulative()
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        sec = np.searchsorted(cum, idx, side="right")
        start = np.where(sec > 0, cum[np.maximum(sec - 1, 0)], 0)
        within = (idx - start + 0.5) / np.maximum(self.per_second[np.minimum(sec, len(cum) - 1)], 1)
        return np.asarray(sec + within, dtype=np.float64)

    def index_at(self, t_s: float) -> int:
        """Index of the first attempt at or after ``t_s``."""
        cum = self.cumulative()
        whole = int(t_s)
        if whole <= 0:
            return 0
        return int(cum[min(whole, len(cum)) - 1])

    def failures_per_second(self) -> IntArray:
        cum = self.cumulative()
        seconds = np.searchsorted(cum, self.failures, side="right")
        return np.bincount(seconds, minlength=len(cum)).astype(np.int64)


def failure_indices(rng: np.random.Generator, segments: Sequence[tuple[int, float]]) -> IntArray:
    """Failed attempt indices for consecutive segments of ``(attempts, failure prob)``."""
    out: list[IntArray] = []
    offset = 0
    for length, p in segments:
        if length <= 0:
            continue
        if p >= 1.0:
            out.append(np.arange(offset, offset + length, dtype=np.int64))
        elif p > 0.0:
            chunks = []
            position = -1
            while True:
                n = int(length * p + 6 * np.sqrt(length * p) + 16)
                steps = np.cumsum(rng.geometric(p, size=n)) + position
                chunks.append(steps[steps < length])
                if steps[-1] >= length:
                    break
                position = int(steps[-1])
            out.append(np.concatenate(chunks).astype(np.int64) + offset)
        offset += length
    if not out:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(out)


def poisson_counts(rng: np.random.Generator, rates: FloatArray) -> IntArray:
    return np.asarray(rng.poisson(np.maximum(rates, 0.0)), dtype=np.int64)


def stream(
    rng: np.random.Generator,
    rates: FloatArray,
    prob_of_second: Callable[[FloatArray], FloatArray],
    change_seconds: Sequence[float] = (),
) -> AttemptStream:
    """A stream whose failure probability is ``prob_of_second(s)``, made piecewise
    constant per minute and at each of ``change_seconds`` (whole seconds), each piece taking
    the probability at its first second."""
    per_second = poisson_counts(rng, rates)
    cum = np.concatenate(([0], np.cumsum(per_second)))
    cuts = sorted({0, len(rates), *range(0, len(rates), 60), *(int(c) for c in change_seconds)})
    cuts = [c for c in cuts if 0 <= c <= len(rates)]
    segments = []
    for a, b in itertools.pairwise(cuts):
        p = float(prob_of_second(np.asarray([float(a)]))[0])
        segments.append((int(cum[b] - cum[a]), p))
    return AttemptStream(per_second, failure_indices(rng, segments))


def step_stream(
    rng: np.random.Generator, rate: float, seconds: int, change_s: float, p0: float, p1: float
) -> AttemptStream:
    """Constant traffic; failure rate ``p0`` until ``change_s``, then ``p1``."""
    rates = np.full(seconds, float(rate))
    return stream(rng, rates, lambda s: np.where(s < change_s, p0, p1), (change_s,))


# -- request level -----------------------------------------------------------------------


@dataclass(frozen=True)
class RequestEpisode:
    rate: float  # arrivals per second
    seconds: float
    median_ms: float = 80.0
    sigma: float = 0.5
    event_s: float | None = None  # when the hang / shift / slow request happens
    hang_ratio: float = 0.0  # share of attempts in flight or arriving after event_s that hang
    latency_factor: float = 1.0  # after event_s
    added_ms: float = 0.0  # after event_s
    slow_request_s: float = 0.0  # one request of this duration at event_s
    surge_factor: float = 1.0  # arrival rate multiplier from event_s to event_s + surge_s
    surge_s: float = 0.0
    # host-wide slowness from host_start_s for host_s seconds (the same for every provider)
    host_start_s: float | None = None
    host_s: float = 0.0
    host_factor: float = 1.0  # latency multiplier of attempts starting then
    stall_every_s: float = 0.0  # the gateway's loop blocked for stall_s every stall_every_s
    stall_s: float = 0.0
    starve_every_s: float = 0.0  # the load generator sends nothing for starve_s, then bursts
    starve_s: float = 0.0

    def stalls(self) -> list[tuple[float, float]]:
        if self.host_start_s is None or self.stall_every_s <= 0 or self.stall_s <= 0:
            return []
        first = self.host_start_s
        count = int(self.host_s / self.stall_every_s)
        return [(first + k * self.stall_every_s, first + k * self.stall_every_s + self.stall_s)
                for k in range(count)]

    def loop_lag_s(self, t: float, window_s: float = 1.0) -> float:
        """The gateway's gauge at ``t``: the largest stall seen over the last ``window_s``,
        an ongoing one included (``stack/loop_lag.py``)."""
        return max((min(t, b) - a for a, b in self.stalls() if a <= t and b >= t - window_s),
                   default=0.0)


def request_samples(
    rng: np.random.Generator, ep: RequestEpisode, provider: str = "psp", interval_s: float = 0.1
) -> list[Sample]:
    """The sampler's view of a request-level episode, every ``interval_s``."""
    base_n = rng.poisson(ep.rate * ep.seconds)
    starts = np.sort(rng.uniform(0.0, ep.seconds, size=base_n))
    if ep.surge_factor > 1.0 and ep.event_s is not None:
        extra = rng.poisson(ep.rate * (ep.surge_factor - 1.0) * ep.surge_s)
        starts = np.sort(np.concatenate(
            (starts, rng.uniform(ep.event_s, ep.event_s + ep.surge_s, size=extra))))
    if ep.host_start_s is not None and ep.starve_every_s > 0 and ep.starve_s > 0:
        # arrivals the starved generator could not send go out together when it wakes
        phase = np.mod(starts - ep.host_start_s, ep.starve_every_s)
        held = (starts >= ep.host_start_s) & (starts < ep.host_start_s + ep.host_s) & (
            phase < ep.starve_s)
        starts = np.sort(np.where(held, starts - phase + ep.starve_s, starts))
    latency = np.exp(rng.normal(np.log(ep.median_ms / 1000.0), ep.sigma, size=len(starts)))
    if ep.host_start_s is not None and ep.host_factor != 1.0:
        slow = (starts >= ep.host_start_s) & (starts < ep.host_start_s + ep.host_s)
        latency = np.where(slow, latency * ep.host_factor, latency)
    event = ep.event_s if ep.event_s is not None else np.inf
    after = starts >= event
    latency = np.where(after, latency * ep.latency_factor + ep.added_ms / 1000.0, latency)
    ends = starts + latency
    if ep.hang_ratio > 0.0:
        hangs = (ends > event) & (rng.random(len(starts)) < ep.hang_ratio)
        ends = np.where(hangs, np.inf, ends)
    for a, b in ep.stalls():  # a completion during a stall is seen when the loop runs again
        ends = np.where((ends >= a) & (ends < b), b, ends)
    if ep.slow_request_s > 0.0:
        starts = np.append(starts, event)
        ends = np.append(ends, event + ep.slow_request_s)
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], ends[order]
    sorted_ends = np.sort(ends)
    stuck_starts = np.sort(starts[np.isinf(ends)])
    window = 30.0
    bounds = np.asarray((*LATENCY_BUCKETS_S, np.inf))
    out = []
    t = interval_s
    while t <= ep.seconds + 1e-9:
        lo, hi = np.searchsorted(sorted_ends, [t - interval_s, t], side="right")
        done_lat = _latencies_completed(starts, ends, t - interval_s, t)
        buckets = [(float(b), float(c)) for b, c in
                   zip(bounds, np.searchsorted(np.sort(done_lat), bounds, side="right"),
                       strict=True)]
        q = [histogram_quantile(x, buckets) for x in (0.5, 0.95, 0.99)] if len(done_lat) else [
            None, None, None]
        started = int(np.searchsorted(starts, t, side="right"))
        ended = int(np.searchsorted(sorted_ends, t, side="right"))
        a, b = np.searchsorted(starts, [t - window, t], side="right")
        alive = np.nonzero(ends[a:b] > t)[0]
        oldest = float(starts[a + alive[0]]) if len(alive) else np.inf
        if len(stuck_starts) and stuck_starts[0] <= t:  # hung longer than the window
            oldest = min(oldest, float(stuck_starts[0]))
        out.append(Sample(
            time=t, provider=provider, attempts=int(hi - lo),
            p50_ms=None if q[0] is None else q[0] * 1000.0,
            p95_ms=None if q[1] is None else q[1] * 1000.0,
            p99_ms=None if q[2] is None else q[2] * 1000.0,
            inflight=float(started - ended),
            oldest_inflight_age_s=0.0 if np.isinf(oldest) else t - oldest,
            interval_s=interval_s,
            loop_lag_s=ep.loop_lag_s(t),
        ))
        t = round(t + interval_s, 9)
    return out


def _latencies_completed(starts: FloatArray, ends: FloatArray, t0: float, t1: float
                         ) -> FloatArray:
    # requests are sorted by start and last at most a few seconds unless they hang
    a = int(np.searchsorted(starts, t1 - 30.0, side="left"))
    b = int(np.searchsorted(starts, t1, side="right"))
    e = ends[a:b]
    mask = (e > t0) & (e <= t1)
    return np.asarray(e[mask] - starts[a:b][mask], dtype=np.float64)


def request_rounds(
    rng: np.random.Generator, episodes: dict[str, RequestEpisode], interval_s: float = 0.1
) -> list[list[Sample]]:
    """Several providers behind one gateway: per round (sampling interval) one sample per
    provider, with the peer context the sampler adds. The episodes should share their
    length and host-wide fields."""
    per = [request_samples(rng, ep, name, interval_s) for name, ep in episodes.items()]
    return [with_peer_context(list(r)) for r in zip(*per, strict=False)]


# -- the noisy failure-rate corpus -------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """The noise of real traffic around a mean ``rate`` (attempts/s)."""

    rate: float
    dispersion_cv: float = 0.5  # arrivals: Poisson around a gamma-distributed rate per 10 s
    p_low: float = 0.001  # the baseline failure rate drifts inside [p_low, p_high]
    p_high: float = 0.009
    clusters_per_day: float = 12.0  # isolated clusters of 2-4 extra failures in a row
    surges_per_day: float = 2.0  # 10x traffic for surge_s
    surge_factor: float = 10.0
    surge_s: float = 600.0


@dataclass
class NoisyStream:
    stream: AttemptStream
    baseline: FloatArray  # the true baseline failure rate per second (before any change)
    rates: FloatArray  # the mean arrival rate per second
    clusters: list[float]  # times of the injected clusters


def noisy_stream(rng: np.random.Generator, noise: Noise, seconds: int,
                 change_s: float | None = None, p1: float = 0.0) -> NoisyStream:
    """``seconds`` of one provider's traffic with ``noise``; from ``change_s`` on (whole
    second) the failure rate is ``p1``. The baseline drifts smoothly (two sinusoids of
    random phase, 24 h and 7 h) and is piecewise constant per minute."""
    t = np.arange(seconds, dtype=np.float64)
    shape = 1.0 / noise.dispersion_cv**2
    blocks = rng.gamma(shape, 1.0 / shape, size=seconds // 10 + 1)
    rates = noise.rate * np.repeat(blocks, 10)[:seconds]
    for _ in range(int(rng.poisson(noise.surges_per_day * seconds / 86400.0))):
        a = int(rng.integers(0, max(1, seconds)))
        rates[a:a + int(noise.surge_s)] *= noise.surge_factor
    phase = rng.uniform(0.0, 2 * np.pi, size=2)
    wave = 0.6 * np.sin(2 * np.pi * t / 86400.0 + phase[0]) + 0.4 * np.sin(
        2 * np.pi * t / 25200.0 + phase[1])
    baseline = noise.p_low + (noise.p_high - noise.p_low) * (wave + 1.0) / 2.0
    changes = () if change_s is None else (change_s,)

    def prob(s: FloatArray) -> FloatArray:
        idx = np.minimum(s.astype(np.int64), seconds - 1)
        p = baseline[idx]
        return np.asarray(p if change_s is None else np.where(s < change_s, p, p1))

    s = stream(rng, rates, prob, changes)
    clusters: list[float] = []
    extra: list[IntArray] = []
    horizon = seconds if change_s is None else int(change_s)
    cum = s.cumulative()
    for _ in range(int(rng.poisson(noise.clusters_per_day * horizon / 86400.0))):
        at = float(rng.uniform(0, horizon))
        first = int(cum[int(at) - 1]) if int(at) > 0 else 0
        k = int(rng.integers(2, 5))
        if first + k <= s.attempts:
            extra.append(np.arange(first, first + k, dtype=np.int64))
            clusters.append(at)
    if extra:
        s = AttemptStream(s.per_second, np.union1d(s.failures, np.concatenate(extra)))
    return NoisyStream(s, baseline, rates, clusters)
