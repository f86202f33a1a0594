"""PyOD models (ECOD, HBOS, IForest) over multivariate per-provider windows.

A second opinion next to the sequential tests, and the detector for arbitrary metrics
(``paystab detect --format generic``). Per provider, each sample becomes a feature vector
(by default failure ratio, p95 latency and oldest in-flight age), averaged over the last
``window`` samples to damp single-interval noise. The first ``baseline_samples`` vectors fit
the model; after that each vector is scored and compared with the model's own threshold
(the ``1 - contamination`` quantile of the training scores); ``consecutive`` scores above it
in a row make a detection (score = decision / threshold). For one-dimensional series the
vector is ``[value, value - window mean, window std]``.

PyOD imports scikit-learn and takes a second or two: it is imported on first use only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paystab.anomaly import base
from paystab.anomaly.base import Detection
from paystab.collector.series import Sample
from paystab.exceptions import InvalidInput

MODELS = ("ecod", "hbos", "iforest")
SAMPLE_FEATURES = ("failure_ratio", "p95_ms", "p50_ms", "p99_ms", "oldest_inflight_age_s",
                   "inflight", "attempts", "timeouts")


@dataclass(frozen=True)
class PyodConfig:
    features: tuple[str, ...] = ("failure_ratio", "p95_ms", "oldest_inflight_age_s")
    window: int = field(default=5, metadata={"lo": 1})
    baseline_samples: int = field(default=200, metadata={"lo": 10})
    contamination: float = field(default=0.005, metadata={"lo": 1e-4, "hi": 0.5})
    consecutive: int = field(default=3, metadata={"lo": 1})
    seed: int = 0


def make_model(kind: str, contamination: float, seed: int = 0) -> Any:
    """A fresh PyOD model of ``kind`` (one of :data:`MODELS`)."""
    if kind == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD(contamination=contamination)
    if kind == "hbos":
        from pyod.models.hbos import HBOS

        return HBOS(contamination=contamination)
    if kind == "iforest":
        from pyod.models.iforest import IForest

        return IForest(contamination=contamination, random_state=seed, n_estimators=100)
    raise InvalidInput(f"unknown model '{kind}'", field="model", expected=", ".join(MODELS))


def sample_vector(sample: Sample, features: Sequence[str], last: list[float]) -> list[float]:
    """The features of one sample; a missing quantile repeats the last known value."""
    out = []
    for i, name in enumerate(features):
        value = getattr(sample, name)
        if value is None:
            value = last[i] if i < len(last) else 0.0
        out.append(float(value))
    return out


def series_matrix(values: Sequence[float], window: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``[value, value - trailing mean, trailing std]`` per point of a 1-D series."""
    x = np.asarray(values, dtype=float)
    out = np.zeros((len(x), 3))
    for i in range(len(x)):
        past = x[max(0, i - window): i] if i else x[:1]
        out[i] = (x[i], x[i] - past.mean(), past.std())
    return out


def detect_matrix(
    kind: str, matrix: np.ndarray[Any, np.dtype[np.float64]], config: PyodConfig
) -> tuple[list[int], list[float]]:
    """Fit on the first ``baseline_samples`` rows, score the rest; answers the row indices
    where a detection fires (``consecutive`` rule, re-armed after each) and their scores."""
    n_fit = min(config.baseline_samples, len(matrix))
    if n_fit < 10 or n_fit >= len(matrix):
        return [], []
    model, threshold, typical = fit_model(kind, matrix[:n_fit], config)
    scores = np.asarray(model.decision_function(matrix[n_fit:]), dtype=float)
    hits, values, streak = [], [], 0
    for j, score in enumerate(scores):
        streak = streak + 1 if score > threshold else 0
        if streak >= config.consecutive:
            hits.append(n_fit + j)
            values.append(relative_score(float(score), threshold, typical))
            streak = 0
    return hits, values


def fit_model(kind: str, rows: Any, config: PyodConfig) -> tuple[Any, float, float]:
    """``(model, threshold, typical training score)``."""
    model = make_model(kind, config.contamination, config.seed)
    model.fit(np.asarray(rows, dtype=float))
    return model, float(model.threshold_), float(np.median(model.decision_scores_))


