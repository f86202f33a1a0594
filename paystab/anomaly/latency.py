"""Latency-shift detector: a CUSUM on the log-ratio of a latency quantile to its baseline.

Each sample contributes ``w * (clip(ln(q / q_base)) - allowance)`` where ``q`` is the
interval's quantile, ``q_base`` its learned baseline and ``w = min(1, attempts /
min_attempts)``, so an interval with one attempt weighs little. By default ``q`` is the
median: a per-interval p95 depends on how many attempts the interval holds (the p95 of one
attempt is that attempt), so a traffic surge would move it; the median does not. The p95 is
used when that is all a sample carries (the ``payments`` CSV). The log makes it scale-free
(a provider at 80 ms and one at 800 ms are treated alike); the allowance ignores shifts
under ~30 %; the clip bounds what a single interval can add, so one very slow request (one
outlier in one interval) cannot alarm on its own: it takes several intervals of
consistently slower answers. The baseline is an EWMA of ``ln q`` learned after a warm-up
and frozen while the statistic is half-way to alarming.
Hangs (no answers at all) are the ``hang`` detector's job.

Host-wide slowness is not a provider's: the quantile is taken net of the gateway's
event-loop lag (``Sample.loop_lag_s``; a blocked loop delays every completion), and when
the sample carries its peers' median p50 (``Sample.peer_p50_ms``, the sampler adds it) the
interval's evidence is the *smaller* of two shifts — against the provider's own baseline,
and of its ratio to its peers against the usual ratio. A provider slower on its own moves
both; every provider slower together (a busy host) moves only the first, so it adds
nothing. The ratio's baseline is learned like the quantile's.

A busy host does not only multiply latencies, it also *adds* to them (queueing in the
gateway: under a flash sale on a loaded machine every p50 converged to ~500 ms, a 29 ms
provider and a 90 ms one alike, and the ratio test alone flagged the fast one). So a third
shift is taken, and the smallest of the three counts: the provider's latency minus the
median excess of its peers over their own baselines (their latest samples, fed to this same
detector). A real slowdown of one provider survives all three; a host that multiplies or
adds to everyone's latency fails one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from paystab.anomaly import base
from paystab.anomaly.base import Detection
from paystab.collector.series import Sample, median_without

_QUANTILES = ("auto", "p50", "p95", "p99")


@dataclass(frozen=True)
class LatencyConfig:
    quantile: str = "auto"  # p50 when the sample has it, else p95
    allowance: float = field(default=0.26, metadata={"lo": 0.0})  # ln(1.3)
    threshold: float = field(default=4.0, metadata={"lo": 0.1})
    clip: float = field(default=1.5, metadata={"lo": 0.1})
    min_attempts: float = field(default=5.0, metadata={"lo": 1.0})
    baseline_alpha: float = field(default=0.01, metadata={"lo": 1e-5, "hi": 1.0})
    warmup_samples: int = field(default=20, metadata={"lo": 1})


class _State:
    __slots__ = ("base_log", "last_q_ms", "last_t", "n", "n_rel", "rel_log", "s", "start")

    def __init__(self) -> None:
        self.base_log = 0.0
        self.n = 0.0  # weight of the baseline so far
        self.rel_log = 0.0  # usual ln(q / peers' median q)
        self.n_rel = 0.0
        self.s = 0.0
        self.start: float | None = None
        self.last_q_ms = 0.0  # latest quantile net of loop lag, for the peers' excess
        self.last_t = -math.inf


class LatencyDetector:
    """The registered ``latency`` detector."""

    name = "latency"

    def __init__(self, config: LatencyConfig | None = None) -> None:
        self.config = config or LatencyConfig()
        if self.config.quantile not in _QUANTILES:
            from paystab.exceptions import InvalidInput

            raise InvalidInput(
                f"unknown quantile '{self.config.quantile}'",
                field="quantile",
                expected="one of " + ", ".join(_QUANTILES),
            )
        self.states: dict[str, _State] = {}
        self._round_t = -math.inf
        self._round_excess: dict[str, float] = {}
        self._round_sorted: list[float] = []

    def update(self, sample: Sample) -> Detection | None:
        cfg = self.config
        quantile = ("p50" if sample.p50_ms is not None else "p95") if cfg.quantile == "auto" else cfg.quantile
        value = getattr(sample, f"{quantile}_ms")
        if value is None or value <= 0 or sample.attempts <= 0:
            return None
        st = self.states.get(sample.provider)
        if st is None:
            st = self.states[sample.provider] = _State()
        w = min(1.0, sample.attempts / cfg.min_attempts)
        lag_ms = sample.loop_lag_s * 1000.0
        log_q = math.log(max(value - lag_ms, 0.2 * value))
        rel = None
        if sample.peer_p50_ms is not None and sample.peer_p50_ms > 0 and quantile == "p50":
            peer = sample.peer_p50_ms
            rel = log_q - math.log(max(peer - lag_ms, 0.2 * peer))
        if st.n < cfg.warmup_samples:
            st.base_log += (log_q - st.base_log) * w / (st.n + w)  # running weighted mean
            st.n += w
            if rel is not None:
                st.rel_log += (rel - st.rel_log) * w / (st.n_rel + w)
                st.n_rel += w
            return None
        st.last_q_ms, st.last_t = math.exp(log_q), sample.time
        z = log_q - st.base_log
        if rel is not None and st.n_rel >= 0.5 * cfg.warmup_samples:
            z = min(z, rel - st.rel_log)  # slower than its peers, not only than itself
        excess = self._peers_excess_ms(sample)
        if excess is not None and excess > 0:
            q = math.exp(log_q)
            z = min(z, math.log(max(q - excess, 0.2 * q)) - st.base_log)
        z = max(-cfg.clip, min(cfg.clip, z))
        before = st.s
        st.s = max(0.0, st.s + w * (z - cfg.allowance))
        if before == 0.0 and st.s > 0.0:
            st.start = sample.time - sample.interval_s
        if st.s < 0.5 * cfg.threshold:
            st.base_log += cfg.baseline_alpha * w * (log_q - st.base_log)
            if rel is not None:
                if st.n_rel < cfg.warmup_samples:
                    st.rel_log += (rel - st.rel_log) * w / (st.n_rel + w)
                    st.n_rel += w
                else:
                    st.rel_log += cfg.baseline_alpha * w * (rel - st.rel_log)
        if st.s < cfg.threshold:
            return None
        score = st.s / cfg.threshold
        st.s = 0.0
        peers = ("" if sample.peer_p50_ms is None else
                 f", peers' median p50 {sample.peer_p50_ms:.0f} ms")
        reason = (
            f"{quantile} latency {value:.0f} ms vs a baseline of "
            f"{math.exp(st.base_log):.0f} ms{peers}, consistently over several intervals"
        )
        return Detection(sample.provider, self.name, sample.time, score, reason, st.start)

    def _peers_excess_ms(self, sample: Sample) -> float | None:
        """Median over the other providers (fresh samples, past warm-up) of how far their
        latest quantile sits above their own baseline, in ms; None without peers. The
        excesses are taken once per round (at its first sample: the peers' previous
        samples), so a round of n providers costs n log n, not n^2."""
        if sample.time != self._round_t:
            self._round_t = sample.time
            fresh = sample.time - max(1.0, 3.0 * sample.interval_s)
            self._round_excess = {
                name: st.last_q_ms - math.exp(st.base_log) for name, st in self.states.items()
                if st.last_t >= fresh and st.n >= self.config.warmup_samples}
            self._round_sorted = sorted(self._round_excess.values())
        return median_without(self._round_sorted, self._round_excess.get(sample.provider))

    def reset(self, provider: str | None = None) -> None:
        for name, st in self.states.items():
            if provider is None or name == provider:
                st.s = 0.0


base.register("latency", LatencyConfig, LatencyDetector)
