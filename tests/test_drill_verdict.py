"""The drill's verdict: false failovers, an apparatus that was the bottleneck, cut-off
checkouts, not-applicable hypotheses and the shortest judgeable duration."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from paystab.chaos.bundled import bundled_runbooks, find_runbook
from paystab.chaos.runbook import load_runbook
from paystab.chaos.runbook_load import load_runbook_text
from paystab.drill.apparatus import (
    MAX_DROPPED_RATIO,
    MAX_GENERATOR_LAG_MS,
    LoopLagProbe,
    harness_figures,
    judge,
)
from paystab.drill.recorder import Recorder
from paystab.drill.runner import verdict
from paystab.drill.scaling import scaled
from paystab.exceptions import InvalidInput
from paystab.report.model import (
    FailoverRecord,
    FaultRecord,
    HypothesisResult,
    ProviderPoint,
    Report,
)
from paystab.report.schema import schema_problems
from paystab.slo import FALSE_FAILOVER_GRACE_S, false_failovers


def _report(**kw: Any) -> Report:
    report = Report(runbook="r", seed=1, started_at="2026-12-06T00:00:00+00:00", duration_s=60.0, **kw)
    report.provider_timeline = [ProviderPoint(0.0, name) for name in ("card-alpha", "card-bravo")]
    return report


def _fault(target: str, at: float, cleared: float | None) -> FaultRecord:
    return FaultRecord(id=f"{target}-{at}", kind="provider.hang", target=target, params={},
                       injected_at_s=at, cleared_at_s=cleared)


# -- false failovers ------------------------------------------------------------------------


def test_a_drain_inside_its_providers_fault_window_is_not_false() -> None:
    report = _report(faults=[_fault("card-alpha", 15.0, 45.0)],
                     failovers=[FailoverRecord("card-alpha", "drain", 15.4, "hang", "stuck"),
                                FailoverRecord("card-alpha", "restore", 47.0)])
    result = false_failovers(report)
    assert result.count == 0 and result.events == [] and result.grace_s == FALSE_FAILOVER_GRACE_S


def test_drains_before_the_fault_on_another_provider_or_after_the_grace_are_false() -> None:
    report = _report(faults=[_fault("card-alpha", 15.0, 45.0)], failovers=[
        FailoverRecord("card-alpha", "drain", 1.8, "hang", "cold start"),  # before injection
        FailoverRecord("card-bravo", "drain", 20.0, "latency", "slow host"),  # other provider
        FailoverRecord("card-alpha", "drain", 45.0 + FALSE_FAILOVER_GRACE_S + 0.5, "fr", "late"),
        FailoverRecord("card-alpha", "drain", 45.0 + FALSE_FAILOVER_GRACE_S - 0.5, "fr", "lagging"),
        FailoverRecord("card-bravo", "degrade", 3.0),  # not a drain
    ])
    result = false_failovers(report)
    assert [(e.provider, e.at_s) for e in result.events] == [
        ("card-alpha", 1.8), ("card-bravo", 20.0), ("card-alpha", 45.0 + FALSE_FAILOVER_GRACE_S + 0.5)]
    assert result.count == 3 and result.events[0].detector == "hang" and result.events[0].reason == "cold start"


def test_a_fault_on_no_single_provider_explains_any_drain_inside_its_window() -> None:
    report = _report(faults=[_fault("gateway", 20.0, None)],  # never cleared: lasts to the end
                     failovers=[FailoverRecord("card-bravo", "drain", 50.0),
                                FailoverRecord("card-alpha", "drain", 5.0)])
    assert [e.at_s for e in false_failovers(report).events] == [5.0]


def test_false_failovers_are_in_the_json_and_the_hypothesis_reads_them() -> None:
    from paystab.chaos.hypothesis import Hypothesis

    report = _report(failovers=[FailoverRecord("card-alpha", "drain", 2.0, "hang", "cold")])
    report.false_failovers = false_failovers(report)
    data = report.to_json()
    assert schema_problems(data) == []
    assert data["false_failovers"]["count"] == 1
    assert data["false_failovers"]["events"][0]["provider"] == "card-alpha"
    assert Hypothesis.parse("false_failovers == 0").evaluate(data).ok is False
    assert Report.from_json(data).false_failovers.count == 1


def test_every_bundled_runbook_requires_zero_false_failovers() -> None:
    for name in bundled_runbooks():
        runbook = load_runbook(find_runbook(name))
        assert "false_failovers == 0" in [h.expr for h in runbook.hypotheses], name


def test_the_default_drill_judges_the_source_documents_slos() -> None:
    exprs = [h.expr for h in load_runbook(find_runbook("provider-timeout")).hypotheses]
    assert "p95_ms <= 500" in exprs and "failure_rate <= 0.005" in exprs


# -- the apparatus ------------------------------------------------------------------------


def _figures(dropped: int = 0, issued: int = 6000, lags: list[float] | None = None,
             loop: list[float] | None = None) -> dict[str, Any]:
    probe = LoopLagProbe()
    probe.lags_ms = list(loop or [1.0] * 100)
    generator = {"issued": issued, "dropped": dropped, "cpu_s": 3.0, "max_lag_ms": max(lags or [1.0])}
    return harness_figures(generator, 60.0, lags or [1.0] * 100, probe)


def test_a_generator_that_kept_up_is_no_reason() -> None:
    figures = _figures()
    assert judge(figures) is None
    assert figures["cpu_share"] == 0.05 and figures["dropped_ratio"] == 0.0


def test_dropped_arrivals_beyond_the_limit_make_it_inconclusive() -> None:
    dropped = int(6000 * MAX_DROPPED_RATIO * 3)
    reason = judge(_figures(dropped=dropped))
    assert reason is not None and f"dropped {dropped} of {6000 + dropped}" in reason


def test_a_late_generator_or_loop_makes_it_inconclusive_and_names_the_cause() -> None:
    late = judge(_figures(lags=[1.0] * 90 + [MAX_GENERATOR_LAG_MS * 2] * 10))
    assert late is not None and "late at p99" in late and "starved of CPU" in late
    loop = judge(_figures(loop=[600.0] * 50))
    assert loop is not None and "event loop" in loop


def test_verdict_order_aborted_then_apparatus_then_hypotheses() -> None:
    report = _report(hypotheses=[HypothesisResult("orphans == 0", None, None),
                                 HypothesisResult("availability >= 0.9999", 1.0, True)])
    report.harness = _figures()
    assert verdict(report, aborted=False) == ("pass", None)  # not applicable neither fails nor passes
    report.hypotheses.append(HypothesisResult("p95_ms <= 500", 700.0, False))
    assert verdict(report, aborted=False) == ("fail", None)
    report.harness = _figures(dropped=1000)
    status, reason = verdict(report, aborted=False)
    assert status == "inconclusive" and reason and "dropped" in reason
    assert verdict(report, aborted=False, interrupted=True) == ("aborted", None)
    report.abort_reason = "abort_when availability < 0.9 over 30s (observed 0.87)"
    status, reason = verdict(report, aborted=True)  # the starved generator, not the stack
    assert status == "inconclusive" and reason and "stopped early: abort_when availability" in reason
    report.harness = _figures()
    assert verdict(report, aborted=True) == ("aborted", None)
    report.verdict, report.inconclusive_reason = status, reason
    assert schema_problems(report.to_json()) == []


def test_exit_code_of_an_inconclusive_drill_is_4() -> None:
    from paystab.drill.runner import exit_for
    from paystab.exceptions import Inconclusive

    report = _report()
    report.verdict, report.inconclusive_reason = "inconclusive", "the load generator dropped arrivals"
    with pytest.raises(Inconclusive) as caught:
        exit_for(report)
    assert caught.value.exit_code == 4 and "dropped arrivals" in caught.value.message


def test_loop_lag_probe_measures_a_blocked_loop() -> None:
    import time

    probe = LoopLagProbe(tick_s=0.01)
    probe.start()
    deadline = time.monotonic() + 5
    while len(probe.lags_ms) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    probe.stop()
    assert len(probe.lags_ms) >= 3 and all(lag >= 0 for lag in probe.lags_ms)
    assert probe.summary()["loop_lag_max_ms"] is not None


# -- cut-off checkouts ----------------------------------------------------------------------


def _record(started: float, latency_ms: float, outcome: str) -> SimpleNamespace:
    return SimpleNamespace(started_at=started, latency_ms=latency_ms, outcome=outcome, lag_ms=0.5)


def test_checkouts_failed_by_the_stop_are_not_customer_failures() -> None:
    recorder = Recorder(1000.0)
    recorder.on_checkout(_record(1001.0, 50.0, "failed"))  # a real failure before the stop
    recorder.stop_at(1010.0)
    recorder.on_checkout(_record(1009.9, 200.0, "failed"))  # ended after the stop: cut off
    recorder.on_checkout(_record(1009.5, 100.0, "approved"))  # answered: counts
    recorder.on_checkout(_record(1005.0, 100.0, "failed"))  # ended long before: counts
    assert recorder.cut_off == 1
    assert recorder.totals() == (3, 2)
    assert recorder.generator_lags_ms == [0.5, 0.5, 0.5]


def test_recorder_window_percentiles_are_percentiles() -> None:
    recorder = Recorder(0.0)
    for i in range(100):
        recorder.on_checkout(_record(0.5, float(i + 1), "approved"))
    window = recorder.window(1.0, 1.0)
    assert window["p50_ms"] == pytest.approx(50.5) and window["p95_ms"] == pytest.approx(95.05)


# -- the shortest judgeable duration ------------------------------------------------------------


def test_a_duration_below_the_runbooks_minimum_exits_2_naming_it() -> None:
    runbook = load_runbook(find_runbook("provider-error-burst"))
    with pytest.raises(InvalidInput) as caught:
        scaled(runbook, 10.0, None, None)
    text = caught.value.render()
    assert "--duration" in text and f"{runbook.load.min_duration_s:g}s" in text
    assert scaled(runbook, runbook.load.min_duration_s, None, None)[0].load.duration_s == runbook.load.min_duration_s


def test_min_duration_is_read_and_checked_against_the_duration(tmp_path: Path) -> None:
    base = ("name: m\ndescription: d\nseed: 1\ntarget:\n  reference: {}\nload:\n  profile: steady\n"
            "  rate: 10/s\n  duration: 30s\n")
    assert load_runbook_text(base + "  min_duration: 25s\n").load.min_duration_s == 25.0
    assert load_runbook_text(base).load.min_duration_s == 20.0
    short = base.replace("duration: 30s", "duration: 5s")
    assert load_runbook_text(short).load.min_duration_s == 5.0
    with pytest.raises(InvalidInput) as caught:
        load_runbook_text(base + "  min_duration: 40s\n", "m.yaml")
    assert "load.min_duration" in caught.value.render() and "m.yaml:10" in caught.value.render()


def test_steady_state_tolerance_counts_only_the_bad_direction() -> None:
    from paystab.chaos.runbook import Probe

    latency = Probe("p95", metric="p95_ms", max=500.0, tolerance=0.5)
    assert latency.within_tolerance(267.0, 118.0)  # faster after than before: recovered
    assert not latency.within_tolerance(100.0, 160.0)
    availability = Probe("avail", metric="availability", min=0.99, tolerance=0.01)
    assert availability.within_tolerance(0.995, 1.0) and not availability.within_tolerance(1.0, 0.98)
    both = Probe("rps", metric="rps", min=1.0, max=1000.0, tolerance=0.1)
    assert not both.within_tolerance(100.0, 80.0) and not both.within_tolerance(100.0, 120.0)


@pytest.mark.parametrize(("text", "seconds"), [("30", 30.0), ("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0),
                                               ("1.5", 1.5), ("250ms", 0.25)])
def test_one_duration_grammar_on_every_command_line(text: str, seconds: float) -> None:
    from paystab.units import parse_cli_duration_s

    assert parse_cli_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["-5", "0", "soon", "30 parsecs", "nan", "inf", ""])
def test_bad_command_line_durations_are_refused(text: str) -> None:
    from paystab.units import parse_cli_duration_s

    with pytest.raises(ValueError):
        parse_cli_duration_s(text)


def test_drill_duration_takes_units_and_refuses_bad_ones_with_exit_2(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"))
    for bad, said in (("soon", "cannot read 'soon'"), ("10s", "at least 60s")):
        done = subprocess.run([sys.executable, "-m", "paystab", "drill", "provider-error-burst", "--no-live",
                               "--duration", bad, "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "--duration" in done.stderr and said in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "out" / "report.json").exists()


def test_a_stack_files_max_rps_scales_the_whole_load_shape_down_to_peak_there() -> None:
    flash = load_runbook(find_runbook("flash-sale"))
    peak = flash.load.rate_per_s * flash.load.params.get("factor", 10.0)
    capped, notes = scaled(flash, None, None, None, max_rps=peak / 5)
    assert capped.load.rate_per_s == pytest.approx(flash.load.rate_per_s / 5)
    assert capped.load.params == flash.load.params and capped.faults == flash.faults
    assert any("load.max_rps" in note and f"{peak:g}/s" in note for note in notes), notes
    # a runbook that already peaks below the cap runs as written; --rps wins over the cap
    assert scaled(flash, None, None, None, max_rps=peak * 2) == (flash, [])
    assert scaled(flash, None, 50.0, None, max_rps=10.0)[0].load.rate_per_s == 50.0
