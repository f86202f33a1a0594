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
3. completions have dropped: over the last age-threshold seconds (longer, up to the cap,
   until ``min_expected`` completions are due), at most ``stalled_ratio`` (a quarter) of
   the completions the learned rate predicts (when at least 2 are expected; below that —
   a quiet provider — fewer than ``min_expected`` completions in the window: a quiet
   provider that suddenly gets a burst of re-routed traffic and answers it is not hung).

(``confirm_samples`` applies when samples are at most 250 ms apart; with a slower sampler
one sample suffices, so the alarm still comes before half the gateway timeout.)

Host-wide slowness is not a provider hang. Two more conditions keep it out:

4. the age is taken **net of the gateway's event-loop lag** (``Sample.loop_lag_s``): a
   loop blocked for 400 ms ages every attempt in flight by 400 ms;
5. the provider **stands out from its peers**: its (net) age, as a multiple of its own
   threshold, is at least ``peer_ratio`` x the median of the same multiple over the other
   providers carrying traffic (their latest samples, fed to this same detector) — unless
   that median is calm, at most ``peers_calm`` (0.75): then nothing more is asked. Each
   against its own usual level, so a provider slow by nature is not an outlier when the
   host doubles everyone's latency. Fed one provider only, the detector falls back on the
   sample's peer context (``peer_oldest_inflight_age_s``: at least ``peer_ratio`` x it plus
   ``peer_margin_s``). When every provider is slow together — a busy host, a starved load
   generator bursting its backlog — nobody stands out. And the peers must still be
   completing (median at least ``peers_completing`` of their expected completions): at the
   onset of a host-wide slowdown *nobody* completes for a moment, which at low volume
   looks like the first half-second of a hang. For the same reason, while another
   provider is past its own threshold too, the stall must last ``agitated_confirm_s``;
6. completions are counted over the window plus the loop lag: a loop stalled for 0.5 s
   completes nothing in that 0.5 s, for every provider.

**Cold start needs evidence.** Until a provider has ``warmup_samples`` samples and
``warmup_completions`` completed attempts behind it (3 s at the default 100 ms), there is
no usual p99, in-flight level or completion rate to compare with — a prior of "~0 in flight" made a cold gateway's first
slow second look like a hang. Meanwhile the detector uses only what it can see: the age
must pass the cap (``max_age_fraction`` of the gateway timeout, still under half of it), no
attempt may have completed in that time, and the peer test must hold.

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
    stalled_ratio: float = field(default=0.25, metadata={"lo": 0.0, "hi": 1.0})
    min_expected: float = field(default=5.0, metadata={"lo": 0.0})
    confirm_samples: int = field(default=2, metadata={"lo": 1})
    baseline_alpha: float = field(default=0.02, metadata={"lo": 1e-4, "hi": 1.0})
    peer_ratio: float = field(default=2.0, metadata={"lo": 1.0})
    peer_margin_s: float = field(default=0.1, metadata={"lo": 0.0})
    peers_completing: float = field(default=0.5, metadata={"lo": 0.0})
    peers_calm: float = field(default=0.75, metadata={"lo": 0.0})
    agitated_confirm_s: float = field(default=0.3, metadata={"lo": 0.0})
    warmup_samples: int = field(default=30, metadata={"lo": 0})
    warmup_completions: int = field(default=30, metadata={"lo": 0})


