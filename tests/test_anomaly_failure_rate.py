"""The sequential failure-rate detector: volume-insensitive, conservative on interval counts,
fast, near the optimal delay, with a baseline that does not learn incidents."""

from __future__ import annotations

import numpy as np
import pytest

from paystab.anomaly import base
from paystab.anomaly.arl import optimal_delay
from paystab.anomaly.failure_rate import CusumBank, FailureRateConfig, FailureRateDetector
from paystab.collector.series import Sample
from paystab.exceptions import InvalidInput


def _feed(bank: CusumBank, failed: np.ndarray, rate: float) -> list[int]:
    alarms = []
    for i, f in enumerate(failed.tolist()):
        if bank.observe(bool(f), i / rate) >= 0:
            alarms.append(i)
    return alarms


def test_detects_a_jump_to_20_percent_near_the_optimum() -> None:
    rng = np.random.default_rng(3)
    cfg = FailureRateConfig(traffic_rate=100.0)
    delays = []
    for _ in range(30):
        bank = CusumBank(cfg)
        warm = (rng.random(20_000) < 0.005).tolist()
        for i, f in enumerate(warm):
            bank.observe(f, i / 100)
        bank.clear()  # start the post-change run from 0, like the optimum's worst case
        n = 0
        while bank.observe(bool(rng.random() < 0.2), (20_000 + n) / 100) < 0:
            n += 1
        delays.append(n + 1)
    _, optimal = optimal_delay(0.005, 0.2, 100 * 86400, states=3000, tolerance=1e-3)
    assert np.mean(delays) <= 1.5 * optimal


def test_volume_does_not_matter_only_attempts_do() -> None:
    rng = np.random.default_rng(5)
    failed = rng.random(300_000) < 0.005
    failed[200_000:200_400] = rng.random(400) < 0.2
    slow = _feed(CusumBank(FailureRateConfig(traffic_rate=100.0)), failed, 100.0)
    fast = _feed(CusumBank(FailureRateConfig(traffic_rate=100.0)), failed, 1000.0)
    assert slow == fast and slow and slow[-1] >= 200_000


def test_interval_counts_never_alarm_more_than_attempts() -> None:
    rng = np.random.default_rng(7)
    det = FailureRateDetector()
    t = 0.0
    for _ in range(20_000):  # 20 000 s of 1 s intervals at 100/s, no change
        t += 1.0
        n = int(rng.poisson(100))
        assert det.update(Sample(t, "acme", attempts=n, failures=int(rng.binomial(n, 0.005)),
                                 interval_s=1.0)) is None
    for _ in range(5):  # then 20 %
        t += 1.0
        found = det.update(Sample(t, "acme", attempts=100, failures=20, interval_s=1.0))
        if found:
            break
    assert found is not None and found.detector == "failure_rate" and found.score >= 1
    assert "baseline" in found.reason and found.start is not None and found.start <= t


def test_baseline_freezes_during_an_incident_and_reset_keeps_it() -> None:
    det = FailureRateDetector(FailureRateConfig(traffic_rate=100.0))
    rng = np.random.default_rng(9)
    t = 0.0
    for _ in range(3000):
        t += 1.0
        det.update(Sample(t, "acme", attempts=100, failures=int(rng.binomial(100, 0.005))))
    bank = det.bank("acme")
    before = bank.p0
    alarms = 0
    for _ in range(600):  # a long 30 % incident the controller did not act on
        t += 1.0
        alarms += det.update(Sample(t, "acme", attempts=100, failures=30)) is not None
    assert alarms > 1  # re-arms and alarms again while the incident lasts
    assert bank.p0 < 1.5 * before  # the incident was not learned as normal
    det.reset("acme")
    assert all(s == 0 for s in bank.s) and bank.p0 < 1.5 * before


def test_isolated_clusters_are_not_incidents_a_dead_provider_is() -> None:
    """Clusters of 2-4 failures in a row (a dozen per provider-day in real traffic) do not
    alarm at 5/s; a provider that fails everything alarms at its 6th failed attempt."""
    rng = np.random.default_rng(12)
    bank = CusumBank(FailureRateConfig(traffic_rate=5.0))
    t, alarms = 0.0, 0
    for hour in range(12):
        for _ in range(18_000):  # an hour at 5/s, a 0.5 % baseline
            t += 0.2
            alarms += bank.observe(bool(rng.random() < 0.005), t) >= 0
        for _ in range(4 if hour % 2 else 3):  # then an isolated cluster
            t += 0.2
            alarms += bank.observe(True, t) >= 0
    assert alarms == 0
    for _ in range(300):  # a minute of successes: the last cluster is over
        t += 0.2
        bank.observe(False, t)
    n = 0
    while bank.observe(True, t + 0.2 * (n + 1)) < 0:
        n += 1
    assert n + 1 == 6


def test_a_low_volume_baseline_is_learned_over_time_not_attempts() -> None:
    """At 1/s the baseline follows a rise from 0.2 % to 0.8 % within hours (200k attempts,
    the old horizon, would be 55 h), without alarming on it."""
    rng = np.random.default_rng(13)
    bank = CusumBank(FailureRateConfig(traffic_rate=1.0))
    t, alarms = 0.0, 0
    for p, hours in ((0.002, 6), (0.008, 4)):
        for _ in range(int(hours * 3600)):
            t += 1.0
            alarms += bank.observe(bool(rng.random() < p), t) >= 0
        if p == 0.002:
            low = bank.p0
    assert low < 0.005
    assert bank.p0 >= 0.006  # learned the new level, with its margin
    assert alarms <= 1


