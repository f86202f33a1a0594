"""``paystab rules export`` / ``paystab dashboards export`` through the real CLI process.

Exit codes are the contract: 0 written, 2 for an SLO outside (0, 1) or a window that is not
a Prometheus duration (the message names the flag), 4 for a directory that cannot be written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest_alerting import REPO


def _paystab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "paystab", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def test_rules_export_writes_rules_and_promtool_tests(tmp_path: Path) -> None:
    result = _paystab("rules", "export", str(tmp_path / "rules"), "--slo", "0.999",
                      "--fast-burn-windows", "2h,10m")
    assert result.returncode == 0, result.stderr
    alerts = yaml.safe_load((tmp_path / "rules" / "paystab.rules.yml").read_text())
    fast = next(r for g in alerts["groups"] for r in g["rules"]
                if r.get("alert") == "PaystabErrorBudgetBurnFast")
    assert "rate2h > (14.4 * 0.001)" in fast["expr"] and "rate10m" in fast["expr"]
    recording = (tmp_path / "rules" / "paystab.rules.yml").read_text()
    assert "paystab:payments_error_ratio:rate2h" in recording
    assert sorted(p.name for p in (tmp_path / "rules" / "tests").iterdir()) == [
        "error-budget-burn-fast.test.yml", "error-budget-burn-slow.test.yml",
        "error-budget-burn-ticket.test.yml", "providers-and-telemetry.test.yml"]


def test_dashboards_export_writes_grafana_json(tmp_path: Path) -> None:
    result = _paystab("dashboards", "export", str(tmp_path))
    assert result.returncode == 0, result.stderr
    models = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(models) == {"payments-overview.json", "provider-health.json",
                           "failover-chaos.json", "load-run.json"}
    assert all(m["schemaVersion"] == 39 for m in models.values())


@pytest.mark.parametrize("args, flag", [
    (["--slo", "1"], "--slo"),
    (["--slo", "0"], "--slo"),
    (["--slo", "99.99"], "--slo"),
    (["--slo", "nan"], "--slo"),
    (["--fast-burn-windows", "1h,5 minutes"], "--fast-burn-windows"),
    (["--ticket-windows", "3d"], "--ticket-windows"),
    (["--slow-burn-windows", "30m,6h"], "--slow-burn-windows"),
    (["--provider-window", "5"], "--provider-window"),
    (["--slo-period", "1month"], "--slo-period"),
])
def test_bad_slo_or_window_is_exit_2_naming_the_flag(tmp_path: Path, args: list[str],
                                                     flag: str) -> None:
    result = _paystab("rules", "export", str(tmp_path / "out"), *args)
    assert result.returncode == 2, result.stderr
    assert flag in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_unwritable_directory_is_exit_4(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for command in ("rules", "dashboards"):
        result = _paystab(command, "export", str(blocker / "out"))
        assert result.returncode == 4, result.stderr
        assert "cannot write" in result.stderr and "Traceback" not in result.stderr
