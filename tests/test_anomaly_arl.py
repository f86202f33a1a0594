"""The Markov-chain ARL: it reproduces the architecture's worked example and agrees with a
direct simulation of the CUSUM."""

from __future__ import annotations

import numpy as np
import pytest

from paystab.anomaly.arl import cusum_arl, llr_steps, optimal_delay, run_arl, threshold_for


@pytest.mark.parametrize(("p1", "seconds"), [(0.2, 0.25), (0.05, 1.65), (0.02, 7.96)])
def test_worked_example_at_100_per_second(p1: float, seconds: float) -> None:
    # ARCHITECTURE.md: 100 attempts/s, baseline 0.5 %, one false alarm per 24 h
    _, attempts = optimal_delay(0.005, p1, 100 * 86400, states=3000, tolerance=1e-3)
    assert attempts / 100 == pytest.approx(seconds, abs=0.01)


def test_dead_provider_is_a_run_counter() -> None:
    h, attempts = optimal_delay(0.005, 1.0, 100 * 86400)
    assert attempts == 4  # 3 in a row happen once every 8.0e6 attempts: too often
    assert run_arl(3, 0.005) < 8.64e6 <= run_arl(4, 0.005)
    assert h == pytest.approx(4 * llr_steps(0.005, 1.0)[0], rel=1e-6)


def _simulated_arl(p: float, p0: float, p1: float, h: float, runs: int, seed: int) -> float:
    a, b = llr_steps(p0, p1)
    rng = np.random.default_rng(seed)
    lengths = []
    for _ in range(runs):
        s, n = 0.0, 0
        while s < h:
            n += 1
            s = s + a if rng.random() < p else max(0.0, s - b)
        lengths.append(n)
    return float(np.mean(lengths))


def test_chain_agrees_with_simulation() -> None:
    p0, p1 = 0.05, 0.2
    h = threshold_for(p0, p1, 2000.0)
    assert cusum_arl(p0, p0, p1, h) >= 2000.0
    simulated = _simulated_arl(p0, p0, p1, h, runs=400, seed=1)
    assert simulated == pytest.approx(cusum_arl(p0, p0, p1, h, states=4000), rel=0.15)
    simulated = _simulated_arl(p1, p0, p1, h, runs=400, seed=2)
    assert simulated == pytest.approx(cusum_arl(p1, p0, p1, h, states=4000), rel=0.1)


def test_threshold_grows_with_the_false_alarm_horizon() -> None:
    hs = [threshold_for(0.005, 0.05, arl) for arl in (1e4, 1e5, 1e6, 1e7)]
    assert hs == sorted(hs) and hs[-1] - hs[0] > 5
    with pytest.raises(ValueError):
        llr_steps(0.1, 0.05)