def test_observe_never_solves_a_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Thresholds come from the shipped table; off the table a background thread solves
    them and the hot path uses Lorden's safe ln(ARL) meanwhile."""
    import threading

    from paystab.anomaly import threshold_table

    solved_on: list[str] = []
    real = threshold_table.threshold_for

    def spy(*args: float) -> float:
        solved_on.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(threshold_table, "threshold_for", spy)
    rng = np.random.default_rng(14)
    bank = CusumBank(FailureRateConfig())
    t = 0.0
    for rate, p in ((5.0, 0.001), (1000.0, 0.009), (50.0, 0.004), (300.0, 0.02)):
        for _ in range(60_000):  # rate and baseline move: the bank recalibrates
            t += 1.0 / rate
            bank.observe(bool(rng.random() < p), t)
    assert solved_on == []  # all from the table
    odd_config = FailureRateConfig(shifts=(0.03, 0.3))  # not in the table
    odd = CusumBank(odd_config)
    safe = list(odd.h)  # Lorden's ln(ARL) while the exact ones are being solved
    for i in range(5000):
        odd.observe(bool(rng.random() < 0.005), i * 0.01)
    assert threshold_table.calibrator.wait_idle(120.0)
    assert solved_on and all(name == "paystab-cusum-calibration" for name in solved_on)
    fresh = CusumBank(odd_config)  # same prior, same ARL: now solved
    assert all(exact < lorden for exact, lorden in zip(fresh.h, safe, strict=True))


def test_options_are_validated_by_name() -> None:
    det = base.create("failure_rate", {"false_alarm_every_h": "12h", "shifts": [0.05, 0.3]})
    assert isinstance(det, FailureRateDetector)
    assert det.config.false_alarm_every_h == 12 and det.config.shifts == (0.05, 0.3)
    with pytest.raises(InvalidInput, match="unknown option"):
        base.create("failure_rate", {"false_alarms": 3})
    with pytest.raises(InvalidInput, match="out of range"):
        base.create("failure_rate", {"baseline_prior": 2.0})
    with pytest.raises(InvalidInput, match="unknown detector"):
        base.create("nope")


def test_failures_while_the_gateways_breaker_holds_traffic_back_are_not_a_cluster() -> None:
    """The gateway's breaker cut a 50 % error burst to one probe every few seconds, each
    failing: that run of failures is every attempt failing and is flagged at the first
    probe; the same run in a stream the breaker does not restrict counts as a cluster and
    needs three more failures."""
    from paystab.anomaly.failure_rate import FailureRateConfig, FailureRateDetector
    from paystab.collector.series import Sample

    def first_flag(breaker_open: bool) -> int | None:
        detector = FailureRateDetector(FailureRateConfig())
        t = 0.0
        for _ in range(60):  # a healthy minute at 50 attempts/s
            t += 1
            detector.update(Sample(t, "psp", attempts=50, failures=0, interval_s=1.0))
        t += 1
        assert detector.update(Sample(t, "psp", attempts=15, failures=4, interval_s=1.0,
                                      breaker_open=breaker_open)) is None
        for probe in range(8):  # then one probe every 2 s, each failing
            t += 2
            if detector.update(Sample(t, "psp", attempts=1, failures=1, interval_s=2.0,
                                      breaker_open=breaker_open)) is not None:
                return probe
        return None

    assert first_flag(breaker_open=True) == 0
    late = first_flag(breaker_open=False)
    assert late is not None and late >= 3


def test_warm_up_counts_the_successes_not_yet_folded() -> None:
    """Warm-up ends at ``warmup_attempts`` attempts, failures or not. A provider with no
    failure keeps its successes pending until a block closes (1000 attempts or 60 s); counted
    without them, 780 clean attempts still meant warm-up, and an error burst of 15 failures
    in 48 attempts met only the dead-provider CUSUM."""
    detector = FailureRateDetector(FailureRateConfig())
    t = 0.0
    for attempts in (19, 52, 50, 55, 65, 58, 45, 61, 51, 48, 64, 60, 52, 54):  # recorded
        t += 1
        assert detector.update(Sample(t, "card-alpha", attempts=attempts, interval_s=1.0)) is None
    found = detector.update(Sample(t + 1, "card-alpha", attempts=48, failures=15, interval_s=1.0))
    assert found is not None and found.detector == "failure_rate" and found.at == t + 1
    assert "20.0%" in found.reason  # a burst, not the dead-provider CUSUM
    fresh = FailureRateDetector(FailureRateConfig())  # and 199 attempts are still warm-up
    fresh.update(Sample(1.0, "psp", attempts=100, interval_s=1.0))
    fresh.update(Sample(2.0, "psp", attempts=99, interval_s=1.0))
    assert fresh.update(Sample(3.0, "psp", attempts=48, failures=15, interval_s=1.0)) is None
