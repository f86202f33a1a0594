"""Host-wide slowness is not a provider anomaly: the hang and latency detectors judge a
provider against its peers and net of the gateway's event-loop lag, cold start needs
evidence, and the failover controller holds instead of draining what the host explains."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from paystab.anomaly.base import Detection
from paystab.anomaly.controller import ControllerConfig, FailoverController, FailoverEvent
from paystab.anomaly.corpus import RequestEpisode, request_rounds
from paystab.anomaly.ensemble import EnsemblePolicy, default_policy
from paystab.anomaly.hang import HangConfig, HangDetector
from paystab.anomaly.latency import LatencyDetector
from paystab.collector.series import Sample, with_peer_context

PEERS = {"psp-a": 80.0, "psp-b": 120.0, "psp-c": 60.0, "psp-d": 200.0}


def _rounds(rng: np.random.Generator, rate: float, seconds: float,
            target: dict[str, Any] | None = None, **host: Any) -> list[list[Sample]]:
    episodes = {}
    for name, median in PEERS.items():
        params = dict(host)
        if name == "psp-a" and target:
            params.update(target)
        episodes[name] = RequestEpisode(rate=rate, seconds=seconds, median_ms=median, **params)
    return request_rounds(rng, episodes)


def _detect(rounds: list[list[Sample]]) -> list[Detection]:
    detectors: list[HangDetector | LatencyDetector] = [
        HangDetector(HangConfig(gateway_timeout_s=2.0)), LatencyDetector()]
    found = []
    for samples in rounds:
        for sample in samples:
            for detector in detectors:
                d = detector.update(sample)
                if d is not None:
                    found.append(d)
    return found


HOST_WIDE = [
    dict(host_start_s=60.0, host_s=20.0, host_factor=3.0),
    dict(host_start_s=60.0, host_s=15.0, stall_every_s=1.0, stall_s=0.4),
    dict(host_start_s=60.0, host_s=15.0, host_factor=2.0, stall_every_s=2.0, stall_s=0.6),
    dict(host_start_s=60.0, host_s=15.0, starve_every_s=2.0, starve_s=1.0),
]


@pytest.mark.parametrize("host", HOST_WIDE, ids=["x3", "stalls", "x2+stalls", "starved-load"])
@pytest.mark.parametrize("rate", [10, 100])
def test_every_provider_slow_together_alarms_nobody(host: dict[str, Any], rate: int) -> None:
    rng = np.random.default_rng(rate)
    for _ in range(2):
        assert _detect(_rounds(rng, rate, 90.0, **host)) == []


def test_the_same_slowdown_on_one_provider_alone_is_detected() -> None:
    rng = np.random.default_rng(11)
    found = _detect(_rounds(rng, 100, 80.0, target=dict(event_s=60.0, latency_factor=3.0)))
    assert found and {d.provider for d in found} == {"psp-a"} and found[0].at >= 60.0
    assert "peers' median p50" in found[0].reason


@pytest.mark.parametrize("rate", [10, 100, 1000])
def test_a_hang_among_peers_is_flagged_before_half_the_gateway_timeout(rate: int) -> None:
    rng = np.random.default_rng(rate + 3)
    for _ in range(2):
        event = 40.0 + float(rng.uniform(0, 1))
        found = _detect(_rounds(rng, rate, event + 5.0, target=dict(event_s=event,
                                                                    hang_ratio=1.0)))
        hangs = [d for d in found if d.detector == "hang"]
        assert [d.provider for d in hangs] == ["psp-a"]
        assert 0.0 <= hangs[0].at - event < 1.0
        assert "loop lag" in hangs[0].reason and "peers" in hangs[0].reason


def test_cold_start_needs_evidence_not_a_prior() -> None:
    """The issue's drain at 1.8 s: a cold gateway's first seconds are slow everywhere."""
    rng = np.random.default_rng(5)
    cold: dict[str, Any] = dict(host_start_s=0.0, host_s=5.0, host_factor=4.0,
                                stall_every_s=2.5, stall_s=0.5)
    for rate in (10, 100, 1000):
        assert _detect(_rounds(rng, rate, 20.0, **cold)) == []
    # and one provider alone, no peers, 18 in flight at 0.43 s: not enough to call a hang
    det = HangDetector()
    for i in range(1, 19):
        assert det.update(Sample(i * 0.1, "card-alpha", attempts=3, inflight=float(i),
                                 oldest_inflight_age_s=min(0.43, i * 0.1),
                                 interval_s=0.1)) is None


def test_a_hang_in_the_first_seconds_is_still_caught() -> None:
    rng = np.random.default_rng(8)
    found = _detect(_rounds(rng, 100, 5.0, target=dict(event_s=1.0, hang_ratio=1.0)))
    hangs = [d for d in found if d.detector == "hang"]
    assert [d.provider for d in hangs] == ["psp-a"] and hangs[0].at - 1.0 < 1.0


def test_loop_lag_is_discounted_from_the_oldest_age() -> None:
    def run(lag: float) -> list[Detection]:
        det = HangDetector()
        t, found = 0.0, []
        for i in range(100):  # 10 s of healthy traffic at 100/s, then 0.6 s stuck
            t = round(t + 0.1, 1)
            stuck = i >= 94
            sample = Sample(t, "x", attempts=0 if stuck else 10, inflight=30.0 if stuck else 8.0,
                            oldest_inflight_age_s=(i - 93) * 0.1 + 0.1 if stuck else 0.1,
                            p99_ms=150.0, interval_s=0.1, loop_lag_s=lag if stuck else 0.0)
            d = det.update(sample)
            if d is not None:
                found.append(d)
        return found

    assert run(0.0), "a stuck provider with a running loop is a hang"
    assert run(0.7) == [], "the same ages while the loop stood still are the loop's"


def test_peer_context_is_the_median_of_the_other_busy_providers() -> None:
    samples = with_peer_context([
        Sample(1.0, "a", attempts=5, p50_ms=100.0, oldest_inflight_age_s=0.4),
        Sample(1.0, "b", attempts=5, p50_ms=50.0, oldest_inflight_age_s=0.2),
        Sample(1.0, "c", attempts=5, p50_ms=70.0, oldest_inflight_age_s=0.1),
        Sample(1.0, "idle"),  # drained: nobody's peer
    ])
    a, b, _, idle = samples
    assert (a.peers, a.peer_p50_ms) == (2, 60.0)
    assert a.peer_oldest_inflight_age_s == pytest.approx(0.15)
    assert (b.peers, b.peer_p50_ms) == (2, 85.0)
    assert idle.peers == 3 and idle.peer_p50_ms == 70.0


class _Admin:
    """The admin API's contract, in memory: four card providers."""

    def __init__(self) -> None:
        self.state = {p: "active" for p in PEERS}
        self.calls: list[tuple[str, str]] = []

    def providers(self) -> list[dict[str, Any]]:
        return [{"name": p, "methods": ["card"], "state": s} for p, s in self.state.items()]

    def drain(self, provider: str, reason: str) -> None:
        self.calls.append(("drain", provider))
        self.state[provider] = "drained"

    def restore(self, provider: str, reason: str) -> None:
        self.calls.append(("restore", provider))
        self.state[provider] = "active"


