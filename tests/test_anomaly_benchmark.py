"""A small version of ``python -m benchmarks detection``: the harness runs end to end, its
numbers are sane and the pass/fail logic follows the targets."""

from __future__ import annotations

import json

import pytest

from benchmarks import detection


def test_small_benchmark_and_target_logic() -> None:
    result = detection.run(seed=3, episodes=3, quick=True, rates=(100,))
    json.dumps(result)  # JSON-ready
    targets = result["targets"]
    assert targets == {"ratio_max": 1.5, "false_alarms_per_24h_max": 1.0,
                       "hang_delay_max_s": 1.0, "must_not_alarm": 0, "us_per_obs_max": 2.0}
    ours = [r for r in result["rate_changes"] if r["detector"] == "paystab"]
    assert {r["shift"] for r in ours} == {0.02, 0.05, 0.2, 1.0}
    for row in ours:
        assert row["recall"] == 1.0 and row["optimal_delay_s"] > 0
        assert row["pass"] == (row["ratio"] <= targets["ratio_max"]
                               and row["fa_per_24h"] <= targets["false_alarms_per_24h_max"])
    by_shift = {r["shift"]: r for r in ours}
    assert by_shift[0.2]["optimal_delay_s"] == pytest.approx(0.25, abs=0.01)
    assert by_shift[1.0]["ratio"] <= 1.5  # a dead provider: a few attempts
    baselines = {r["detector"] for r in result["rate_changes"]} - {"paystab"}
    assert baselines == {"fixed_1pct_1m", "prom_for_1m", "envoy_5xx"}
    prom = next(r for r in result["rate_changes"]
                if r["detector"] == "prom_for_1m" and r["shift"] == 0.02)
    assert prom["median_delay_s"] >= 60  # `for: 1m` cannot be faster than a minute
    hang = [r for r in result["request_level"] if r["kind"] == "hang"]
    assert hang and all(r["pass"] == (r["max_delay_s"] < 1.0) for r in hang)
    for row in result["must_not_alarm"]:
        if "pass" in row:
            assert row["pass"] == (sum(v for k, v in row["alarms"].items()
                                       if k in ("paystab", "hang", "latency")) == 0)
    assert result["cost"]["gross_us"] < 2.0
    checks = [r.get("pass", True) for part in ("rate_changes", "request_level", "must_not_alarm")
              for r in result[part]]
    assert result["pass"] == (all(checks) and result["cost"]["pass"] and all(
        h["per_24h"] <= 1.0 for h in result["h0"].values()))
