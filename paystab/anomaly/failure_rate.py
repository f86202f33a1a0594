"""Failure-rate detector: a bank of Bernoulli CUSUMs per provider on the stream of attempts.

Each attempt is a Bernoulli trial (failed or not; customer declines are not failures). For a
rate moving from the baseline ``p0`` to ``p1`` the CUSUM is the optimal sequential test
(Moustakides); since ``p1`` is unknown, we run one CUSUM per anticipated shift (default 2 %,
5 %, 20 % and a dead provider) — each near-optimal for its own shift and still fast for the
others — and alarm when any crosses its threshold.

* **Volume-insensitive**: the statistic moves per attempt, not per second, so a 10x flash
  sale brings 10x the evidence but no bias.
* **Baseline learned online, over time**: a slow exponentially weighted failure ratio whose
  memory is ``horizon_s`` seconds of traffic (2 h by default), whatever the volume: a
  fixed count of attempts (it was 200k) is 11 h at 5/s and 11 min at 300/s, so a quiet
  provider trailed a drifting baseline by hours. Blocks close every ``block_attempts``
  attempts or ``block_s`` seconds, whichever comes first. It starts from a prior, is taken
  one standard error high (so little data errs towards fewer false alarms) and never below
  a floor; frozen while any CUSUM is half-way to alarming and for two quiet blocks after an
  alarm, so an incident is not learned as the new normal. The alternatives are
  ``max(shift, 2 x baseline)``.
* **Isolated clusters are not incidents**: a handful of failures in a row (a card-network
  hiccup, one customer retrying a broken card) is strong evidence against a Bernoulli
  baseline, yet no reason to move traffic. So the longest run of consecutive failures in a
  CUSUM's current excursion (since it last stood at 0) counts as one failure, up to
  ``cluster_failures`` (4) of them: the alarm needs ``h + (min(run, 4) - 1) x a``. A
  cluster of 4 extra failures then weighs one; scattered failures (a real 5 % or 20 %
  rate) are hardly touched. The price is on a dead provider, all one run: it is flagged at
  its 6th failed attempt instead of its 3rd — 6 ms at 1,000/s, 6 s at 1/s. (A plain
  "at least 6 failures" rule was tried first: a cluster of 4 plus two baseline failures in
  the following minute still alarmed at 1-5/s.)
* **False alarms as one number**: ``false_alarm_every_h`` hours of traffic. With the learned
  traffic rate that is an in-control ARL in attempts; each CUSUM gets its threshold from the
  Markov-chain ARL (``arl.py``) at ``K x`` that ARL (K CUSUMs: union bound) on a grid of
  baselines (5 %), read from a precomputed table (``threshold_table.py``): nothing is
  solved on the hot path. Off the table a background thread solves it, and Lorden's safe
  ``h = ln(ARL)`` serves meanwhile.
* **Cost**: successes only count (``run += 1``); the decrement ``run x b`` is applied when a
  failure arrives, so an attempt costs O(1) whatever the number of CUSUMs, and per-interval
  counts are O(1) too (the interval's binomial LLR as one step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from paystab.anomaly import base, threshold_table
from paystab.anomaly.arl import llr_steps
from paystab.anomaly.base import Detection
from paystab.collector.series import Sample

_P0_GRID = threshold_table.P0_GRID  # relative step of the baseline grid
_ARL_GRID = 4  # ARL grid for the hysteresis of recalibration: 2^(1/4) steps
_HOLD_BLOCKS = 2  # quiet blocks needed after an alarm before the baseline learns again


@dataclass(frozen=True)
class FailureRateConfig:
    # calibrated for one per 48 h: the target is one per provider-day *with* the noise the
    # Bernoulli model leaves out (drift, clusters); the price is ~ln 2 more in h (a few %)
    false_alarm_every_h: float = field(default=48.0, metadata={"lo": 0.01})
    shifts: tuple[float, ...] = field(default=(0.02, 0.05, 0.2, 1.0), metadata={"lo": 0, "hi": 1})
    min_shift_ratio: float = field(default=2.0, metadata={"lo": 1.1})
    baseline_prior: float = field(default=0.005, metadata={"lo": 1e-6, "hi": 0.5})
    prior_attempts: float = field(default=2000.0, metadata={"lo": 0})
    baseline_floor: float = field(default=0.001, metadata={"lo": 1e-6, "hi": 0.5})
    baseline_ucb_sigmas: float = field(default=1.0, metadata={"lo": 0.0})
    horizon_s: float = field(default=7200.0, metadata={"lo": 60})  # baseline memory
    fast_horizon_s: float = field(default=900.0, metadata={"lo": 10})  # ... when it rises
    fast_min_attempts: float = field(default=500.0, metadata={"lo": 1})
    block_attempts: int = field(default=1000, metadata={"lo": 10})
    block_s: float = field(default=60.0, metadata={"lo": 1})
    cluster_failures: int = field(default=4, metadata={"lo": 1})
    freeze_ratio: float = field(default=0.5, metadata={"lo": 0, "hi": 1})
    warmup_attempts: int = field(default=200, metadata={"lo": 0})  # the prior covers the rest
    traffic_rate: float | None = field(default=None, metadata={"lo": 1e-3})  # attempts/s
    rate_horizon_s: float = field(default=3600.0, metadata={"lo": 1})
    union_factor: float | None = field(default=None, metadata={"lo": 1})  # default: #CUSUMs


@lru_cache(maxsize=4096)
def _bank_exact(
    p0: float, arl0: float, shifts: tuple[float, ...], min_ratio: float, union: float | None
) -> tuple[tuple[float, float, float, float], ...]:
    params = _bank(p0, arl0, shifts, min_ratio, union)
    if params is None:
        raise LookupError
    return params


def _bank(
    p0: float, arl0: float, shifts: tuple[float, ...], min_ratio: float, union: float | None
) -> tuple[tuple[float, float, float, float], ...] | None:
    alternatives = threshold_table.alternatives(p0, shifts, min_ratio)
    k = union if union is not None else float(len(alternatives))
    out, exact = [], True
    for p1 in alternatives:
        a, b = llr_steps(p0, p1)
        h, known = threshold_table.threshold(p0, p1, arl0 * k)
        exact = exact and known
        out.append((p1, a, b, h))
    return tuple(out) if exact else None


def bank_params(
    p0: float, arl0: float, shifts: tuple[float, ...], min_ratio: float, union: float | None
) -> tuple[tuple[tuple[float, float, float, float], ...], bool]:
    """``(((p1, a, b, h), ...), exact)`` of the CUSUM bank for baseline ``p0`` and
    in-control ARL ``arl0`` (attempts) of the whole bank. ``exact=False``: some threshold is
    still being solved in the background and Lorden's safe ``ln(ARL)`` stands in for it."""
    try:
        return _bank_exact(p0, arl0, shifts, min_ratio, union), True
    except LookupError:
        pass
    alternatives = threshold_table.alternatives(p0, shifts, min_ratio)
    k = union if union is not None else float(len(alternatives))
    out = []
    for p1 in alternatives:
        a, b = llr_steps(p0, p1)
        out.append((p1, a, b, threshold_table.threshold(p0, p1, arl0 * k)[0]))
    return tuple(out), False


