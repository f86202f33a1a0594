"""The generator benchmark runs end to end (tiny durations; the numbers are in docs/load.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.conftest_load import REPO


@pytest.mark.wrk
@pytest.mark.slow
def test_benchmark_measures_paystab_stock_locust_and_wrk_in_one_run(tmp_path: Path) -> None:
    require_binary("wrk", "wrk")
    require_binary("nginx", "nginx")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "load", "--seconds", "3", "--rounds", "1",
         "--json", str(out)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    generators = {"wrk", "locust_payment", "locust_two_step", "paystab_payment",
                  "paystab_two_step_flow", "paystab_user_locustfile",
                  "paystab_payment_2_processes"}
    assert set(data["median_rps_per_core"]) == generators
    for name in generators:
        (run,) = data["runs"][name]
        assert run["requests"] > 0 and run["rps_per_core"] > 0, (name, run)
        assert run["failed"] == 0 if name != "wrk" else run["non_2xx"] == 0, (name, run)
    targets = {t["name"]: t for t in data["targets"]}
    assert {name: t["target"] for name, t in targets.items()} == {
        "payment_vs_locust_per_core": ">= 4", "two_step_flow_vs_locust_per_core": ">= 3",
        "user_locustfile_vs_locust_per_core": ">= 1", "two_vs_one_process_throughput": ">= 1.7"}
    for t in targets.values():  # every target says what was measured and whether it was met
        floor = float(t["target"][3:])
        assert t["met"] == (t["measured"] >= floor and t["median_of_round_ratios"] >= floor), t
        assert t["what"] and len(t["per_round"]) <= 1, t
    assert data["passed"] == {name: t["met"] for name, t in targets.items()}
    for name in ("locust_startup", "paystab_startup", "paystab_user_locustfile_startup"):
        cold = data["startup_cold"][name]  # a fresh process, spawn to its first request
        assert cold["cpu_to_first_request_s"] > 0 and 0 < cold["first_request_s"] < 60, cold
    (paired,) = data["paired"]["paired_user_locustfile"]["per_round"]  # both at once
    assert paired["locust_rps_per_core"] > 0 and paired["paystab_user_locustfile_rps_per_core"] > 0
    assert paired["ratio"] == pytest.approx(
        paired["paystab_user_locustfile_rps_per_core"] / paired["locust_rps_per_core"], abs=1e-3)
    (control,) = data["paired"]["paired_locust_control"]["per_round"]  # Locust vs itself
    assert control["locust_rps_per_core"] > 0 and control["locust_again_rps_per_core"] > 0
    # the locustfile target is judged on the side-by-side figures; the sequential ones stay
    userfile = targets["user_locustfile_vs_locust_per_core"]
    assert userfile["measured_side_by_side"] and userfile["per_round"] == [paired["ratio"]]
    assert userfile["control_median_ratio"] == control["ratio"]
    assert userfile["sequential"]["per_round"] == [round(
        data["runs"]["paystab_user_locustfile"][0]["steady_rps_per_core"]
        / data["runs"]["locust_payment"][0]["steady_rps_per_core"], 3)]
    assert "payment_vs_locust_per_core" in proc.stdout


@pytest.mark.slow
def test_startup_benchmark_times_fresh_paystab_and_locust_processes(tmp_path: Path) -> None:
    require_binary("nginx", "nginx")
    out = tmp_path / "startup.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "startup", "--rounds", "1", "--json", str(out)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    variants = {"locust", "paystab_load", "paystab_load_f", "paystab_load_no_bytecode",
                "locust_version", "paystab_version"}
    assert set(data["medians"]) == variants == set(data["runs"])
    for name in variants:
        (run,) = data["runs"][name]
        wall = run.get("first_request_s", run.get("s"))
        cpu = run.get("cpu_to_first_request_s", run.get("cpu_s"))
        assert 0 < wall < 60 and cpu > 0, (name, run)
    assert set(data["ratios"]) == {"paystab_load_vs_locust", "paystab_load_f_vs_locust",
                                   "no_bytecode_vs_bytecode",
                                   "paystab_version_vs_locust_version"}
    for ratio in data["ratios"].values():
        assert ratio["wall_ratio_of_medians"] > 0 and ratio["cpu_median_per_round"] > 0, ratio
