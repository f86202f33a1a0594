"""Harness mechanics end to end: real Locust runs (in subprocesses) against a real HTTP server.

The server is the small payment-API double of ``conftest_load`` (not the reference stack):
these tests pin pacing, dropped arrivals, retries with the same key, windows, outputs,
exit codes, worker aggregation and the stock-Locust entry point. The acceptance tests
against ``paystab up`` are in ``test_load_acceptance.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest_load import (
    REPO,
    FakeGateway,
    ServerThread,
    run_paystab,
    run_script,
    wait_for,
)

PANS = ("4242424242424242", "4000000000009995", "5555555555554444", "3530111333300000")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread(FakeGateway())
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def gateway(server: ServerThread) -> FakeGateway:
    g = server.gateway
    g.latency_s, g.fail_first, g.retry_after, g.outage = 0.0, 0, None, None
    g.workers, g.service_s, g._slots = 0, 0.0, None
    g.seen.clear()
    g.results.clear()
    g.attempts.clear()
    return g


def load(gateway: FakeGateway, *args: str) -> subprocess.CompletedProcess[str]:
    return run_paystab("load", "--target", gateway.url, "--no-live", *args)


@pytest.mark.slow
def test_open_model_rate_exact_counts_and_outputs(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.latency_s = 0.2  # slow answers must not lower the arrival rate
    out, csv_path, html = tmp_path / "o.json", tmp_path / "o.csv", tmp_path / "o.html"
    proc = load(gateway, "--rps", "50", "--duration", "3", "--window", "1", "--json", str(out),
                "--csv", str(csv_path), "--html", str(html), "--threshold", "failure_rate<0.01")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    s = data["summary"]
    assert s["requests"] == 150 == len(gateway.idempotency_keys()) == len(gateway.seen)
    assert s["dropped"] == 0 and s["failed"] == 0
    assert s["rps"] == pytest.approx(50)
    assert s["p50_ms"] >= 200
    assert s["approved"] + s["declined"] + s["pending"] == 150
    assert [w["requests"] for w in data["windows"]] == [50, 50, 50]
    assert data["schema"] == "paystab.load/v1" and data["passed"] is True
    assert data["thresholds"][0]["expr"] == "failure_rate<0.01"
    assert len(csv_path.read_text().splitlines()) == 151
    report = html.read_text()
    assert "POST /v1/payments [card]" in report
    for text in (csv_path.read_text(), report, out.read_text(), proc.stdout, proc.stderr):
        assert not any(pan in text for pan in PANS)


@pytest.mark.slow
def test_dropped_arrivals_are_counted_and_fail_their_threshold(gateway: FakeGateway,
                                                               tmp_path: Path) -> None:
    gateway.latency_s = 0.5
    out = tmp_path / "d.json"
    proc = load(gateway, "--rps", "40", "--duration", "3", "--users", "4", "--window", "1",
                "--json", str(out), "--threshold", "dropped_rate<0.01")
    assert proc.returncode == 1
    assert "dropped_rate<0.01: BREACHED" in proc.stderr and "window 0 [0s–1s)" in proc.stderr
    data = json.loads(out.read_text())
    s = data["summary"]
    assert s["requests"] + s["dropped"] == 120 == data["generator"]["issued"]
    assert s["requests"] == len(gateway.idempotency_keys())
    assert 16 <= s["requests"] <= 32  # 4 users × 2 checkouts/s × 3 s
    assert s["dropped_rate"] == pytest.approx(1 - s["requests"] / 120)


@pytest.mark.slow
def test_retries_use_the_same_key_and_honour_retry_after(gateway: FakeGateway,
                                                         tmp_path: Path) -> None:
    gateway.fail_first, gateway.retry_after = 2, "0.3"
    out = tmp_path / "r.json"
    proc = load(gateway, "--rps", "10", "--duration", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    s = json.loads(out.read_text())["summary"]
    assert s["requests"] == 20 and s["failed"] == 0
    assert s["attempts"] == 60 and s["retries"] == 40
    by_key: dict[str, list[float]] = defaultdict(list)
    for seen in gateway.seen:
        by_key[seen.key].append(seen.at)
    assert len(by_key) == 20 and all(len(v) == 3 for v in by_key.values())
    gaps = [b - a for v in by_key.values() for a, b in itertools.pairwise(v)]
    assert min(gaps) >= 0.29
    assert s["p50_ms"] >= 600


def test_exhausted_retries_are_failed_payments(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.fail_first = 10
    out, csv_path = tmp_path / "f.json", tmp_path / "f.csv"
    proc = load(gateway, "--rps", "10", "--duration", "1", "--json", str(out), "--csv",
                str(csv_path), "--threshold", "availability>=0.9999")
    assert proc.returncode == 1 and "availability>=0.9999: BREACHED" in proc.stderr
    s = json.loads(out.read_text())["summary"]
    assert s["failed"] == s["requests"] == 10 and s["attempts"] == 30
    assert ",failed,http_503,,", "3,2,503" in csv_path.read_text()


@pytest.mark.slow
def test_window_catches_a_burst_the_whole_run_hides(gateway: FakeGateway,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "w.json"
    # an outage of 1.5 s starting ~2.5 s after launch, inside a 6 s run
    start = time.time() + 2.5
    gateway.outage = (start, start + 1.5)
    proc = load(gateway, "--rps", "40", "--duration", "6", "--window", "1", "--json", str(out),
                "--threshold", "failure_rate<0.3")
    data = json.loads(out.read_text())
    [t] = data["thresholds"]
    assert t["ok_run"] is True, data["summary"]
    assert t["breaches"], data["windows"]
    assert proc.returncode == 1
    assert "failure_rate<0.3: BREACHED" in proc.stderr and "window" in proc.stderr
    assert data["summary"]["failed"] > 0


@pytest.mark.slow
def test_two_processes_add_up_to_what_the_server_saw(gateway: FakeGateway,
                                                     tmp_path: Path) -> None:
    gateway.latency_s = 0.01
    out = tmp_path / "p.json"
    proc = load(gateway, "--rps", "100", "--duration", "3", "--processes", "2", "--json",
                str(out), "--seed", "5")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    s = data["summary"]
    assert data["processes"] == 2
    assert s["requests"] == 300 == len(gateway.idempotency_keys())
    assert s["attempts"] == len(gateway.seen)
    streams = {k.rsplit("-", 2)[1] for k in gateway.idempotency_keys()}
    assert streams == {"0", "1"}
    assert data["generator"]["cpu_s"] > 0


@pytest.mark.slow
def test_same_seed_same_payment_mix(gateway: FakeGateway) -> None:
    def run(seed: str) -> dict[int, tuple[str, str, int]]:
        gateway.seen.clear()
        proc = load(gateway, "--rps", "50", "--duration", "1", "--seed", seed)
        assert proc.returncode == 0, proc.stderr
        return {int(s.key.rsplit("-", 1)[1]): (s.method, s.currency, s.amount)
                for s in gateway.seen}

    first, second, other = run("11"), run("11"), run("12")
    assert first == second and len(first) == 50
    assert first != other


def test_unreachable_target_exits_4_before_any_load() -> None:
    proc = run_paystab("load", "--target", "http://127.0.0.1:9", "--no-live", "--duration", "1")
    assert proc.returncode == 4
    assert "http://127.0.0.1:9" in proc.stderr and "refused" in proc.stderr.lower()
    proc = run_paystab("load", "capacity", "--target", "http://127.0.0.1:9", "--no-live")
    assert proc.returncode == 4


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--profile", "tsunami"], "black-friday, ramp, soak, spike, steady"),
        (["--threshold", "p(99)<<500"], "failure_rate"),
        (["--rps", "0"], "--rps"),
        (["--rps", "-3"], "--rps"),
        (["--duration", "0"], "--duration"),
        (["--window", "0"], "--window"),
        (["--processes", "0"], "--processes"),
        (["--param", "factor=x"], "KEY=NUMBER"),
        (["--profile", "spike", "--param", "speed=2"], "factor, fall_s"),
        (["--ready-file", "/nonexistent/ready.json"], "ready file not found"),
        (["--target", "ftp://x"], "http://"),
        (["--users", "1", "--processes", "2"], "--users"),
    ],
)
def test_bad_input_exits_2_listing_what_is_allowed(args: list[str], fragment: str) -> None:
    target = [] if any(a in ("--ready-file", "--target") for a in args) else [
        "--target", "http://127.0.0.1:9"]
    proc = run_paystab("load", *target, "--no-live", *args)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr


def test_capacity_bad_input() -> None:
    for args in (["--max-rps", "10", "--start-rps", "20"], ["--tolerance", "2"],
                 ["--threshold", "nope"], ["--max-time", "1"]):
        proc = run_paystab("load", "capacity", "--target", "http://127.0.0.1:9", *args)
        assert proc.returncode == 2, (args, proc.stderr)


def test_list_profiles() -> None:
    proc = run_paystab("load", "--list-profiles")
    assert proc.returncode == 0
    for name in ("steady", "ramp", "spike", "black-friday", "soak", "factor", "hold_share"):
        assert name in proc.stdout


@pytest.mark.slow
def test_stock_locust_runs_the_locustfile(gateway: FakeGateway, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    proc = subprocess.run(
        ["locust", "-f", str(REPO / "paystab/loadtest/locustfile.py"), "--headless",
         "--host", gateway.url, "--paystab-rps", "40", "--paystab-duration", "2",
         "--paystab-threshold", "p(99)<0.001", "--paystab-json", str(out), "--only-summary"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the impossible threshold
    data = json.loads(out.read_text())
    assert data["summary"]["requests"] == 80 == len(gateway.idempotency_keys())
    assert "p(99)<0.001: BREACHED" in proc.stderr


def test_programmatic_api_callbacks_and_stop_event(gateway: FakeGateway) -> None:
    gateway.latency_s = 0.01
    code = f"""
