"""Hang detector: a provider that stopped answering, flagged before the gateway times out.

A hung provider completes nothing, so counters of completed attempts say nothing until the
gateway's own response timeout fires (2 s by default) — too late. What moves at once is the
**age of the oldest in-flight attempt** and the **number in flight**. One slow request makes
the age grow too, so the detector asks three things of each sample and alarms when all
hold for ``confirm_samples`` samples in a row:

1. the oldest in-flight attempt is older than ``age_factor`` x the provider's usual p99
   (learned), at least ``min_age_s`` and at most ``max_age_fraction`` of the gateway timeout
   — so the alarm comes by half the timeout even with a slow sampler;
2. attempts are piling up: in flight exceeds its learned level by ``min_stuck`` and by
   ``stuck_sigmas`` standard deviations (one slow request adds one);
3. completions have dropped: over the last age-threshold seconds, at most ``stalled_ratio``
   of the completions the learned rate predicts (checked when at least 2 are expected).

(``confirm_samples`` applies when samples are at most 250 ms apart; with a slower sampler
one sample suffices, so the alarm still comes before half the gateway timeout.)

After an alarm it stays quiet until the age falls back under the threshold (one alarm per
hang). The baseline (in-flight level, p99, completion rate) is learned by slow EWMAs only
while nothing looks wrong.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from paystab.anomaly import base
from paystab.anomaly.base import Detection
from paystab.collector.series import Sample


@dataclass(frozen=True)
class HangConfig:
    gateway_timeout_s: float = field(default=2.0, metadata={"lo": 0.05})
    min_age_s: float = field(default=0.3, metadata={"lo": 0.01})
    age_factor: float = field(default=2.0, metadata={"lo": 1.0})
    max_age_fraction: float = field(default=0.35, metadata={"lo": 0.05, "hi": 1.0})
    min_stuck: float = field(default=3.0, metadata={"lo": 1.0})
    stuck_sigmas: float = field(default=3.0, metadata={"lo": 0.0})
    stalled_ratio: float = field(default=0.5, metadata={"lo": 0.0, "hi": 1.0})
    confirm_samples: int = field(default=2, metadata={"lo": 1})
    baseline_alpha: float = field(default=0.02, metadata={"lo": 1e-4, "hi": 1.0})


class _State:
    __slots__ = ("alarmed", "completions", "inflight_mean", "inflight_var", "n", "p99_s",
                 "rate", "streak")

    def __init__(self) -> None:
        self.inflight_mean = 0.0
        self.inflight_var = 1.0
        self.p99_s: float | None = None
        self.rate: float | None = None  # completions per second
        self.n = 0
        self.streak = 0
        self.alarmed = False
        self.completions: deque[tuple[float, int]] = deque()


class HangDetector:
    """The registered ``hang`` detector."""

    name = "hang"

    def __init__(self, config: HangConfig | None = None) -> None:
        self.config = config or HangConfig()
        self.states: dict[str, _State] = {}

    def age_threshold_s(self, provider: str) -> float:
        cfg = self.config
        cap = cfg.max_age_fraction * cfg.gateway_timeout_s
        st = self.states.get(provider)
        if st is None or st.p99_s is None:
            return max(min(cap, 0.5), cfg.min_age_s) if cap >= cfg.min_age_s else cap
        return min(cap, max(cfg.min_age_s, cfg.age_factor * st.p99_s))

    def update(self, sample: Sample) -> Detection | None:
        cfg = self.config
        st = self.states.get(sample.provider)
        if st is None:
            st = self.states[sample.provider] = _State()
        st.completions.append((sample.time, sample.attempts))
        horizon = cfg.gateway_timeout_s * 2.0
        while st.completions and st.completions[0][0] < sample.time - horizon:
            st.completions.popleft()
        threshold = self.age_threshold_s(sample.provider)
        age = sample.oldest_inflight_age_s
        hung = age >= threshold and self._piling_up(st, sample) and self._stalled(st, sample, age)
        if not hung:
            st.streak = 0
            if age < threshold:
                st.alarmed = False
                self._learn(st, sample)
            return None
        st.streak += 1
        # confirmation costs one interval: with a slow sampler (> 250 ms) one sample must do,
        # or the alarm would come after half the gateway timeout
        needed = cfg.confirm_samples if 0 < sample.interval_s <= 0.25 else 1
        if st.streak < needed or st.alarmed:
            return None
        st.alarmed = True
        reason = (
            f"oldest in-flight attempt {age:.2f}s old (threshold {threshold:.2f}s, gateway "
            f"timeout {cfg.gateway_timeout_s:g}s), {sample.inflight:g} in flight vs "
            f"~{st.inflight_mean:.1f} usually, {self._recent(st, sample.time, age)} completed "
            f"in that time"
        )
        return Detection(sample.provider, self.name, sample.time, age / threshold, reason,
                         sample.time - age)

    def _piling_up(self, st: _State, sample: Sample) -> bool:
        cfg = self.config
        sigma = math.sqrt(max(st.inflight_var, st.inflight_mean, 1.0))
        need = max(cfg.min_stuck, cfg.stuck_sigmas * sigma)
        return sample.inflight - st.inflight_mean >= need

    def _recent(self, st: _State, now: float, window_s: float) -> int:
        # completions counted in samples ending after the window opened (the hang start)
        return sum(n for t, n in st.completions if t > now - window_s + 1e-9)

    def _stalled(self, st: _State, sample: Sample, age: float) -> bool:
        if st.rate is None:
            return True
        window = self.age_threshold_s(sample.provider)
        expected = st.rate * window
        if expected < 2.0:
            return True
        return self._recent(st, sample.time, window) <= self.config.stalled_ratio * expected

    def _learn(self, st: _State, sample: Sample) -> None:
        alpha = max(self.config.baseline_alpha, 1.0 / (st.n + 1))  # fast start, then slow
        st.n += 1
        delta = sample.inflight - st.inflight_mean
        st.inflight_mean += alpha * delta
        st.inflight_var = (1 - alpha) * (st.inflight_var + alpha * delta * delta)
        if sample.interval_s > 0:
            inst = sample.attempts / sample.interval_s
            st.rate = inst if st.rate is None else st.rate + alpha * (inst - st.rate)
        if sample.p99_ms is not None and sample.attempts > 0:
            p99 = sample.p99_ms / 1000.0
            st.p99_s = p99 if st.p99_s is None else st.p99_s + alpha * (p99 - st.p99_s)

    def reset(self, provider: str | None = None) -> None:
        for name, st in self.states.items():
            if provider is None or name == provider:
                st.streak = 0
                st.alarmed = False


base.register("hang", HangConfig, HangDetector)
