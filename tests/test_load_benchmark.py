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
def test_benchmark_measures_wrk_and_both_harness_modes(tmp_path: Path) -> None:
    require_binary("wrk", "wrk")
    require_binary("nginx", "nginx")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "load", "--seconds", "2", "--json", str(out)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    for key in ("wrk", "harness_1_process", "harness_2_processes"):
        assert data[key]["requests"] > 0 and data[key]["rps_per_core"] > 0, data[key]
    assert data["harness_1_process"]["failed"] == 0
    assert set(data["ratios"]) == {"harness_vs_wrk_per_core", "two_vs_one_process_throughput",
                                   "two_vs_one_process_per_core"}
    assert data["targets"] == {"harness_vs_wrk_per_core": 0.5,
                               "two_vs_one_process_throughput": 1.7}
    assert "harness/wrk per core" in proc.stdout
