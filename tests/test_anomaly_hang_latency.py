"""Hang and latency detectors on the sampler's 100 ms view of request-level traffic."""

from __future__ import annotations

import numpy as np
import pytest

from paystab.anomaly.corpus import RequestEpisode, request_samples
from paystab.anomaly.evaluation import run_samples
from paystab.anomaly.hang import HangConfig, HangDetector
from paystab.anomaly.latency import LatencyConfig, LatencyDetector
from paystab.collector.series import Sample
from paystab.exceptions import InvalidInput


@pytest.mark.parametrize("rate", [10, 100, 1000])
def test_hang_is_flagged_before_half_the_gateway_timeout(rate: int) -> None:
    rng = np.random.default_rng(rate)
    for _ in range(3):
        event = 60.0 + float(rng.uniform(0, 1))
        samples = request_samples(rng, RequestEpisode(rate, event + 5.0, event_s=event,
                                                      hang_ratio=1.0))
        found = run_samples(HangDetector(HangConfig(gateway_timeout_s=2.0)), samples)
        assert found, "hang not detected"
        assert found[0].at >= event and found[0].at - event < 1.0
        assert len(found) == 1  # one alarm per hang
        assert event - 1.0 <= found[0].start <= event  # the oldest stuck attempt began


@pytest.mark.parametrize("rate", [10, 100, 1000])
def test_one_slow_request_or_a_surge_is_not_a_hang(rate: int) -> None:
    rng = np.random.default_rng(rate + 1)
    for params in ({"slow_request_s": 5.0}, {"surge_factor": 10.0, "surge_s": 20.0}):
        samples = request_samples(rng, RequestEpisode(rate, 100.0, event_s=60.0, **params))
        assert run_samples(HangDetector(), samples) == []
        assert run_samples(LatencyDetector(), samples) == []


def test_latency_shift_is_detected_and_scale_free() -> None:
    rng = np.random.default_rng(4)
    for median in (40.0, 400.0):
        samples = request_samples(rng, RequestEpisode(100, 90.0, median_ms=median, event_s=60.0,
                                                      latency_factor=2.0))
        found = run_samples(LatencyDetector(), samples)
        assert found and 60.0 <= found[0].at <= 64.0 and "p50" in found[0].reason


def test_latency_ignores_empty_intervals_and_checks_its_quantile() -> None:
    det = LatencyDetector(LatencyConfig(quantile="p95"))
    assert det.update(Sample(1.0, "x", attempts=0)) is None
    for i in range(40):  # a p95-only series (the payments CSV) works too
        det.update(Sample(2.0 + i, "x", attempts=50, p95_ms=100.0))
    found = [det.update(Sample(50.0 + i, "x", attempts=50, p95_ms=400.0)) for i in range(10)]
    assert any(f is not None and "p95" in f.reason for f in found)
    with pytest.raises(InvalidInput):
        LatencyDetector(LatencyConfig(quantile="p42"))


def _burst_onto_a_quiet_provider(answering: bool) -> list[str]:
    """provider-error-burst on a busy host, as recorded: card-charlie carries ~0.5 payment/s
    beside card-bravo (50/s) and card-delta (5/s); at 52 s the host slows card-bravo, the
    gateway's routing moves the card traffic to card-charlie (79 attempts in one second) and
    the starved sampler polls 0.4 s apart: its first sample of the burst already shows 30 in
    flight, the oldest 0.45 s old."""
    detector = HangDetector(HangConfig(gateway_timeout_s=2.0))
    found: list[str] = []

    def feed(t: float, provider: str, attempts: int, inflight: float, oldest_s: float,
             interval_s: float = 0.1) -> None:
        hit = detector.update(Sample(t, provider, attempts=attempts, interval_s=interval_s,
                                     p50_ms=60.0 if attempts else None,
                                     p99_ms=150.0 if attempts else None, inflight=inflight,
                                     oldest_inflight_age_s=oldest_s, loop_lag_s=0.05))
        if hit is not None:
            found.append(hit.provider)

    t = 0.0
    for i in range(600):  # a minute of 100 ms rounds
        t = round(t + 0.1, 1)
        feed(t, "card-bravo", 5, 4.0, 0.08)
        feed(t, "card-delta", 1 if i % 2 else 0, 1.0 if i % 2 else 0.0, 0.05 if i % 2 else 0.0)
        feed(t, "card-charlie", 1 if i % 20 == 0 else 0, 1.0 if i % 20 == 0 else 0.0,
             0.05 if i % 20 == 0 else 0.0)
    for inflight, oldest_s, completed in ((30.0, 0.45, 15), (45.0, 0.62, 37), (20.0, 0.2, 40)):
        t = round(t + 0.4, 1)  # the burst: card-bravo idle, card-charlie takes its traffic
        feed(t, "card-bravo", 0, 0.0, 0.0, 0.4)
        feed(t, "card-delta", 2, 1.0, 0.05, 0.4)
        feed(t, "card-charlie", completed if answering else 0,
             inflight if answering else inflight + 20, oldest_s, 0.4)
    return found


def test_a_quiet_provider_answering_a_burst_of_rerouted_traffic_is_not_hung() -> None:
    """Its learned rate predicts under 2 completions in the window, so the completion test
    could not be applied and "unknown" counted as stalled: card-charlie was drained 54 s
    into provider-error-burst (a false failover) with 37 attempts completed in 0.53 s."""
    assert _burst_onto_a_quiet_provider(answering=True) == []
    assert _burst_onto_a_quiet_provider(answering=False) == ["card-charlie"]  # a hung burst
