"""PyOD models (ECOD, HBOS, IForest) as second opinion and for generic series."""

from __future__ import annotations

import numpy as np
import pytest

from paystab.anomaly import base
from paystab.anomaly.pyod_models import MODELS, PyodConfig, PyodDetector
from paystab.collector.series import Sample
from paystab.exceptions import InvalidInput


@pytest.mark.slow
@pytest.mark.parametrize("kind", MODELS)
def test_level_shift_in_a_generic_series(kind: str) -> None:
    rng = np.random.default_rng(0)
    values = list(rng.normal(10, 1, 400)) + list(rng.normal(25, 1, 40))
    times = [float(i) for i in range(len(values))]
    found = PyodDetector(kind).detect_series("cpu", times, values)
    assert found and 400 <= found[0].at <= 410
    assert found[0].detector == kind and found[0].score > 0


@pytest.mark.parametrize("kind", MODELS)
def test_streaming_samples_second_opinion(kind: str) -> None:
    rng = np.random.default_rng(1)
    det = base.create(kind, {"baseline_samples": 150, "window": 5, "consecutive": 5})
    found = []
    for i in range(260):
        bad = i >= 220
        n = 100
        sample = Sample(float(i), "acme", attempts=n,
                        failures=int(rng.binomial(n, 0.3 if bad else 0.005)),
                        p95_ms=float(rng.normal(900 if bad else 120, 5)),
                        oldest_inflight_age_s=float(rng.uniform(0.05, 0.15)))
        hit = det.update(sample)
        if hit:
            found.append(hit)
    # IForest cannot extrapolate past its training range (isolation depth saturates), so it
    # is the slowest of the three to flag a far-out point
    assert found and 220 <= found[0].at <= (260 if kind == "iforest" else 230)
    assert found[0].score >= 1.0


def test_bad_features_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown feature"):
        PyodDetector("ecod", PyodConfig(features=("nope",)))