def _quantise_p0(p0: float) -> float:
    # rounded up: a baseline taken a little high can only mean fewer false alarms
    return math.exp(math.ceil(math.log(p0) / _P0_GRID - 1e-9) * _P0_GRID)


def _quantise_arl(arl0: float) -> float:
    # rounded up: never calibrate for more false alarms than asked
    return float(2.0 ** (math.ceil(math.log2(max(arl0, 2.0)) * _ARL_GRID) / _ARL_GRID))


class CusumBank:
    """The statistics of one provider. ``observe*`` answer the index of the alarming CUSUM
    (into ``p1``) or -1; after an alarm every statistic restarts from 0."""

    __slots__ = (
        "_arl_q",
        "_exact",
        "_p0_q",
        "a",
        "alarm_p1",
        "alarm_s",
        "alarm_start",
        "b",
        "block_end",
        "cfg",
        "cluster",
        "discount_clusters",
        "f_acc",
        "f_fast",
        "f_learned",
        "fail_run",
        "h",
        "hold",
        "k",
        "n_acc",
        "n_fast",
        "n_learned",
        "n_total",
        "p0",
        "p1",
        "rate",
        "run",
        "runs",
        "s",
        "t_fold",
        "zero_t",
    )

    def __init__(self, cfg: FailureRateConfig) -> None:
        self.cfg = cfg
        self.run = 0  # successes since the statistics were last brought up to date
        self.n_acc = 0  # attempts and failures of the current block (baseline learning)
        self.f_acc = 0
        self.n_learned = 0.0  # weighted attempts/failures of the baseline estimate
        self.f_learned = 0.0
        self.n_fast = 0.0  # the same over the short horizon (a rising baseline)
        self.f_fast = 0.0
        self.n_total = 0
        self.rate: float | None = cfg.traffic_rate
        self.t_fold: float | None = None
        self.block_end = -math.inf  # the first attempt opens the first block
        self.cluster = cfg.cluster_failures
        self.fail_run = 0  # consecutive failures up to the last attempt seen
        self.discount_clusters = True  # False while the gateway's breaker limits traffic
        self._exact = False
        self.p0 = max(cfg.baseline_floor, cfg.baseline_prior)
        self._p0_q = 0.0
        self._arl_q = 0.0
        self.p1: list[float] = []
        self.a: list[float] = []
        self.b: list[float] = []
        self.h: list[float] = []
        self.s: list[float] = []
        self.zero_t: list[float] = []
        self.runs: list[int] = []  # longest failure run in each CUSUM's current excursion
        self.k = 0
        self.hold = 0  # blocks still to skip before learning again (after an alarm)
        self.alarm_p1 = self.alarm_s = 0.0
        self.alarm_start: float | None = None
        self._calibrate()

    # -- hot path ---------------------------------------------------------------------
    def observe(self, failed: bool, t: float) -> int:
        """One attempt at time ``t``."""
        if not failed:
            self.run += 1
            if self.run + self.n_acc >= self.cfg.block_attempts or t >= self.block_end:
                self._settle(t)
                self._fold(t)
            return -1
        return self.observe_run(0, 1, t)

    def observe_run(self, successes: int, failures: int, t: float) -> int:
        """``successes`` attempts that succeeded, then ``failures`` that failed (exact CUSUM)."""
        if not failures:
            self.run += successes
            if self.run + self.n_acc >= self.cfg.block_attempts or t >= self.block_end:
                self._settle(t)
                self._fold(t)
            return -1
        return self._batch(self.run + successes, failures, 0, t)

    def observe_counts(self, attempts: int, failures: int, t: float) -> int:
        """One interval's counts in O(1): the binomial log-likelihood ratio of the interval
        (``k a - (n - k) b``) added as one step, floored at the interval's boundaries only.
        That never exceeds the per-attempt statistic, so false alarms stay within target."""
        if attempts <= 0:
            return -1
        failures = min(max(failures, 0), attempts)
        if not failures:
            return self.observe_run(attempts, 0, t)
        return self._batch(self.run, failures, attempts - failures, t)

    def _batch(self, run: int, failures: int, successes: int, t: float) -> int:
        """Apply ``run`` pending successes (floored), then one step of ``failures`` failures
        and ``successes`` successes; check every CUSUM."""
        s, a, b, h, runs = self.s, self.a, self.b, self.h, self.runs
        # ``run`` counts too: successes wait there (not in n_acc) until a failure or a block's
        # end, so without them a provider that never failed stayed in warm-up for a whole
        # block (1000 attempts or 60 s), not 200 attempts: replayed per second, a recorded
        # provider-error-burst (15 failures in 48 attempts after 780 clean ones) was flagged
        # 29 s late, on a lone failure, by the CUSUMs the first failures had half-filled.
        armed = self.n_total + self.n_acc + run >= self.cfg.warmup_attempts
        consecutive = self.fail_run + failures if run == 0 else failures
        self.fail_run = 0 if successes else consecutive
        discount = min(consecutive, self.cluster) - 1 if self.discount_clusters else 0
        best = 1.0
        alarm = -1
        for i in range(self.k):
            v = s[i] - run * b[i]
            if v <= 0.0:
                v = 0.0
                self.zero_t[i] = t
                runs[i] = 0
            v += failures * a[i]
            if discount > runs[i]:
                runs[i] = discount
            if successes:
                v -= successes * b[i]
                if v <= 0.0:
                    v = 0.0
                    self.zero_t[i] = t
                    runs[i] = 0
            s[i] = v
            if (v >= h[i] + runs[i] * a[i] and (armed or self.p1[i] >= 0.5)
                    and v / h[i] >= best):
                best = v / h[i]
                alarm = i
        self.n_acc += run + failures + successes
        self.f_acc += failures
        self.run = 0
        if alarm >= 0:
            self._alarm(alarm)
        if self.n_acc >= self.cfg.block_attempts or t >= self.block_end:
            self._fold(t)
        return alarm

    # -- bookkeeping ----------------------------------------------------------------------
    def _settle(self, t: float) -> None:
        """Apply the pending successes to every statistic."""
        run = self.run
        if not run:
            return
        for i in range(self.k):
            v = self.s[i] - run * self.b[i]
            if v <= 0.0:
                v = 0.0
                self.zero_t[i] = t
                self.runs[i] = 0
            self.s[i] = v
        self.n_acc += run
        self.run = 0

    def _alarm(self, i: int) -> None:
        self.alarm_p1 = self.p1[i]
        self.alarm_s = self.s[i] / self.h[i]
        self.alarm_start = self.zero_t[i]
        self.hold = _HOLD_BLOCKS + 1
        self.clear()

    def clear(self) -> None:
        """Restart the statistics from 0; keep the baseline."""
        self.s = [0.0] * self.k
        self.runs = [0] * self.k
        self.run = 0

    def suspicious(self) -> bool:
        return any(v >= self.cfg.freeze_ratio * h for v, h in zip(self.s, self.h, strict=True))

    def _fold(self, t: float) -> None:
        """Close a block: learn the baseline (unless suspicious) and the traffic rate."""
        cfg = self.cfg
        n, f = self.n_acc, self.f_acc
        if self.suspicious():
            self.hold = max(self.hold, 1)
        if self.hold > 0:
            self.hold -= 1  # alarming or just alarmed: this block may be the incident
        else:
            dt = 0.0 if self.t_fold is None else max(0.0, t - self.t_fold)
            decay = math.exp(-dt / cfg.horizon_s)
            self.n_learned = self.n_learned * decay + n
            self.f_learned = self.f_learned * decay + f
            fast = math.exp(-dt / cfg.fast_horizon_s)
            self.n_fast = self.n_fast * fast + n
            self.f_fast = self.f_fast * fast + f
        self.n_total += n
        if cfg.traffic_rate is None and self.t_fold is not None and t > self.t_fold:
            inst = n / (t - self.t_fold)
            if self.rate is None:
                self.rate = inst
            else:
                w = 1.0 - math.exp(-(t - self.t_fold) / cfg.rate_horizon_s)
                self.rate += w * (inst - self.rate)
        self.t_fold = t
        self.block_end = t + cfg.block_s
        self.n_acc = self.f_acc = 0
        prior_n = cfg.prior_attempts
        weight = self.n_learned + prior_n
        p0 = (self.f_learned + prior_n * cfg.baseline_prior) / weight
        # an upper confidence bound: a baseline learned from little data errs high (fewer
        # false alarms); with a full horizon of data the margin is a few percent
        p0 += cfg.baseline_ucb_sigmas * math.sqrt(p0 * (1.0 - p0) / weight)
        if self.n_fast >= cfg.fast_min_attempts:
            # a baseline on the rise shows in the short horizon first: never trail it
            p0 = max(p0, self.f_fast / self.n_fast)
        self.p0 = min(0.5, max(cfg.baseline_floor, p0))
        self._calibrate()

    def arl0_attempts(self) -> float:
        rate = self.rate if self.rate is not None else 100.0
        return self.cfg.false_alarm_every_h * 3600.0 * rate

    def _calibrate(self) -> None:
        # Both grids round up (never more false alarms than asked), with hysteresis below:
        # a baseline wandering around a grid line must not recalibrate every block.
        arl0 = self.arl0_attempts()
        if (
            self._exact
            and self._p0_q
            and self._p0_q * math.exp(-2 * _P0_GRID) <= self.p0 <= self._p0_q
            and self._arl_q * 2.0 ** (-2.0 / _ARL_GRID) <= arl0 <= self._arl_q
        ):
            return
        p0_q = _quantise_p0(self.p0)
        arl_q = _quantise_arl(arl0)
        self._p0_q, self._arl_q = p0_q, arl_q
        cfg = self.cfg
        params, self._exact = bank_params(p0_q, arl_q, cfg.shifts, cfg.min_shift_ratio,
                                          cfg.union_factor)
        old = dict(zip(self.p1, self.s, strict=True))
        old_runs = dict(zip(self.p1, self.runs, strict=True))
        self.p1 = [p[0] for p in params]
        self.a = [p[1] for p in params]
        self.b = [p[2] for p in params]
        self.h = [p[3] for p in params]
        self.k = len(params)
        self.s = [old.get(p1, 0.0) for p1 in self.p1]
        self.runs = [old_runs.get(p1, 0) for p1 in self.p1]
        self.zero_t = self.zero_t[: self.k] + [0.0] * (self.k - len(self.zero_t))

    def describe_alarm(self) -> str:
        return (
            f"failure rate above its baseline {self.p0:.2%}: the CUSUM tuned to "
            f"{self.alarm_p1:.1%} reached {self.alarm_s:.2f}x its threshold "
            f"(false alarms at most one per {self.cfg.false_alarm_every_h:g} h of traffic)"
        )


