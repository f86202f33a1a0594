"""Scoring of detectors on the labelled corpus: delays, false alarms, baselines.

The paystab failure-rate detector is exercised for real (its :class:`CusumBank`, fed the
run-length-encoded stream: ``observe_run(successes, 1, t)`` per failure — exactly the
per-attempt statistic, O(1) per failure). The three baselines are the rules people deploy
today, computed on the same stream with numpy:

* ``fixed_1pct_1m`` — failure ratio over the last minute above 1 %, checked every second;
* ``prom_for_1m`` — a Prometheus alert ``ratio over 1m > 1 %`` evaluated every 15 s with
  ``for: 1m`` (fires at the 5th consecutive true evaluation);
* ``envoy_5xx`` — Envoy outlier detection after 5 consecutive failures, acted on at the
  next 10 s sweep.

Each answers alarm times (rising edges) in seconds of the stream.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paystab.anomaly.base import Detection, Detector
from paystab.anomaly.corpus import AttemptStream, FloatArray
from paystab.anomaly.failure_rate import CusumBank, FailureRateConfig
from paystab.collector.series import Sample

BASELINES = ("fixed_1pct_1m", "prom_for_1m", "envoy_5xx")


@dataclass
class StreamRun:
    """What the detector did on one stream."""

    false_alarms: list[float] = field(default_factory=list)  # alarm times before the change
    detected_at: float | None = None
    detected_index: int | None = None
    cpu_s: float = 0.0
    attempts: int = 0


def run_cusum(
    stream: AttemptStream,
    config: FailureRateConfig,
    change_index: int | None = None,
    horizon_index: int | None = None,
    bank: CusumBank | None = None,
    t_offset: float = 0.0,
) -> StreamRun:
    """Feed ``stream`` to a fresh :class:`CusumBank` (or ``bank``, which then carries on
    from an earlier stream: times are shifted by ``t_offset`` and the stream's trailing
    successes are fed too); stop at the first alarm at or after ``change_index`` (or at
    ``horizon_index``); alarms before it are false alarms."""
    carry = bank is not None
    bank = bank if bank is not None else CusumBank(config)
    failures = stream.failures
    if horizon_index is not None:
        failures = failures[failures <= horizon_index]
    times = (stream.time_of(failures) + t_offset).tolist() if len(failures) else []
    out = StreamRun()
    observe = bank.observe_run
    previous = -1
    started = time.perf_counter()
    for index, t in zip(failures.tolist(), times, strict=True):
        alarm = observe(index - previous - 1, 1, t)
        previous = index
        if alarm >= 0:
            if change_index is None or index < change_index:
                out.false_alarms.append(t)
            else:
                out.detected_at, out.detected_index = t, index
                break
    if carry and out.detected_index is None:
        last = (horizon_index if horizon_index is not None else stream.attempts) - 1
        observe(max(0, last - previous), 0, t_offset + len(stream.per_second))
    out.cpu_s = time.perf_counter() - started
    out.attempts = (previous + 1) if out.detected_index is not None else (
        horizon_index if horizon_index is not None else stream.attempts)
    return out


def run_samples(detector: Detector, samples: Sequence[Sample]) -> list[Detection]:
    found = []
    for sample in samples:
        detection = detector.update(sample)
        if detection is not None:
            found.append(detection)
    return found


# -- baselines -----------------------------------------------------------------------------


def _window_ratio(att: FloatArray, fail: FloatArray, window: int) -> FloatArray:
    """Failure ratio over the last ``window`` seconds, at the end of each second."""
    ca = np.concatenate(([0.0], np.cumsum(att)))
    cf = np.concatenate(([0.0], np.cumsum(fail)))
    idx = np.arange(1, len(att) + 1)
    lo = np.maximum(idx - window, 0)
    a = ca[idx] - ca[lo]
    f = cf[idx] - cf[lo]
    return np.asarray(np.where(a > 0, f / np.maximum(a, 1.0), 0.0), dtype=np.float64)


def _rising(condition: np.ndarray[Any, Any], times: FloatArray) -> list[float]:
    c = np.asarray(condition, dtype=bool)
    edges = c & ~np.concatenate(([False], c[:-1]))
    return [float(x) for x in times[edges]]


def baseline_alarms(name: str, stream: AttemptStream) -> tuple[list[float], FloatArray,
                                                                FloatArray]:
    """``(rising-edge alarm times, evaluation times, condition per evaluation)``."""
    att = stream.per_second.astype(np.float64)
    fail = stream.failures_per_second().astype(np.float64)
    if name == "fixed_1pct_1m":
        ratio = _window_ratio(att, fail, 60)
        times = np.arange(1, len(att) + 1, dtype=np.float64)
        cond = ratio > 0.01
        return _rising(cond, times), times, cond.astype(np.float64)
    if name == "prom_for_1m":
        ratio = _window_ratio(att, fail, 60)
        evals = np.arange(15, len(att) + 1, 15)
        cond = ratio[evals - 1] > 0.01
        # firing once the condition held at 5 consecutive evaluations (pending for 1m)
        run = np.zeros(len(cond), dtype=np.int64)
        for i, c in enumerate(cond.tolist()):
            run[i] = (run[i - 1] + 1 if i else 1) if c else 0
        firing = run >= 5
        times = evals.astype(np.float64)
        return _rising(firing, times), times, firing.astype(np.float64)
    if name == "envoy_5xx":
        f = stream.failures
        if len(f) < 5:
            empty = np.zeros(0)
            return [], empty, empty
        fifth = f[4:][(f[4:] - f[:-4]) == 4]  # index of a 5th consecutive failure
        t5 = stream.time_of(fifth) if len(fifth) else np.zeros(0)
        sweeps = np.unique(np.ceil(t5 / 10.0) * 10.0)
        return [float(x) for x in sweeps], sweeps, np.ones(len(sweeps))
    raise ValueError(f"unknown baseline {name}")


def first_alarm_after(times: FloatArray, condition: FloatArray, t0: float) -> float | None:
    """First evaluation at or after ``t0`` where the condition holds (level, not edge)."""
    hit = np.nonzero((times >= t0) & (condition > 0))[0]
    return float(times[hit[0]]) if len(hit) else None


