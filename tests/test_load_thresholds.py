"""Thresholds: the safe grammar, and evaluation over the whole run and per window."""

from __future__ import annotations

import math

import pytest

from paystab.exceptions import InvalidInput
from paystab.loadtest.records import CheckoutRecord
from paystab.loadtest.stats import summarize, windows
from paystab.loadtest.thresholds import evaluate, parse_threshold, parse_thresholds

T0 = 1_700_000_000.0


def rec(t: float, outcome: str = "approved", latency_ms: float = 50.0) -> CheckoutRecord:
    return CheckoutRecord(T0 + t, "card", "JPY", outcome, outcome, "", latency_ms, 1, 200)


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("failure_rate<0.005", "failure_rate", "<", 0.005),
        ("failure_rate < 0.5%", "failure_rate", "<", 0.005),
        ("p(99)<500", "latency", "<", 500.0),
        ("p(95)<=300", "latency", "<=", 300.0),
        ("p(99.9) < 1.5s", "latency", "<", 1500.0),
        ("p99<250ms", "latency", "<", 250.0),
        ("availability>=0.9999", "availability", ">=", 0.9999),
        ("dropped_rate<0.01", "dropped_rate", "<", 0.01),
        ("rps>=100", "rps", ">=", 100.0),
        ("avg<200", "latency", "<", 200.0),
        ("max==0", "latency", "==", 0.0),
    ],
)
def test_valid_expressions(text: str, metric: str, op: str, value: float) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.op) == (metric, op)
    assert t.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    ["p(99)<<5", "foo<1", "p(0)<5", "p(101)<5", "", "failure_rate<5ms", "rps>=5%",
     "p(99)<5%", "__import__('os').system('true')", "failure_rate<0.1 or 1", "p(99)",
     "availability>=", "1<failure_rate"],
)
def test_malformed_expressions_list_what_is_allowed(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_threshold(text)
    assert err.value.exit_code == 2
    message = err.value.render()
    assert "--threshold" in message
    assert "expected" in message


def test_unknown_metric_lists_every_metric() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_threshold("error_rate<0.1")
    for name in ("failure_rate", "availability", "dropped_rate", "rps", "p(N)"):
        assert name in err.value.render()


def test_whole_run_hides_a_burst_that_a_window_catches() -> None:
    # 100 s at 10/s; 10 s of failures in the middle: 10 % over the run, 100 % in a window
    records = [rec(i / 10, "failed" if 500 <= i < 600 else "approved") for i in range(1000)]
    run = summarize(records, 0, 0, 100)
    series = windows(records, {}, T0, 100, 10)
    [result] = evaluate(parse_thresholds(["failure_rate<0.2"]), run, series)
    assert result.ok_run and result.observed == pytest.approx(0.1)
    assert not result.ok
    assert [(b.window, b.start_s, b.end_s) for b in result.breaches] == [(5, 50, 60)]
    assert "window 5 [50s–60s)" in result.describe()
    assert "failure_rate<0.2" in result.describe()


def test_latency_and_availability_thresholds() -> None:
    records = [rec(i / 10, latency_ms=10.0 + i) for i in range(100)]
    records.append(rec(5, "pending"))
    records.append(rec(6, "declined"))
    run = summarize(records, 0, 0, 10)
    results = evaluate(parse_thresholds(["p(99)<0.001", "availability>=0.9999", "p(50)<100",
                                         "rps>=10"]), run, windows(records, {}, T0, 10, 5))
    ok = {r.threshold.expr: r.ok for r in results}
    assert ok == {"p(99)<0.001": False, "availability>=0.9999": True, "p(50)<100": True,
                  "rps>=10": True}


def test_no_data_fails_the_run_but_empty_windows_are_skipped() -> None:
    run = summarize([], 0, 0, 10)
    [r] = evaluate(parse_thresholds(["failure_rate<0.01"]), run, windows([], {}, T0, 10, 5))
    assert math.isnan(r.observed) and not r.ok_run and r.breaches == []
    assert "no data" in r.describe()


def test_dropped_arrivals_breach_their_window() -> None:
    records = [rec(i / 10) for i in range(100)]
    dropped = {int((T0 + 7.0) / 0.1): 50}  # 50 arrivals dropped at t=7 s
    run = summarize(records, 50, 0, 10)
    series = windows(records, dropped, T0, 10, 5)
    [r] = evaluate(parse_thresholds(["dropped_rate<0.4"]), run, series)
    assert r.ok_run
    assert [b.window for b in r.breaches] == [1]
    assert series[1].summary.dropped == 50 and series[0].summary.dropped == 0
