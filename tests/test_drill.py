"""``paystab drill`` end to end against the reference stack (shortened durations)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from paystab.chaos.bundled import bundled_runbooks
from paystab.report.schema import schema_problems

BUNDLED = sorted(bundled_runbooks())


def drill(tmp_path: Path, *args: str, timeout_s: float = 240) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "out"
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, "-m", "paystab", "drill", "--no-live", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout_s, env=env)
    return done, out


def report_of(out: Path) -> dict[str, object]:
    data = json.loads((out / "report.json").read_text())
    assert schema_problems(data) == []
    return data


def test_all_eight_runbooks_are_bundled() -> None:
    assert set(BUNDLED) >= {"provider-timeout", "provider-partition", "provider-error-burst",
                            "response-lost-after-charge", "region-outage", "flash-sale", "gateway-crash",
                            "cascading-slowdown"}


@pytest.mark.slow
def test_the_default_drill_passes_with_its_targets(tmp_path: Path) -> None:
    done, out = drill(tmp_path, "--duration", "20", "--junit", str(tmp_path / "junit.xml"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = report_of(out)
    assert report["runbook"] == "provider-timeout" and report["verdict"] == "pass"
    traffic = report["traffic"]
    assert isinstance(traffic, dict) and traffic["availability"] >= 0.9999 and traffic["requests"] >= 1500
    assert report["mttr_s"] is not None and float(report["mttr_s"]) <= 5  # type: ignore[arg-type]
    assert report["reconciliation"] == {**report["reconciliation"], "double_charges": 0,  # type: ignore[dict-item]
                                        "lost_payments": 0, "orphans": 0}
    assert any(f["action"] == "drain" for f in report["failovers"])  # type: ignore[union-attr, index]
    html = (out / "report.html").read_text()
    assert "<svg" in html and "http://" not in html.split("<body", 1)[1].split("reference stack", 1)[0]
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert int(suite.get("failures", suite.find("testsuite").get("failures"))) == 0  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in BUNDLED if n != "provider-timeout"])
def test_every_bundled_runbook_passes_against_the_reference_stack(tmp_path: Path, name: str) -> None:
    if name == "provider-partition":
        import shutil

        from tests.conftest import require

        require("iptables", shutil.which("iptables") is not None and os.geteuid() == 0,
                "apt-get install iptables; run as root")
    from paystab.chaos.bundled import find_runbook
    from paystab.chaos.runbook import load_runbook

    shortest = max(20.0, load_runbook(find_runbook(name)).load.min_duration_s)
    done, out = drill(tmp_path, name, "--duration", f"{shortest:g}")
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    failed = [h for h in report.get("hypotheses", []) if not h["ok"]]
    assert done.returncode == 0, (failed, done.stdout[-2500:], done.stderr[-2500:])
    assert report["verdict"] == "pass"


@pytest.mark.slow
def test_hypotheses_that_cannot_hold_exit_1_and_show_in_junit(tmp_path: Path) -> None:
    runbook = tmp_path / "impossible.yaml"
    runbook.write_text("""
name: impossible
description: latency that no network gives
seed: 3
target:
  reference: {}
load:
  profile: steady
  rate: 40/s
  duration: 6s
hypotheses:
  - p99_ms <= 0.001
  - double_charges == 0
""")
    done, out = drill(tmp_path, str(runbook), "--junit", str(tmp_path / "junit.xml"))
    assert done.returncode == 1, done.stderr[-2000:]
    report = report_of(out)
    assert report["verdict"] == "fail"
    by_expr = {h["expr"]: h for h in report["hypotheses"]}  # type: ignore[union-attr]
    assert by_expr["p99_ms <= 0.001"]["ok"] is False and by_expr["p99_ms <= 0.001"]["observed"] > 0.001
    assert by_expr["double_charges == 0"]["ok"] is True
    assert "p99_ms <= 0.001" in done.stdout
    xml = (tmp_path / "junit.xml").read_text()
    root = ET.fromstring(xml)
    failures = [tc for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert any("p99_ms" in (tc.get("name") or "") for tc in failures)


@pytest.mark.slow
def test_sigint_mid_drill_exits_3_with_a_partial_report_and_no_fault_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state = tmp_path / "state"
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(state))
    proc = subprocess.Popen([sys.executable, "-m", "paystab", "drill", "--no-live", "--out", str(out),
                             "--duration", "40"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    journal_seen = False
    while time.monotonic() < deadline:  # wait until the fault is in (t=10 s of 40)
        status = subprocess.run([sys.executable, "-m", "paystab", "chaos", "status", "--json"],
                                capture_output=True, text=True, env=env, timeout=30)
        if status.returncode == 0 and json.loads(status.stdout)["faults"]:
            journal_seen = True
            break
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    assert journal_seen, "the fault never showed up in `paystab chaos status`"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stdout[-2000:] + stderr[-2000:]
    report = report_of(out)
    assert report["verdict"] == "aborted"
    status = subprocess.run([sys.executable, "-m", "paystab", "chaos", "status", "--json"],
                            capture_output=True, text=True, env=env, timeout=30)
    assert json.loads(status.stdout)["faults"] == []


def test_a_bad_runbook_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    runbook = tmp_path / "bad.yaml"
    runbook.write_text("name: bad\nseed: 1\ntarget:\n  reference: {}\nload:\n  profile: steady\n"
                       "  rate: 10/s\n  duration: 5s\nfaults:\n  - at: 1s\n    kind: provider.nope\n"
                       "    target: card-alpha\n")
    done, out = drill(tmp_path, str(runbook))
    assert done.returncode == 2
    assert f"{runbook}:11" in done.stderr and "faults[0].kind" in done.stderr
    assert not (out / "report.json").exists()


@pytest.mark.slow
def test_a_taken_port_exits_4(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        runbook = tmp_path / "port.yaml"
        runbook.write_text(f"name: port\ndescription: a taken port\nseed: 1\ntarget:\n"
                           f"  reference: {{port: {port}}}\nload:\n"
                           "  profile: steady\n  rate: 10/s\n  duration: 3s\n")
        done, _ = drill(tmp_path, str(runbook))
    assert done.returncode == 4, done.stderr[-2000:]
    assert str(port) in done.stderr
