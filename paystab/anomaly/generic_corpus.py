"""A labelled corpus of operational series and NAB-style scoring, for generic detectors.

:func:`corpus` draws seeded 5-minute series of a week (2,016 points) the way operational
metrics look: a level anywhere from 5 to 5,000, Gaussian or heavy-tailed (Student t, 3 dof)
noise or Poisson counts, a daily cycle on most series (a main wave and a harmonic), a slow
benign trend on some. Anomalies start after two days (the detectors' first day is learning)
and are at least a day apart: a **spike** (one point, 7–14 sigma), a **level shift**
(3–6 sigma, kept), a **drift** (a ramp to 6–9 sigma over 12 h, kept), a **variance
increase** (x3–5 for a day), a **lost daily cycle** (flat for a day). A fifth of the series
have no anomaly at all: only false alarms can be scored there.

:func:`nab_score` scores detections the way the Numenta Anomaly Benchmark does (standard
profile: true positive +1, false positive -0.11, missed window -1): each anomaly has a
window starting at its onset, 10 % of the series divided by its anomalies, capped at
12 h; the first detection inside a window earns the scaled sigmoid of its position
(0.99 at the onset, 0 at the window's end), later ones in the same window count nothing;
a detection outside any window costs 0.11 (less right after a window, as NAB). Scores are
normalised per detector: 0 = never fires, 100 = every window at its first point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEP_S = 300.0
POINTS = 2016
A_TP, A_FP, A_FN = 1.0, -0.11, -1.0
KINDS = ("spike", "level_shift", "drift", "variance", "lost_cycle")


@dataclass
class LabelledSeries:
    name: str
    times: list[float]
    values: list[float]
    anomalies: list[tuple[float, str]] = field(default_factory=list)  # (onset time, kind)

    def windows(self) -> list[tuple[float, float]]:
        if not self.anomalies:
            return []
        length = min(0.1 * len(self.times) / len(self.anomalies), 144) * STEP_S
        return [(t, t + length) for t, _ in self.anomalies]


def _series(rng: np.random.Generator, index: int) -> LabelledSeries:
    n = POINTS
    t0 = 1_700_000_000.0 - (1_700_000_000.0 % 86400.0)
    times = t0 + STEP_S * np.arange(n)
    level = float(np.exp(rng.uniform(math.log(5), math.log(5000))))
    day = (times % 86400.0) / 86400.0
    cycle: np.ndarray[Any, Any] = np.zeros(n)
    if rng.random() < 0.7:
        amp = rng.uniform(0.15, 0.5) * level
        phase = rng.uniform(0, 2 * math.pi)
        cycle = amp * (np.sin(2 * math.pi * day + phase) + 0.3 * np.sin(4 * math.pi * day + phase))
    trend: np.ndarray[Any, Any] = np.zeros(n)
    if rng.random() < 0.3:
        trend = level * rng.uniform(-0.03, 0.03) * (times - t0) / 86400.0
    noise_kind = rng.choice(["gauss", "t", "poisson"], p=[0.5, 0.25, 0.25])
    sigma = rng.uniform(0.02, 0.08) * level
    mean = level + cycle + trend
    if noise_kind == "poisson":
        sigma = math.sqrt(max(level, 1.0))
    anomalies: list[tuple[float, str]] = []
    scale = np.ones(n)
    flat = np.zeros(n, dtype=bool)
    extra = np.zeros(n)
    if rng.random() >= 0.2:
        count = int(rng.integers(1, 4))
        starts = sorted(rng.choice(np.arange(2 * 288, n - 100, 288), size=count, replace=False))
        for start in starts:
            s = int(start + rng.integers(0, 200))
            kind = str(rng.choice(KINDS if cycle.any() else KINDS[:4]))
            sign = 1.0 if rng.random() < 0.6 else -1.0
            if kind == "spike":
                extra[s] += sign * rng.uniform(7, 14) * sigma
            elif kind == "level_shift":
                extra[s:] += sign * rng.uniform(3, 6) * sigma
            elif kind == "drift":
                ramp = np.minimum(1.0, np.arange(n - s) / 144.0)
                extra[s:] += sign * rng.uniform(6, 9) * sigma * ramp
            elif kind == "variance":
                scale[s:s + 288] = rng.uniform(3, 5)
            else:
                flat[s:s + 288] = True
            anomalies.append((float(times[s]), kind))
    mean = np.where(flat, level + trend, mean) + extra
    if noise_kind == "poisson":
        values = rng.poisson(np.maximum(mean, 0.0)).astype(float)
        values += (scale - 1.0) * sigma * rng.standard_normal(n)
    elif noise_kind == "t":
        values = mean + sigma * scale * rng.standard_t(3, n) / math.sqrt(3.0)
    else:
        values = mean + sigma * scale * rng.standard_normal(n)
    return LabelledSeries(f"series-{index:03d}-{noise_kind}", times.tolist(), values.tolist(),
                          sorted(anomalies))


def corpus(seed: int = 11, count: int = 60) -> list[LabelledSeries]:
    """``count`` labelled series, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [_series(rng, i) for i in range(count)]


def _sigmoid(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


@dataclass
class NabResult:
    raw: float = 0.0
    null: float = 0.0
    perfect: float = 0.0
    detected: int = 0
    missed: int = 0
    false_positives: int = 0
    repeats: int = 0  # further detections inside an already detected window
    delays_points: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span > 0 else 0.0

    def add(self, other: NabResult) -> None:
        self.raw += other.raw
        self.null += other.null
        self.perfect += other.perfect
        self.detected += other.detected
        self.missed += other.missed
        self.false_positives += other.false_positives
        self.repeats += other.repeats
        self.delays_points.extend(other.delays_points)


def nab_score(series: LabelledSeries, detections: Sequence[float]) -> NabResult:
    """Score detection times against the series' windows (see the module docstring)."""
    windows = series.windows()
    out = NabResult(null=A_FN * len(windows), perfect=A_TP * _sigmoid(-1.0) * len(windows))
    hit = [False] * len(windows)
    for t in sorted(detections):
        inside = next((i for i, (a, b) in enumerate(windows) if a <= t < b), None)
        if inside is not None:
            if hit[inside]:
                out.repeats += 1
                continue
            hit[inside] = True
            a, b = windows[inside]
            out.raw += A_TP * _sigmoid((t - b) / (b - a))
            out.detected += 1
            out.delays_points.append((t - a) / STEP_S)
            continue
        out.false_positives += 1
        before = [w for w in windows if w[1] <= t]
        if before:
            a, b = before[-1]
            out.raw += -A_FP * _sigmoid((t - b) / (b - a))  # 0 right after, -0.11 far away
        else:
            out.raw += A_FP
    out.missed = hit.count(False)
    out.raw += A_FN * out.missed
    return out