def _controller() -> tuple[FailoverController, _Admin, list[FailoverEvent]]:
    admin = _Admin()
    events: list[FailoverEvent] = []
    ctl = FailoverController(admin, default_policy(), ControllerConfig(),  # type: ignore[arg-type]
                             on_event=events.append)
    return ctl, admin, events


def _feed(ctl: FailoverController, rounds: list[list[Sample]]) -> None:
    for samples in rounds:
        ctl.on_samples(samples)


def test_controller_drains_a_hung_provider_and_nothing_else() -> None:
    ctl, admin, events = _controller()
    _feed(ctl, _rounds(np.random.default_rng(2), 100, 45.0,
                       target=dict(event_s=40.0, hang_ratio=1.0)))
    drains = [e for e in events if e.action == "drain"]
    assert [e.provider for e in drains] == ["psp-a"] and drains[0].detector == "hang"
    assert drains[0].time - 40.0 < 1.0  # detection, plus the host check, within 1 s
    assert admin.calls[0] == ("drain", "psp-a")


class _SlowEveryone:
    """A detector less careful than ours: from ``at`` on, every provider is "hung"."""

    name = "hang"

    def __init__(self, at: float) -> None:
        self.at = at
        self.fired: set[str] = set()

    def update(self, sample: Sample) -> Detection | None:
        if sample.time < self.at or sample.provider in self.fired:
            return None
        self.fired.add(sample.provider)
        return Detection(sample.provider, self.name, sample.time, 1.5, "oldest in-flight 0.9s")

    def reset(self, provider: str | None = None) -> None:
        self.fired.clear()