import threading
from paystab.loadtest.runner import run_load
seen = []
stop = threading.Event()
def on_record(r):
    seen.append(r)
    if len(seen) == 30:
        stop.set()
result = run_load({gateway.url!r}, "steady", 50, 20, seed=3, on_record=on_record,
                  stop_event=stop, thresholds=["failure_rate<0.01"], window_s=1)
assert result.interrupted, "stop_event must end the run"
assert len(seen) == len(result.records) == result.summary.requests >= 30
assert result.elapsed_s < 10
print("OK", result.summary.requests)
"""
    proc = run_script(code)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


@pytest.mark.slow
def test_capacity_finds_the_knee_of_a_limited_server(gateway: FakeGateway,
                                                     tmp_path: Path) -> None:
    gateway.workers, gateway.service_s = 4, 0.02  # serves at most 200 payments/s
    out = tmp_path / "cap.json"
    proc = run_paystab("load", "capacity", "--target", gateway.url, "--start-rps", "100",
                       "--max-rps", "400", "--step", "1", "--settle", "0.3", "--tolerance",
                       "0.15", "--max-time", "15", "--threshold", "p(99)<100",
                       "--expected-peak", "120", "--json", str(out), "--no-live")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert 140 <= data["capacity_rps"] <= 230, data["curve"]
    assert data["first_failing_rps"] is not None and data["headroom"] > 1
    assert data["elapsed_s"] < 15 + 10
    rates = [s["rate"] for s in data["curve"]]
    assert rates == sorted(rates) and len(rates) >= 3
    assert "capacity" in proc.stdout and "headroom" in proc.stdout
    proc = run_paystab("load", "capacity", "--target", gateway.url, "--start-rps", "100",
                       "--max-rps", "150", "--step", "1", "--settle", "0.3", "--max-time", "5",
                       "--expected-peak", "1000", "--no-live")
    assert proc.returncode == 1 and "below the expected peak" in proc.stderr


def test_timeouts_are_retried_then_failed(gateway: FakeGateway) -> None:
    gateway.latency_s = 0.5
    code = f"""
