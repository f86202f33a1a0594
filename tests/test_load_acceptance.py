"""Issue 5 "Done when", against the real reference stack (``paystab up``).

Short versions run by default (10 s or less); the literal 30 s run, the spike with a
provider fault and the capacity stability check are ``slow``. Locust runs in subprocesses
(``python -m paystab load``), as users run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from paystab.loadtest.target import wait_quiet as target_wait_quiet
from paystab.stack.endpoints import StackEndpoints
from tests.conftest import RunningStack
from tests.conftest_load import REPO, run_paystab

_METRIC = re.compile(r'^paystab_payments_total\{method="(\w+)",outcome="(\w+)"\} ([0-9.e+]+)$')


def payments_seen(endpoints: StackEndpoints) -> Counter[tuple[str, str]]:
    """The gateway's own count of payments by (method, outcome), from /metrics."""
    url = endpoints.metrics_url or f"{endpoints.gateway_url}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    counts: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            counts[(match[1], match[2])] += round(float(match[3]))
    return counts


def wait_quiet(gateway_url: str, timeout_s: float = 60.0) -> None:
    assert target_wait_quiet(gateway_url, timeout_s), "the gateway did not become quiet"


def by_method_outcome(csv_path: Path) -> Counter[tuple[str, str]]:
    lines = csv_path.read_text().splitlines()[1:]
    return Counter((line.split(",")[1], line.split(",")[3]) for line in lines)


@pytest.mark.slow
def test_steady_200_rps_holds_its_threshold(reference_stack: StackEndpoints,
                                            tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = run_paystab("load", "--target", reference_stack.gateway_url, "--profile", "steady",
                       "--rps", "200", "--duration", "10", "--window", "5",
                       "--threshold", "failure_rate<0.005", "--json", str(out), "--no-live")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    s = data["summary"]
    assert s["requests"] + s["dropped"] == 2000
    assert s["failure_rate"] < 0.005 and s["rps"] == pytest.approx(200, rel=0.05)
    assert s["approved"] > 0 and s["declined"] > 0 and s["pending"] > 0
    assert len(data["windows"]) == 2 and all(w["requests"] > 900 for w in data["windows"])
    [threshold] = data["thresholds"]
    assert threshold["expr"] == "failure_rate<0.005" and threshold["ok"] is True


@pytest.mark.slow
def test_done_when_steady_200_for_30_s(reference_stack: StackEndpoints, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = run_paystab("load", "--target", reference_stack.gateway_url, "--profile", "steady",
                       "--rps", "200", "--duration", "30", "--threshold", "failure_rate<0.005",
                       "--json", str(out), "--no-live")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["summary"]["requests"] >= 5900 and len(data["windows"]) == 1
    assert {"summary", "windows", "thresholds", "generator"} <= set(data)


@pytest.mark.slow
def test_impossible_threshold_exits_1_and_names_it(reference_stack: StackEndpoints,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = run_paystab("load", "--target", reference_stack.gateway_url, "--rps", "50",
                       "--duration", "3", "--threshold", "p(99)<0.001", "--threshold",
                       "failure_rate<0.005", "--json", str(out), "--no-live")
    assert proc.returncode == 1
    assert "p(99)<0.001: BREACHED" in proc.stderr
    assert "failure_rate" not in proc.stderr.split("thresholds breached:")[1]
    data = json.loads(out.read_text())
    assert data["passed"] is False and data["summary"]["requests"] == 150


@pytest.mark.slow
def test_two_processes_add_up_to_what_the_gateway_saw(reference_stack: StackEndpoints,
                                                      tmp_path: Path) -> None:
    out, csv_path = tmp_path / "out.json", tmp_path / "out.csv"
    before = payments_seen(reference_stack)
    proc = run_paystab("load", "--target", reference_stack.gateway_url, "--rps", "100",
                       "--duration", "6", "--processes", "2", "--json", str(out), "--csv",
                       str(csv_path), "--no-live", "--seed", "9")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = payments_seen(reference_stack)
    gateway = after - before
    data = json.loads(out.read_text())
    s = data["summary"]
    assert data["processes"] == 2 and s["requests"] == 600 and s["dropped"] == 0
    assert sum(gateway.values()) == s["requests"]
    assert by_method_outcome(csv_path) == +gateway  # per method and outcome, exactly
    assert gateway[("card", "approved")] > 0


def wait_for_rate(endpoints: StackEndpoints, payments_per_s: float, timeout_s: float) -> None:
    """Until the gateway answers at least ``payments_per_s`` (its counters, over ~1 s)."""
    deadline = time.monotonic() + timeout_s
    before, at = sum(payments_seen(endpoints).values()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1.0)  # the measuring interval
        now_count, now = sum(payments_seen(endpoints).values()), time.monotonic()
        if (now_count - before) / (now - at) >= payments_per_s:
            return
        before, at = now_count, now
    raise AssertionError(f"the gateway never reached {payments_per_s}/s within {timeout_s} s")


def _fault(admin_url: str, provider: str, method: str, body: dict[str, object] | None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{admin_url}/admin/providers/{provider}/faults", data=data, method=method,
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


@pytest.mark.slow
def test_spike_windows_catch_a_fault_burst_the_run_hides(fresh_stack: RunningStack,
                                                         tmp_path: Path) -> None:
    endpoints = fresh_stack.endpoints
    admin = endpoints.provider_admin_url
    assert admin is not None
    konbini = [n for n, p in endpoints.providers.items() if "konbini" in p.methods]
    out = tmp_path / "spike.json"
    # 20/s baseline, ×10 within 4 s from t=8 s, hold 200/s until t=32 s, fall by t=36 s
    args = ["load", "--target", endpoints.gateway_url, "--profile", "spike", "--rps", "20",
            "--duration", "40", "--param", "start_s=8", "--param", "rise_s=4", "--param",
            "hold_s=20", "--param", "fall_s=4", "--window", "5", "--threshold",
            "failure_rate<0.08", "--json", str(out), "--no-live"]
    proc = subprocess.Popen([sys.executable, "-m", "paystab", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        # the burst goes in once the gateway sees the peak (the hold runs t = 12 … 32 s)
        wait_for_rate(endpoints, 150.0, timeout_s=45.0)
        for name in konbini:  # every konbini / bank-transfer provider answers 500
            _fault(admin, name, "POST", {"type": "error_burst", "ratio": 1.0,
                                         "error": "server_error"})
        time.sleep(10.0)  # the burst lasts 10 s: two of the 5 s windows
    finally:
        for name in konbini:
            _fault(admin, name, "DELETE", None)
    _, stderr = proc.communicate(timeout=120)
    data = json.loads(out.read_text())
    [t] = data["thresholds"]
    run_rate = data["summary"]["failure_rate"]
    worst = max(w["failure_rate"] or 0 for w in data["windows"])
    assert 0 < run_rate < 0.08, data["summary"]  # the whole run hides the burst…
    assert worst > 0.08 and t["ok_run"] is True  # …the windows do not
    assert proc.returncode == 1, stderr[-2000:]
    assert "failure_rate<0.08: BREACHED" in stderr and "window" in stderr
    breached = [b["window"] for b in t["breaches"]]
    assert all(2 <= w <= 6 for w in breached), breached  # t = 10 s … 35 s
