"""A small version of ``python -m benchmarks detection``: the harness runs end to end, its
numbers are sane and the pass/fail logic follows the targets. Times are the benchmark's to
judge, not this test's: nothing here asserts a duration."""

from __future__ import annotations

import json

import pytest

from benchmarks import detection


@pytest.mark.slow
def test_small_benchmark_and_target_logic() -> None:
    result = detection.run(seed=3, episodes=3, quick=True, rates=(100,), volumes=(5,),
                           cost_observations=20_000)
    json.dumps(result)  # JSON-ready
    targets = result["targets"]
    assert targets == {"ratio_max": 1.5, "false_alarms_per_24h_max": 1.0,
                       "hang_delay_max_s": 1.0, "must_not_alarm": 0, "us_per_obs_max": 2.0,
                       "worst_observe_ms_max": 1.0, "recall_1_from_shift": 0.05}
    ours = [r for r in result["rate_changes"] if r["detector"] == "paystab"]
    assert {r["shift"] for r in ours} == {0.02, 0.05, 0.2, 1.0}
    for row in ours:
        assert row["recall"] == 1.0 and row["optimal_delay_s"] > 0
        assert row["pass"] == (row["ratio"] <= targets["ratio_max"]
                               and row["fa_per_24h"] <= targets["false_alarms_per_24h_max"])
    by_shift = {r["shift"]: r for r in ours}
    assert by_shift[0.2]["optimal_delay_s"] == pytest.approx(0.25, abs=0.01)
    # a dead provider: the optimum is 3 attempts; a run of failures counts as one up to 4
    # (isolated clusters are not incidents), so it takes 6
    assert by_shift[1.0]["ratio"] <= 2.1
    baselines = {r["detector"] for r in result["rate_changes"]} - {"paystab"}
    assert baselines == {"fixed_1pct_1m", "prom_for_1m", "envoy_5xx"}
    prom = next(r for r in result["rate_changes"]
                if r["detector"] == "prom_for_1m" and r["shift"] == 0.02)
    assert prom["median_delay_s"] >= 60  # `for: 1m` cannot be faster than a minute
    hang = [r for r in result["request_level"] if r["kind"] == "hang"]
    assert hang and all(r["pass"] == (r["recall"] == 1.0 and r["max_delay_s"] < 1.0
                                      and r["false_alarms"] == 0) for r in hang)
    noisy = result["noisy"]
    assert [r["volume"] for r in noisy["false_alarms"]] == [5]
    assert all(r["pass"] == (r["per_day"] <= 1.0) for r in noisy["false_alarms"])
    for row in noisy["changes"]:
        assert row["pass"] == (row["recall"] == 1.0 or row["shift"] < 0.05)
        assert len(row["ratios"]) == row["detected"]
    delay = noisy["delay"]
    assert delay["pass"] == (delay["median_ratio"] <= 1.5 and (
        not delay["changes_optimum_ge_2s"] or delay["median_ratio_optimum_ge_2s"] <= 1.5))
    scenarios = {r["scenario"] for r in result["must_not_alarm"]}
    assert any(s.startswith("host-wide") for s in scenarios)
    assert any(s.startswith("cold start") for s in scenarios)
    for row in result["must_not_alarm"]:
        if "pass" in row:
            assert row["pass"] == (sum(v for k, v in row["alarms"].items()
                                       if k in ("paystab", "hang", "latency")) == 0)
    cost = result["cost"]
    assert cost["observations"] == 20_000 and cost["mean_us"] > 0 and len(cost["runs"]) == 3
    assert cost["pass"] == (cost["mean_us"] <= 2.0 and cost["worst_observe_ms"] <= 1.0)
    checks = [r.get("pass", True) for part in ("rate_changes", "request_level", "must_not_alarm")
              for r in result[part]]
    checks += [r["pass"] for part in ("false_alarms", "changes") for r in noisy[part]]
    assert result["pass"] == (all(checks) and delay["pass"] and cost["pass"] and all(
        h["per_24h"] <= 1.0 for h in result["h0"].values()))