class _State:
    __slots__ = ("alarmed", "busy", "completed", "completion_ratio", "completions",
                 "hung_since", "inflight_mean", "inflight_var", "last_ratio", "last_time", "n",
                 "p99_s", "rate", "streak")

    def __init__(self) -> None:
        self.inflight_mean = 0.0
        self.inflight_var = 1.0
        self.p99_s: float | None = None
        self.rate: float | None = None  # completions per second
        self.n = 0
        self.completed = 0  # attempts completed while learning
        self.last_ratio = 0.0  # latest net age / threshold, for the peer comparison
        self.last_time = -math.inf
        self.busy = False  # the latest sample carried traffic
        self.completion_ratio: float | None = None  # recent completions / expected
        self.streak = 0
        self.hung_since = 0.0
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
        if st is None or st.p99_s is None or not self._warm(st):
            return cap  # no evidence of what is usual yet: only the cap is safe
        return min(cap, max(cfg.min_age_s, cfg.age_factor * st.p99_s))

    def _warm(self, st: _State) -> bool:
        cfg = self.config
        return st.n >= cfg.warmup_samples and st.completed >= cfg.warmup_completions

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
        age = max(0.0, sample.oldest_inflight_age_s - sample.loop_lag_s)
        st.last_ratio, st.last_time = age / threshold, sample.time
        st.busy = sample.attempts > 0 or sample.inflight > 0
        st.completion_ratio = self._completion_ratio(st, sample, threshold)
        hung = (age >= threshold and self._stands_out(sample, age, threshold)
                and self._piling_up(st, sample) and self._stalled(st, sample, threshold))
        if not hung:
            st.streak = 0
            if age < threshold:
                st.alarmed = False
                self._learn(st, sample)
            return None
        st.streak += 1
        if st.streak == 1:
            st.hung_since = sample.time
        # confirmation costs one interval: with a slow sampler (> 250 ms) one sample must do,
        # or the alarm would come after half the gateway timeout
        needed = cfg.confirm_samples if 0 < sample.interval_s <= 0.25 else 1
        if st.streak < needed or st.alarmed:
            return None
        if self._agitated(sample) and sample.time - st.hung_since < cfg.agitated_confirm_s:
            return None
        st.alarmed = True
        peers = ("no peer carrying traffic" if sample.peer_oldest_inflight_age_s is None else
                 f"peers' oldest {sample.peer_oldest_inflight_age_s:.2f}s")
        reason = (
            f"oldest in-flight attempt {age:.2f}s old net of {sample.loop_lag_s:.2f}s loop lag "
            f"(threshold {threshold:.2f}s, gateway timeout {cfg.gateway_timeout_s:g}s; "
            f"{peers}), {sample.inflight:g} in flight vs ~{st.inflight_mean:.1f} usually, "
            f"{self._recent(st, sample.time, age)} completed in that time"
        )
        return Detection(sample.provider, self.name, sample.time, age / threshold, reason,
                         sample.time - age)

    def _stands_out(self, sample: Sample, age: float, threshold: float) -> bool:
        cfg = self.config
        fresh = sample.time - max(1.0, 3.0 * sample.interval_s)
        peers = [st for name, st in self.states.items()
                 if name != sample.provider and st.busy and st.last_time >= fresh]
        if peers:
            completing = [st.completion_ratio for st in peers if st.completion_ratio is not None]
            if completing and _median(completing) < cfg.peers_completing:
                return False  # the peers are stuck too: the host, not this provider
            median = _median([st.last_ratio for st in peers])
            # calm peers (well under their own thresholds) ask nothing more of the age
            return median <= cfg.peers_calm or age / threshold >= cfg.peer_ratio * median
        peer = sample.peer_oldest_inflight_age_s
        if peer is None:
            return True
        return age >= cfg.peer_ratio * max(0.0, peer - sample.loop_lag_s) + cfg.peer_margin_s

    def _piling_up(self, st: _State, sample: Sample) -> bool:
        cfg = self.config
        sigma = math.sqrt(max(st.inflight_var, st.inflight_mean, 1.0))
        need = max(cfg.min_stuck, cfg.stuck_sigmas * sigma)
        return sample.inflight - st.inflight_mean >= need

    def _recent(self, st: _State, now: float, window_s: float) -> int:
        # completions counted in samples ending after the window opened (the hang start)
        return sum(n for t, n in st.completions if t > now - window_s + 1e-9)

    def _agitated(self, sample: Sample) -> bool:
        """Another provider is past its own threshold too: the onset of a host-wide slowdown
        looks like a hang for a moment, so the stall must last ``agitated_confirm_s``."""
        fresh = sample.time - max(1.0, 3.0 * sample.interval_s)
        return any(st.last_ratio >= 1.0 for name, st in self.states.items()
                   if name != sample.provider and st.busy and st.last_time >= fresh)

    def _completion_ratio(self, st: _State, sample: Sample, threshold: float) -> float | None:
        """Completions over the last ``window`` s (plus the loop lag: a stalled loop
        completed nothing while it stood still) / what the learned rate predicts; None when
        that prediction is under 2 or not learned yet. The window is the age threshold, made
        long enough (up to the cap) to expect ``min_expected`` completions: at 10/s, 0.3 s of
        silence is three missing answers — the onset of a host-wide slowdown looks like it."""
        if st.rate is None or not self._warm(st) or st.rate <= 0:
            return None
        cfg = self.config
        cap = cfg.max_age_fraction * cfg.gateway_timeout_s
        window = min(cap, max(threshold, cfg.min_expected / st.rate))
        expected = st.rate * window
        if expected < 2.0:
            return None
        return self._recent(st, sample.time, window + sample.loop_lag_s) / expected

    def _stalled(self, st: _State, sample: Sample, window: float) -> bool:
        if not self._warm(st):
            return self._recent(st, sample.time, window) == 0  # cold: nothing completed
        ratio = st.completion_ratio
        if ratio is not None:
            return ratio <= self.config.stalled_ratio
        # The learned rate predicts too few completions to judge (a quiet provider): what
        # it completed says it. A provider answering min_expected attempts in the window is
        # not hung — card-charlie, used to ~1 payment/s, got the card traffic when a busy
        # host slowed card-bravo (79 attempts in one second, 45 in flight, the oldest 0.53 s
        # old) and, with 37 completed in those 0.53 s, was drained as hung.
        cfg = self.config
        quiet_window = min(cfg.max_age_fraction * cfg.gateway_timeout_s,
                           max(window, cfg.min_expected / st.rate if st.rate else math.inf))
        return self._recent(st, sample.time, quiet_window + sample.loop_lag_s) < cfg.min_expected

    def _learn(self, st: _State, sample: Sample) -> None:
        st.completed += sample.attempts
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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


base.register("hang", HangConfig, HangDetector)