from paystab.loadtest.plan import RetryPolicy
from paystab.loadtest.runner import run_load
policy = RetryPolicy(max_attempts=2, attempt_timeout_s=0.2, backoff_s=0.05, deadline_s=5)
result = run_load({gateway.url!r}, "steady", 10, 1, retry=policy, window_s=1)
s = result.summary
assert s.requests == 10 and s.failed == 10 and s.attempts == 20, s
assert {{r.status for r in result.records}} == {{"timeout"}}
assert all(400 <= r.latency_ms < 1500 for r in result.records)
print("OK")
"""
    proc = run_script(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the server logs an attempt after its delay, i.e. after the client gave up on it
    wait_for(lambda: len(gateway.seen) == 20, 5.0, "the server to log every attempt")
    assert len(gateway.idempotency_keys()) == 10


def test_sigterm_drains_writes_outputs_and_exits_3(gateway: FakeGateway, tmp_path: Path) -> None:
    out = tmp_path / "int.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "paystab", "load", "--target", gateway.url, "--rps", "50",
         "--duration", "60", "--no-live", "--json", str(out)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(gateway.seen) >= 20, 30.0, "the load to start")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stderr[-2000:]
    assert "interrupted" in stderr
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and data["elapsed_s"] < 30
    assert data["summary"]["requests"] == len(gateway.idempotency_keys())