def relative_score(score: float, threshold: float, typical: float) -> float:
    """1 at the model's threshold, 0 at a typical baseline score (models' raw scales differ:
    IForest centres its threshold on 0, HBOS on log densities)."""
    if not math.isfinite(score):
        return 1.0
    span = threshold - typical
    return (score - typical) / span if span > 0 else 1.0


class _State:
    __slots__ = ("last", "model", "rows", "streak", "threshold", "typical", "window")

    def __init__(self, window: int) -> None:
        self.window: deque[list[float]] = deque(maxlen=window)
        self.rows: list[list[float]] = []
        self.last: list[float] = []
        self.model: Any = None
        self.threshold = 0.0
        self.typical = 0.0
        self.streak = 0


class PyodDetector:
    """A PyOD model per provider; registered as ``ecod``, ``hbos`` and ``iforest``."""

    def __init__(self, kind: str, config: PyodConfig | None = None) -> None:
        self.name = kind
        self.config = config or PyodConfig()
        for feature in self.config.features:
            if feature not in SAMPLE_FEATURES:
                raise InvalidInput(f"unknown feature '{feature}'", field="features",
                                   expected="some of " + ", ".join(SAMPLE_FEATURES))
        self.states: dict[str, _State] = {}

    def _vector(self, st: _State, sample: Sample) -> list[float]:
        v = sample_vector(sample, self.config.features, st.last)
        st.last = v
        st.window.append(v)
        return [sum(col) / len(st.window) for col in zip(*st.window, strict=True)]

    def update(self, sample: Sample) -> Detection | None:
        cfg = self.config
        st = self.states.get(sample.provider)
        if st is None:
            st = self.states[sample.provider] = _State(cfg.window)
        row = self._vector(st, sample)
        if st.model is None:
            st.rows.append(row)
            if len(st.rows) >= cfg.baseline_samples:
                st.model, st.threshold, st.typical = fit_model(self.name, st.rows, cfg)
                st.rows = []
            return None
        score = float(st.model.decision_function(np.asarray([row]))[0])
        st.streak = st.streak + 1 if score > st.threshold else 0
        if st.streak < cfg.consecutive:
            return None
        st.streak = 0
        described = ", ".join(f"{n}={v:.3g}" for n, v in zip(cfg.features, row, strict=True))
        return Detection(sample.provider, self.name, sample.time,
                         relative_score(score, st.threshold, st.typical),
                         f"{self.name} outlier score {score:.3g} > {st.threshold:.3g} for "
                         f"{cfg.consecutive} samples ({described})")

    def detect_samples(self, samples: Sequence[Sample]) -> list[Detection]:
        """Batch form of :meth:`update` over one provider's samples (one model call)."""
        if not samples:
            return []
        st = _State(self.config.window)
        rows = [self._vector(st, s) for s in samples]
        hits, scores = detect_matrix(self.name, np.asarray(rows), self.config)
        return [
            Detection(samples[i].provider, self.name, samples[i].time, score,
                      f"{self.name} outlier for {self.config.consecutive} samples",
                      samples[max(0, i - self.config.consecutive + 1)].time)
            for i, score in zip(hits, scores, strict=True)
        ]

    def detect_series(self, name: str, times: Sequence[float], values: Sequence[float]
                      ) -> list[Detection]:
        """Detections in a generic ``timestamp,value`` series."""
        hits, scores = detect_matrix(self.name, series_matrix(values, self.config.window),
                                     self.config)
        k = self.config.consecutive
        return [
            Detection(name, self.name, times[i], score,
                      f"{self.name} outlier for {k} points (value {values[i]:g})",
                      times[max(0, i - k + 1)])
            for i, score in zip(hits, scores, strict=True)
        ]

    def reset(self, provider: str | None = None) -> None:
        for name, st in self.states.items():
            if provider is None or name == provider:
                st.streak = 0


def _builder(kind: str) -> Callable[[PyodConfig], PyodDetector]:
    def build(config: PyodConfig) -> PyodDetector:
        return PyodDetector(kind, config)

    return build


for _kind in MODELS:
    base.register(_kind, PyodConfig, _builder(_kind))
