"""Streaming detector for operational series: one pass, adapts online, reports each anomaly once.

For any metric series (``paystab detect --format generic``, generic series in watch). Per
series it keeps an additive Holt-Winters-style model — a **level** (EWMA), a **daily
profile** (one bin per step of the day, learned once the step is known and a day fits in
at most 1,440 bins; neighbouring bins share a little of each update) and a robust **scale**
(EW mean absolute residual, x1.25 for a normal sigma) — and runs three tests on the
standardised residual ``z``:

* a **spike**: ``|z| >= spike_z``;
* a **level shift or drift**: a two-sided CUSUM on ``clip(z, ±5)`` with allowance ``k``
  (a drift accumulates until it crosses ``h``);
* a **variance increase**: a CUSUM of the log-likelihood ratio of sigma -> 2 sigma
  (``0.375 z^2 - ln 2`` per point).

Learning is frozen while any test is half-way to alarming, so an incident is not learned
as normal before it is reported. After an alarm the series is **settling** for
``settle_points``: no further alarm, and the level and scale follow the data fast, so a
new regime becomes the baseline (one report per change, not one per point). A spike
followed by a shift is one anomaly. The first ``warmup_points`` only learn.

Measured (``python -m benchmarks generic_detectors``: 60 labelled week-long 5-minute series
scored the NAB way, 0 = never fires, 100 = perfect): 67.4 on the held-out seed against
ecod 24.2, hbos 5.3, iforest 0.3 (the thresholds were tuned on another seed). Tried and
dropped: learning the daily profile online from the first point (the level chases the
cycle and the profile inherits that lag: 22 → 53 once the first day was learning-only, 74
once the first day's profile was taken against the day's mean and smoothed). About 8 µs
of CPU per point in pure Python; no import of PyOD or numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from paystab.anomaly import base
from paystab.anomaly.base import Detection
from paystab.collector.series import Sample

DAY_S = 86400.0


@dataclass(frozen=True)
class StreamingConfig:
    level_alpha: float = field(default=0.05, metadata={"lo": 1e-4, "hi": 1.0})
    scale_beta: float = field(default=0.02, metadata={"lo": 1e-4, "hi": 1.0})
    season_gamma: float = field(default=0.25, metadata={"lo": 0.0, "hi": 1.0})
    spike_z: float = field(default=6.0, metadata={"lo": 2.0})
    shift_k: float = field(default=0.5, metadata={"lo": 0.0})
    shift_h: float = field(default=12.0, metadata={"lo": 1.0})
    variance_h: float = field(default=20.0, metadata={"lo": 1.0})
    warmup_points: int = field(default=30, metadata={"lo": 3})
    settle_points: int = field(default=12, metadata={"lo": 1})
    merge_points: int = field(default=36, metadata={"lo": 0})  # one incident, one report
    feature: str = "failure_ratio"  # the Sample field watched when fed Samples


class _Series:
    __slots__ = (
        "alarm_at",
        "bins",
        "first_day",
        "first_t",
        "last_t",
        "last_value",
        "level",
        "n",
        "neg",
        "neg_zero_t",
        "pos",
        "pos_zero_t",
        "scale",
        "season",
        "season_n",
        "settle",
        "since_alarm",
        "smoothed",
        "step_s",
        "var",
        "var_zero_t",
    )

    def __init__(self) -> None:
        self.n = 0
        self.level = 0.0
        self.scale = 0.0
        self.step_s: float | None = None
        self.last_t: float | None = None
        self.bins = 0
        self.season: list[float] = []
        self.season_n: list[int] = []
        self.pos = self.neg = self.var = 0.0
        self.pos_zero_t = self.neg_zero_t = self.var_zero_t = 0.0
        self.settle = 0
        self.alarm_at: float | None = None
        self.first_t = 0.0
        self.last_value = 0.0
        self.smoothed = False
        self.since_alarm = 1 << 30
        self.first_day: list[tuple[int, float]] = []


class StreamingDetector:
    """The registered ``streaming`` detector (see the module docstring)."""

    name = "streaming"

    def __init__(self, config: StreamingConfig | None = None) -> None:
        self.config = config or StreamingConfig()
        self.series: dict[str, _Series] = {}

    # -- the detector contract -------------------------------------------------------------
    def update(self, sample: Sample) -> Detection | None:
        value = getattr(sample, self.config.feature, None)
        if value is None or not isinstance(value, int | float) or math.isnan(value):
            return None
        return self.observe(sample.provider, sample.time, float(value))

    def reset(self, provider: str | None = None) -> None:
        for name, st in self.series.items():
            if provider is None or name == provider:
                st.pos = st.neg = st.var = 0.0

    def detect_series(self, name: str, times: Sequence[float], values: Sequence[float]
                      ) -> list[Detection]:
        """Every anomaly of one series, each reported once."""
        out = []
        for t, v in zip(times, values, strict=True):
            found = self.observe(name, t, v)
            if found is not None:
                out.append(found)
        return out

    # -- one point ---------------------------------------------------------------------------
    def observe(self, name: str, t: float, value: float) -> Detection | None:
        if math.isnan(value) or math.isinf(value):
            return None
        st = self.series.get(name)
        if st is None:
            st = self.series[name] = _Series()
        cfg = self.config
        self._clock(st, t)
        b = self._bin(st, t)
        if st.n == 0:
            st.level, st.n, st.first_t, st.last_value = value, 1, t, value
            st.pos_zero_t = st.neg_zero_t = st.var_zero_t = t
            return None
        st.n += 1
        if st.n <= cfg.warmup_points or (st.bins > 0 and t - st.first_t < DAY_S):
            self._initial(st, b, value)
            return None
        if st.bins > 0 and not st.smoothed:
            self._smooth(st)
        seasonal = st.season[b] if b >= 0 and st.season_n[b] else 0.0
        residual = value - st.level - seasonal
        floor = 1e-6 * max(1.0, abs(st.level))
        sigma = max(1.25 * st.scale, floor)
        z = residual / sigma
        found = None
        st.since_alarm += 1
        if st.settle == 0:
            found = self._test(name, st, t, z)
        else:
            st.settle -= 1
        suspicious = max(st.pos, st.neg) > cfg.shift_h / 2 or st.var > cfg.variance_h / 2
        if found is not None or st.settle > 0:
            self._learn(st, b, value, residual, fast=True)
        elif not suspicious:
            self._learn(st, b, value, max(-4 * sigma, min(4 * sigma, residual)), fast=False)
        st.last_value = value
        return found

    def _initial(self, st: _Series, b: int, value: float) -> None:
        """The learning-only start: the mean level, the first day's profile, and a scale from
        successive differences (blind to a slow daily cycle)."""
        st.level += (value - st.level) / st.n
        diff = abs(value - st.last_value) / math.sqrt(2.0)
        st.scale = diff if st.scale == 0.0 else st.scale + 0.05 * (diff - st.scale)
        st.last_value = value
        if b >= 0:
            st.first_day.append((b, value))

    def _smooth(self, st: _Series) -> None:
        """After the first day: the profile relative to the day's mean, smoothed over half
        an hour or so (a daily cycle is smooth; one day of noise is not)."""
        width = max(1, st.bins // 96)
        if st.first_day:
            st.level = sum(v for _, v in st.first_day) / len(st.first_day)
            sums = [0.0] * st.bins
            counts = [0] * st.bins
            for b, v in st.first_day:
                sums[b] += v - st.level
                counts[b] += 1
            for i in range(st.bins):
                around = [(sums[j % st.bins], counts[j % st.bins])
                          for j in range(i - width, i + width + 1)]
                n = sum(c for _, c in around)
                st.season[i] = sum(x for x, _ in around) / n if n else 0.0
                st.season_n[i] = 1 if n else 0
        st.first_day = []
        st.smoothed = True

    def _test(self, name: str, st: _Series, t: float, z: float) -> Detection | None:
        cfg = self.config
        zc = max(-5.0, min(5.0, z))
        st.pos = max(0.0, st.pos + zc - cfg.shift_k)
        st.neg = max(0.0, st.neg - zc - cfg.shift_k)
        st.var = max(0.0, st.var + 0.375 * min(z * z, 36.0) - math.log(2.0))
        for attr in ("pos", "neg", "var"):
            if getattr(st, attr) == 0.0:
                setattr(st, f"{attr}_zero_t", t)
        kind, score, start = None, 0.0, t
        if abs(z) >= cfg.spike_z:
            kind, score = f"spike ({'up' if z > 0 else 'down'}, z={z:.1f})", abs(z) / cfg.spike_z
        elif st.pos >= cfg.shift_h or st.neg >= cfg.shift_h:
            up = st.pos >= st.neg
            kind = f"level shift or drift {'up' if up else 'down'}"
            score = max(st.pos, st.neg) / cfg.shift_h
            start = st.pos_zero_t if up else st.neg_zero_t
        elif st.var >= cfg.variance_h:
            kind, score, start = "variance increase", st.var / cfg.variance_h, st.var_zero_t
        if kind is None:
            return None
        st.pos = st.neg = st.var = 0.0
        st.settle = cfg.settle_points
        repeat = st.since_alarm <= cfg.merge_points
        st.since_alarm = 0
        if repeat:
            return None  # the same incident still unfolding: re-anchored, not reported again
        st.alarm_at = t
        return Detection(name, self.name, t, score, kind, start)

    def _learn(self, st: _Series, b: int, value: float, residual: float, fast: bool) -> None:
        cfg = self.config
        alpha = 0.3 if fast else cfg.level_alpha
        beta = 0.2 if fast else cfg.scale_beta
        st.level += alpha * residual
        deviation = abs(residual)
        st.scale = deviation if st.scale == 0.0 else st.scale + beta * (deviation - st.scale)
        if b < 0 or fast:
            return
        target = value - st.level
        width = max(1, st.bins // 96)
        g = cfg.season_gamma / (width + 1)
        for j in range(b - width, b + width + 1):
            k = j % st.bins
            st.season[k] += g * (target - st.season[k])
            st.season_n[k] += 1

    def _clock(self, st: _Series, t: float) -> None:
        if st.last_t is not None and t > st.last_t:
            dt = t - st.last_t
            st.step_s = dt if st.step_s is None else st.step_s + 0.1 * (dt - st.step_s)
            if st.bins == 0 and st.n >= 10 and st.step_s > 0:
                bins = round(DAY_S / st.step_s)
                if 4 <= bins <= 1440:
                    st.bins = bins
                    st.season = [0.0] * bins
                    st.season_n = [0] * bins
        st.last_t = t

    def _bin(self, st: _Series, t: float) -> int:
        if st.bins == 0:
            return -1
        return int((t % DAY_S) / DAY_S * st.bins) % st.bins


base.register("streaming", StreamingConfig, StreamingDetector)