class FailureRateDetector:
    """The registered ``failure_rate`` detector: one :class:`CusumBank` per provider."""

    name = "failure_rate"

    def __init__(self, config: FailureRateConfig | None = None) -> None:
        self.config = config or FailureRateConfig()
        self.banks: dict[str, CusumBank] = {}

    def bank(self, provider: str) -> CusumBank:
        bank = self.banks.get(provider)
        if bank is None:
            bank = self.banks[provider] = CusumBank(self.config)
        return bank

    def update(self, sample: Sample) -> Detection | None:
        bank = self.bank(sample.provider)
        # While the gateway's breaker holds a provider's traffic back, its few attempts are
        # the breaker's probes: a run of them failing is every attempt failing, not an
        # isolated cluster in a stream of successes, so it gets no cluster discount. (With
        # the discount, a 50 % error burst whose traffic the breaker cut to one probe every
        # few seconds was never flagged in a 10-s fault.)
        bank.discount_clusters = not sample.breaker_open
        if bank.observe_counts(sample.attempts, sample.failures, sample.time) < 0:
            return None
        return self._detection(sample.provider, bank, sample.time)

    def observe(self, provider: str, failed: bool, t: float) -> Detection | None:
        """The per-attempt path, for a caller that sees every attempt (in-process)."""
        bank = self.bank(provider)
        if bank.observe(failed, t) < 0:
            return None
        return self._detection(provider, bank, t)

    def _detection(self, provider: str, bank: CusumBank, t: float) -> Detection:
        return Detection(
            provider, self.name, t, bank.alarm_s, bank.describe_alarm(), bank.alarm_start
        )

    def reset(self, provider: str | None = None) -> None:
        for name, bank in self.banks.items():
            if provider is None or name == provider:
                bank.clear()


base.register("failure_rate", FailureRateConfig, FailureRateDetector)