def _steady(t: float, lag: float = 0.0) -> list[Sample]:
    return [Sample(t, p, attempts=10, inflight=5.0, interval_s=0.1, loop_lag_s=lag)
            for p in PEERS]


def test_controller_holds_what_the_host_explains() -> None:
    admin = _Admin()
    events: list[FailoverEvent] = []
    policy = EnsemblePolicy({"hang": _SlowEveryone(at=2.0)}, [("hang",)])
    ctl = FailoverController(admin, policy, ControllerConfig(),  # type: ignore[arg-type]
                             on_event=events.append)
    for k in range(1, 40):
        ctl.on_samples(_steady(k * 0.1))
    assert not admin.calls, "no drain when every provider is slow together"
    holds = [e for e in events if e.action == "hold"]
    assert {e.provider for e in holds} == set(PEERS)
    assert "other providers were anomalous at the same time" in holds[0].reason
    # the loop lags: a lone latency detection is the loop's, not the provider's
    ctl, admin, events = _controller()
    ctl.on_samples(_steady(1.0, lag=0.5))
    ctl.on_detection(Detection("psp-c", "latency", 1.0, 1.2, "p50 300 ms"))
    assert not admin.calls
    assert any("event loop lags" in e.reason for e in events if e.provider == "psp-c")


def test_controller_still_never_drains_the_last_healthy_provider() -> None:
    ctl, admin, events = _controller()
    for i, p in enumerate(PEERS):
        ctl.drain(p, "failure_rate", "boom", at=float(i) * 10)
    assert [c for c in admin.calls if c[0] == "drain"] == [("drain", p) for p in
                                                           list(PEERS)[:-1]]
    assert events[-1].action == "degrade"


def test_controller_judges_a_round_as_a_whole() -> None:
    """An overloaded host times out attempts at every provider in the same round: the
    failure-rate detector alarms for several at once, and nobody is drained."""
    ctl, admin, events = _controller()
    rng = np.random.default_rng(6)

    def round_at(t: float, failing: set[str]) -> list[Sample]:
        out = []
        for p in PEERS:
            failures = int(rng.binomial(20, 0.4 if p in failing else 0.005))
            out.append(Sample(t, p, attempts=20, failures=failures,
                              timeouts=failures if p in failing else 0, interval_s=0.1,
                              p50_ms=80.0, inflight=4.0, oldest_inflight_age_s=0.1))
        return out

    t = 0.0
    for _ in range(3000):  # 5 minutes of healthy traffic at 200/s each
        t = round(t + 0.1, 1)
        ctl.on_samples(round_at(t, set()))
    for _ in range(30):  # every provider times out 40 % of its attempts
        t = round(t + 0.1, 1)
        ctl.on_samples(round_at(t, set(PEERS)))
    assert {d.provider for d in ctl.detections} == set(PEERS)
    assert not admin.calls
    assert {e.provider for e in events if e.action == "hold"} == set(PEERS)
    # one provider alone failing with errors (no timeouts elsewhere) is drained
    ctl2, admin2, _ = _controller()
    for _ in range(3000):
        t = round(t + 0.1, 1)
        ctl2.on_samples(round_at(t, set()))
    for _ in range(30):
        t = round(t + 0.1, 1)
        samples = round_at(t, {"psp-b"})
        ctl2.on_samples([s if s.provider != "psp-b" else Sample(
            s.time, s.provider, attempts=s.attempts, failures=s.failures, interval_s=0.1,
            p50_ms=80.0, inflight=4.0, oldest_inflight_age_s=0.1) for s in samples])
    assert admin2.calls[:1] == [("drain", "psp-b")]
