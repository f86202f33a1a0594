"""The streaming detector for generic series, the NAB scoring of its corpus, and
``paystab detect --format generic`` using it by default (without importing PyOD)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from paystab.anomaly.generic_corpus import LabelledSeries, corpus, nab_score
from paystab.anomaly.streaming import StreamingDetector

STEP = 300.0
T0 = 1_699_920_000.0


def _series(n: int, seed: int = 1, cycle: float = 0.0) -> tuple[list[float], np.ndarray]:
    rng = np.random.default_rng(seed)
    times = T0 + STEP * np.arange(n)
    values = 100 + cycle * np.sin(2 * math.pi * (times % 86400) / 86400) + 4 * rng.standard_normal(n)
    return times.tolist(), values


def test_seasonal_series_without_anomaly_raises_nothing() -> None:
    times, values = _series(288 * 5, cycle=40.0)
    assert StreamingDetector().detect_series("s", times, values.tolist()) == []


def test_level_shift_reported_once_then_learned() -> None:
    times, values = _series(288 * 4, cycle=30.0)
    onset = 288 * 2 + 50
    values[onset:] += 25.0  # ~6 sigma, kept: the new normal
    found = StreamingDetector().detect_series("s", times, values.tolist())
    assert len(found) == 1
    (d,) = found
    assert "level shift" in d.reason or "spike" in d.reason
    assert times[onset] <= d.at <= times[onset + 6]


def test_spike_and_variance_increase() -> None:
    times, values = _series(288 * 4, seed=3)
    values[288 * 2] += 60.0
    rng = np.random.default_rng(9)
    values[288 * 3:288 * 3 + 100] += 12 * rng.standard_normal(100)
    found = StreamingDetector().detect_series("s", times, values.tolist())
    reasons = [d.reason for d in found]
    assert any(r.startswith("spike") for r in reasons)
    assert any(times[288 * 3] <= d.at <= times[288 * 3 + 40] for d in found)
    assert len(found) == 2


def test_nab_scoring_bounds() -> None:
    series = LabelledSeries("x", [T0 + STEP * i for i in range(1000)], [0.0] * 1000,
                            [(T0 + STEP * 500, "spike")])
    (a, b), = series.windows()
    assert nab_score(series, [a]).score > 99.0
    assert nab_score(series, []).score == 0.0
    late = nab_score(series, [b - STEP])
    assert 50.0 < late.score < 55.0  # no miss penalty, next to no earliness reward
    assert nab_score(series, [T0 + STEP * 10]).score < 0.0  # a false positive, and a miss
    assert nab_score(series, [a, a + STEP]).repeats == 1


def test_streaming_beats_never_firing_on_the_corpus() -> None:
    from paystab.anomaly.generic_corpus import NabResult

    total = NabResult()
    for s in corpus(seed=5, count=8):
        total.add(nab_score(s, [d.at for d in StreamingDetector().detect_series(
            s.name, s.times, s.values)]))
    assert total.score > 30.0


def test_detect_generic_defaults_to_streaming_without_pyod(tmp_path: Path) -> None:
    times, values = _series(288 * 3, seed=4, cycle=20.0)
    values[288 * 2 + 10:] -= 30.0
    path = tmp_path / "g.csv"
    path.write_text("timestamp,value\n" + "".join(
        f"{int(t)},{v:.3f}\n" for t, v in zip(times, values, strict=True)))
    code = ("import sys, runpy; sys.argv = ['paystab', 'detect', '--input', sys.argv[1], "
            "'--format', 'generic', '--json']\n"
            "from paystab.cli import cli\n"
            "try:\n    cli.main(standalone_mode=False)\n"
            "finally:\n    print('PYOD' if 'pyod' in sys.modules else 'NO-PYOD', file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 1 and rows[0]["detector"] == "streaming"
    assert rows[0]["detected_at"] >= times[288 * 2 + 10]
    assert "NO-PYOD" in done.stderr
