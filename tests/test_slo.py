"""SLO arithmetic on hand-computed cases: traffic, timeline, budget, incidents, providers."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

import pytest

from paystab import slo
from paystab.loadtest.records import CheckoutRecord
from paystab.report.model import (
    DetectionRecord,
    FailoverRecord,
    FaultRecord,
    Incident,
    ProviderPoint,
    Report,
    SloSummary,
    SloTargets,
)
from paystab.slo import RequestSample
from tests.report_demo import demo_report


def steady(seconds: int, rate: int = 10, latency: float = 50.0) -> list[RequestSample]:
    """``rate`` approved requests per second at t = k + i / rate."""
    return [RequestSample(k + i / rate, "approved", latency)
            for k in range(seconds) for i in range(rate)]


Keys = AbstractSet[tuple[int, int]]


def with_changes(samples: list[RequestSample], slow: Keys = frozenset(),
                 failed: Keys = frozenset(), rate: int = 10) -> list[RequestSample]:
    """Mark request i of second k slow (900 ms) or failed."""
    out = []
    for s in samples:
        key = (int(s.t_s), round((s.t_s - int(s.t_s)) * rate))
        if key in failed:
            out.append(RequestSample(s.t_s, "failed", 30.0))
        elif key in slow:
            out.append(RequestSample(s.t_s, "approved", 900.0))
        else:
            out.append(s)
    return out


def incident_for(samples: list[RequestSample], fault: FaultRecord, *,
                 faults: list[FaultRecord] | None = None, duration_s: float = 20.0,
                 detections: list[DetectionRecord] | None = None,
                 failovers: list[FailoverRecord] | None = None) -> Incident:
    points = slo.timeline(samples, duration_s)
    return slo.incident(fault, faults=faults or [fault], detections=detections or [],
                        failovers=failovers or [], points=points, samples=samples,
                        duration_s=duration_s, targets=SloTargets())


# -- traffic and timeline ----------------------------------------------------------------


def test_traffic_counts_declines_and_pending_as_answers() -> None:
    outcomes = ["approved"] * 6 + ["declined"] * 2 + ["pending", "failed"]
    samples = [RequestSample(i * 0.1, o, 10.0 * (i + 1)) for i, o in enumerate(outcomes)]
    t = slo.traffic(samples, dropped_arrivals=4)
    assert (t.requests, t.approved, t.declined, t.pending, t.failed) == (10, 6, 2, 1, 1)
    assert t.availability == 0.9
    assert t.failure_rate == 0.1
    assert t.dropped_arrivals == 4
    # latencies 10..100 ms: linear interpolation between closest ranks
    assert t.p50_ms == pytest.approx(55.0)
    assert t.p95_ms == pytest.approx(95.5)
    assert t.p99_ms == pytest.approx(99.1)


def test_traffic_of_nothing_is_null_not_zero() -> None:
    t = slo.traffic([])
    assert t.requests == 0
    assert t.availability is None and t.failure_rate is None and t.p95_ms is None


def test_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown outcome 'timeout'"):
        slo.traffic([RequestSample(0.0, "timeout", 1.0)])


def test_timeline_buckets_by_arrival_and_keeps_empty_seconds() -> None:
    samples = [RequestSample(-0.2, "approved", 10.0), RequestSample(0.7, "failed", 30.0),
               RequestSample(1.5, "declined", 20.0), RequestSample(3.9, "pending", 40.0),
               RequestSample(5.2, "approved", 50.0)]  # after the nominal end: still counted
    points = slo.timeline(samples, duration_s=4.5)
    assert [p.t_s for p in points] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [p.requests for p in points] == [2, 1, 0, 1, 0, 1]
    assert points[0].failed == 1 and points[0].availability == 0.5
    assert points[0].p50_ms == pytest.approx(20.0)
    assert points[2].availability is None and points[2].p95_ms is None
    assert points[3].pending == 1 and points[3].availability == 1.0


def test_bucket_state() -> None:
    targets = SloTargets()
    samples = with_changes(steady(4, rate=20), slow={(1, 19), (2, 18), (2, 19)},
                           failed={(3, 0)}, rate=20)
    points = slo.timeline(samples, 5)
    # one slow request of 20: p95 at rank 18.05 = 50 + 0.05 × 850; two: rank 18.05 → 900
    assert points[1].p95_ms == pytest.approx(92.5)
    assert points[2].p95_ms == pytest.approx(900.0)
    assert [slo.bucket_state(p, targets) for p in points] == \
        ["healthy", "healthy", "unhealthy", "unhealthy", "empty"]


def test_samples_from_load_harness_records() -> None:
    record = CheckoutRecord(started_at=1000.25, method="card", currency="JPY",
                            outcome="declined", status="declined", code="declined.fraud",
                            latency_ms=42.0, attempts=1, http_status=200)
    assert slo.samples_from_checkouts([record], start_epoch=1000.0) == \
        [RequestSample(0.25, "declined", 42.0)]


# -- error budget ------------------------------------------------------------------------


def test_error_budget_used_over_the_drill() -> None:
    samples = steady(100, rate=100)
    samples = [RequestSample(s.t_s, "failed", 1.0) if i in (5, 500, 9000) else s
               for i, s in enumerate(samples)]
    budget = slo.error_budget(slo.traffic(samples), 0.9999)
    assert (budget.requests, budget.failed) == (10000, 3)
    assert budget.allowed_failures == pytest.approx(1.0)
    assert budget.used == pytest.approx(3.0)


def test_burn_rate_per_window() -> None:
    samples = with_changes(steady(25, rate=100), failed={(3, 0), (3, 1), (21, 5)}, rate=100)
    windows = slo.burn_rates(slo.timeline(samples, 25), 0.9999, window_s=10)
    assert [(w.start_s, w.end_s, w.requests, w.failed) for w in windows] == \
        [(0.0, 10.0, 1000, 2), (10.0, 20.0, 1000, 0), (20.0, 25.0, 500, 1)]
    assert [w.burn_rate for w in windows] == pytest.approx([20.0, 0.0, 20.0])


# -- incidents ---------------------------------------------------------------------------

ALPHA = FaultRecord("f1", "provider.hang", "provider:card-alpha", {}, 5.3, 12.0)


def impacted(extra_failed: Keys = frozenset()) -> list[RequestSample]:
    """Second 5: requests from 5.3 on take 900 ms; second 6: two slow; second 7: 1 failed."""
    slow = {(5, i) for i in range(3, 10)} | {(6, 0), (6, 1)}
    return with_changes(steady(20), slow=slow, failed={(7, 4), *extra_failed})


def test_ttd_ttm_ttr_and_impact_hand_computed() -> None:
    detections = [DetectionRecord("card-alpha", "hang", 4.0, "before the fault"),
                  DetectionRecord("card-bravo", "latency", 5.5, "another provider"),
                  DetectionRecord("card-alpha", "hang", 5.9, "oldest in flight 0.5 s")]
    failovers = [FailoverRecord("card-alpha", "drain", 6.1),
                 FailoverRecord("card-alpha", "restore", 14.0)]
    inc = incident_for(impacted(), ALPHA, detections=detections, failovers=failovers)
    assert inc.provider == "card-alpha"
    assert inc.ttd_s == pytest.approx(0.6)
    assert inc.ttm_s == pytest.approx(0.8)
    # unhealthy buckets 5 (p95 900), 6 (p95 900), 7 (availability 0.9); 8..12 healthy
    assert inc.impact_start_s == 5.0
    assert inc.recovered_at_s == 8.0
    assert inc.ttr_s == pytest.approx(8.0 - 5.3)
    assert inc.impact_requests == 7 + 2 + 1
    assert inc.note == ""


def test_later_separate_blip_is_not_this_incident() -> None:
    inc = incident_for(impacted(extra_failed={(15, 0)}), ALPHA)
    assert inc.ttr_s == pytest.approx(2.7)


def test_flapping_within_the_sustain_window_extends_ttr() -> None:
    inc = incident_for(impacted(extra_failed={(10, 0)}), ALPHA)  # 8, 9 healthy, 10 not
    assert inc.recovered_at_s == 11.0
    assert inc.ttr_s == pytest.approx(11.0 - 5.3)
    assert inc.impact_requests == 11


def test_no_customer_impact_means_ttr_zero() -> None:
    inc = incident_for(steady(20), ALPHA)
    assert inc.ttr_s == 0.0 and inc.impact_requests == 0
    assert inc.impact_start_s is None and inc.note == "no customer impact"
    assert inc.ttd_s is None and inc.ttm_s is None


def test_impact_that_starts_late_is_still_measured() -> None:
    inc = incident_for(with_changes(steady(20), failed={(9, 0)}), ALPHA)
    assert inc.impact_start_s == 9.0 and inc.ttr_s == pytest.approx(10.0 - 5.3)


def test_never_recovered_within_the_drill() -> None:
    samples = with_changes(steady(20), failed={(k, 0) for k in range(6, 17)})
    inc = incident_for(samples, ALPHA)  # 17, 18, 19 healthy: only 3 of the 5 seconds needed
    assert inc.ttr_s is None and inc.recovered_at_s is None
    assert "before the drill ended" in inc.note
    assert slo.mttr([inc]) is None


def test_empty_seconds_do_not_count_as_recovered() -> None:
    samples = [s for s in impacted() if not 9.0 <= s.t_s < 10.0]  # no traffic in second 9
    inc = incident_for(samples, ALPHA)
    assert inc.recovered_at_s == 10.0


def test_next_fault_bounds_the_incident() -> None:
    first = FaultRecord("f1", "provider.hang", "provider:card-alpha", {}, 5.0, 8.0)
    second = FaultRecord("f2", "provider.hang", "provider:card-bravo", {}, 10.0, 12.0)
    samples = with_changes(steady(20), failed={(k, 0) for k in range(5, 12)})
    both = [first, second]
    inc1 = incident_for(samples, first, faults=both,
                        detections=[DetectionRecord("card-alpha", "hang", 10.5, "")])
    assert inc1.ttr_s is None and "next fault at 10 s" in inc1.note
    assert inc1.ttd_s is None  # the detection after the horizon belongs to the next fault
    inc2 = incident_for(samples, second, faults=both)
    assert inc2.ttr_s == pytest.approx(2.0)


def test_overlapping_faults_share_the_impact() -> None:
    first = FaultRecord("f1", "proxy.latency", "provider:card-alpha", {}, 5.0, 11.0)
    second = FaultRecord("f2", "proxy.latency", "provider:card-bravo", {}, 8.0, 11.0)
    samples = with_changes(steady(20), failed={(k, 0) for k in range(5, 12)})
    incs = [incident_for(samples, f, faults=[first, second]) for f in (first, second)]
    assert [i.ttr_s for i in incs] == pytest.approx([7.0, 4.0])
    assert slo.mttr(incs) == pytest.approx(5.5)


def test_fault_without_provider_takes_any_detection() -> None:
    fault = FaultRecord("f1", "provider.error_burst", "method:wallet", {}, 5.0, 9.0)
    inc = incident_for(steady(20), fault,
                       detections=[DetectionRecord("wallet-kakao", "failure_rate", 5.25, "")],
                       failovers=[FailoverRecord("wallet-kakao", "degrade", 5.5)])
    assert inc.provider is None
    assert (inc.ttd_s, inc.ttm_s) == (0.25, 0.5)


def test_fault_provider_resolution() -> None:
    bare = FaultRecord("f", "proxy.timeout", "card-alpha", {}, 0.0)
    assert slo.fault_provider(bare, {"card-alpha"}) == "card-alpha"
    assert slo.fault_provider(bare, set()) is None
    named = FaultRecord("f", "docker.pause", "container:psp", {}, 0.0, provider="card-beta")
    assert slo.fault_provider(named, set()) == "card-beta"


def test_mttr() -> None:
    assert slo.mttr([]) is None
    incs = [Incident("a", None, None, 2.0), Incident("b", None, None, 4.0)]
    assert slo.mttr(incs) == 3.0


# -- providers ---------------------------------------------------------------------------


def test_health_score_anchors() -> None:
    assert slo.health_score(0.99, 400.0, 0.0) == pytest.approx(88.0)
    assert slo.health_score(0.98, 400.0, 0.0) == pytest.approx(76.0)
    assert slo.health_score(1.0, None, 0.0) == pytest.approx(100.0)
    assert slo.health_score(0.90, 5000.0, 1.0) == pytest.approx(2.5)


def test_provider_sla_and_health_table() -> None:
    points = [ProviderPoint(float(t), "a", attempts=1000, failures=f, p95_ms=80.0)
              for t, f in ((0, 0), (1, 1), (2, 0))]
    points += [ProviderPoint(0.0, "b", attempts=100, failures=1, p95_ms=250.0),
               ProviderPoint(1.0, "b", attempts=100, failures=0, p95_ms=1000.0, drained=True)]
    failovers = [FailoverRecord("b", "drain", 0.5), FailoverRecord("b", "restore", 1.5)]
    rows = {r.provider: r for r in slo.provider_health(points, SloTargets(), failovers, 4.0)}
    a, b = rows["a"], rows["b"]
    assert a.success == pytest.approx(1 - 1 / 3000) and a.sla_met is True
    assert a.sla_target == 0.9995 and a.share == pytest.approx(3000 / 3200)
    assert b.success == pytest.approx(0.995) and b.sla_met is False
    assert b.p95_ms == pytest.approx(625.0)
    assert b.minutes_drained == pytest.approx(1 / 60)
    # 60 × (1 − 0.005 / 0.05) + 25 × 500 / 625 + 15 × (1 − 1 / 4)
    assert b.health_score == pytest.approx(54 + 20 + 11.25)
    promo = slo.provider_health(points, SloTargets(promotion=True))
    assert all(r.sla_target == 0.999 for r in promo)
    # no events: the sampled drained flags count (b's last point stands for 1 s)
    assert {r.provider: r.minutes_drained for r in promo}["b"] == pytest.approx(1 / 60)


# -- the whole report --------------------------------------------------------------------


def test_fill_report_and_report_variables() -> None:
    report = Report(runbook="t", seed=1, started_at="2025-01-01T00:00:00Z", duration_s=20.0,
                    faults=[ALPHA],
                    detections=[DetectionRecord("card-alpha", "hang", 5.9, "")],
                    failovers=[FailoverRecord("card-alpha", "drain", 6.1),
                               FailoverRecord("card-alpha", "restore", 14.0)])
    slo.fill_report(report, impacted())
    assert report.traffic.requests == 200 and report.traffic.failed == 1
    assert len(report.timeline) == 20
    assert report.mttr_s == pytest.approx(2.7)
    summary = SloSummary.from_json(report.slo)
    assert summary.error_budget is not None
    assert summary.error_budget.used == pytest.approx(0.005 / 0.0001)
    assert summary.max_burn_rate == pytest.approx(0.01 / 0.0001)
    values = slo.report_variables(report)
    assert values["availability"] == pytest.approx(0.995)
    assert values["mttr_s"] == pytest.approx(2.7)
    assert values["max_ttd_s"] == pytest.approx(0.6)
    assert (values["drains"], values["restores"], values["incidents"]) == (1, 1, 1)
    assert values["unrecovered_incidents"] == 0 and values["impact_requests"] == 10
    assert values["double_charges"] is None  # not reconciled: unmeasured, not zero


def test_demo_report_is_deterministic_and_passes() -> None:
    one, two = demo_report(seed=11), demo_report(seed=11)
    assert one.to_json() == two.to_json()
    assert one.verdict == "pass"
    assert one.traffic.requests == 6000 and one.traffic.availability == 1.0
    assert [i.ttr_s for i in one.incidents] == [1.0, 1.0]
    assert demo_report(severe=True).verdict == "fail"
