"""``paystab watch`` performance: decision lag, memory, OTLP throughput, start-up (JSON out).

``python -m benchmarks watch [--json FILE] [--quick]``

* **decision lag** — 100 providers with an OTLP source holding a round of spans; one watch
  round (drain the receiver, quantiles, every detector, the controller, safety) timed from
  the poll to the decision, p50/p99 over rounds including faults, in wall-clock and CPU
  time. Target <= 50 ms, checked on CPU time (the wall clock is in the JSON with the load
  average: on two shared cores it mostly measures the run queue).
* **memory** — 1,000 providers x 4 series (attempts, failures, latency, oldest in-flight
  age) fed for 600 rounds (ten minutes at 1 s) in a fresh process: its peak RSS.
  Target <= 200 MB.
* **OTLP receiver** — a client posts protobuf batches of 512 client spans over keep-alive
  HTTP to a receiver in another process; spans per CPU-second of the receiver process.
  Target >= 20,000 spans/s per core.
* **start-up** — ``paystab watch --config`` from exec to its "started" log line, and
  whether PyOD was imported (it must not be unless a PyOD detector is configured).
  Target <= 1 s of CPU (the wall clock is reported too: on two cores shared with other
  work it mostly measures the run queue).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._support import compile_paystab

TARGETS = {"decision_p99_ms": 50.0, "memory_mb": 200.0, "otlp_spans_per_cpu_s": 20_000.0,
           "startup_s": 1.0}

_CONFIG = """\
interval_s: 1s
dry_run: true
sources: [{{kind: otlp, listen: '127.0.0.1:0', preset: otel_semconv}}]
providers:
{providers}
admin: {{listen: '127.0.0.1:0'}}
"""


def _config_text(n: int) -> str:
    providers = "\n".join(f"  - {{name: psp-{i:04d}, methods: [m{i % 10}]}}" for i in range(n))
    return _CONFIG.format(providers=providers)


def _spans_request(providers: list[str], per_provider: int, t_ns: int, fail: set[str]) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    spans = []
    for p in providers:
        for i in range(per_provider):
            attrs = [KeyValue(key="server.address", value=AnyValue(string_value=p)),
                     KeyValue(key="http.request.method", value=AnyValue(string_value="POST"))]
            if p in fail and i % 2 == 0:
                attrs.append(KeyValue(key="error.type", value=AnyValue(string_value="503")))
            spans.append(Span(name="POST", kind=Span.SPAN_KIND_CLIENT, attributes=attrs,
                              start_time_unix_nano=t_ns - 40_000_000 - i,
                              end_time_unix_nano=t_ns - i))
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[
        ScopeSpans(spans=spans)])])
    return bytes(request.SerializeToString())


def decision_lag(rounds: int) -> dict[str, Any]:
    from paystab.watch.config import config_from_text
    from paystab.watch.service import WatchService

    n = 100
    service = WatchService(config_from_text(_config_text(n)))
    receiver: Any = service.sources[0]
    providers = [f"psp-{i:04d}" for i in range(n)]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    healthy = ExportTraceServiceRequest.FromString(
        _spans_request(providers, 10, time.time_ns(), set()))
    faulty = ExportTraceServiceRequest.FromString(
        _spans_request(providers, 10, time.time_ns(), {"psp-0001", "psp-0002"}))
    lags = []
    cpu_lags = []
    now = time.time()
    for r in range(rounds):
        receiver.aggregator.add_spans(faulty if r >= rounds * 2 // 3 else healthy)
        receiver.aggregator.last_data_at = time.time()
        now += 1.0
        started, cpu0 = time.perf_counter(), time.thread_time()
        service.poll_once(now)
        lags.append((time.perf_counter() - started) * 1000.0)
        cpu_lags.append((time.thread_time() - cpu0) * 1000.0)
    decisions = service.controller.events
    lags.sort()
    cpu_lags.sort()
    return {"providers": n, "rounds": rounds, "spans_per_round": n * 10,
            "p50_cpu_ms": round(statistics.median(cpu_lags), 3),
            "p99_cpu_ms": round(cpu_lags[min(len(cpu_lags) - 1, int(0.99 * len(cpu_lags)))], 3),
            "p50_ms": round(statistics.median(lags), 3),
            "p99_ms": round(lags[min(len(lags) - 1, int(0.99 * len(lags)))], 3),
            "max_ms": round(lags[-1], 3), "decisions": len(decisions),
            "load_average_1m": os.getloadavg()[0]}


_MEMORY_CHILD = r"""
import json, resource, sys, time
from paystab.collector.series import Sample
from paystab.watch.config import config_from_text
from paystab.watch.service import WatchService
sys.path.insert(0, sys.argv[1])
from benchmarks.watch import _config_text
n, rounds = int(sys.argv[2]), int(sys.argv[3])
service = WatchService(config_from_text(_config_text(n)))
import random
rng = random.Random(1)
now = time.time()
for r in range(rounds):
    now += 1.0
    batch = [Sample(now, f"psp-{i:04d}", attempts=20, failures=int(rng.random() < 0.1),
                    p50_ms=40.0 + rng.random(), p95_ms=80.0 + rng.random(),
                    p99_ms=120.0 + rng.random(), inflight=2.0,
                    oldest_inflight_age_s=0.05 + 0.01 * rng.random(), interval_s=1.0)
             for i in range(n)]
    service.feed(batch)
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def memory(providers: int, rounds: int) -> dict[str, Any]:
    repo = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, repo, str(providers), str(rounds)],
                          capture_output=True, text=True, timeout=900, cwd=repo)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"providers": providers, "series_per_provider": 4, "rounds": rounds,
            "peak_rss_mb": round(result["peak_rss_mb"], 1)}


_RECEIVER_CHILD = r"""
import sys, time
from paystab.watch.config import config_from_text
from paystab.watch.sources.otlp import OtlpReceiver
config = config_from_text("sources: [{kind: otlp, listen: '127.0.0.1:0', stale_after_s: 1h}]")
receiver = OtlpReceiver(config.sources[0])
receiver.start()
print(receiver.url, flush=True)
for line in sys.stdin:
    print(receiver.aggregator.spans_total, flush=True)
"""


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def otlp_throughput(seconds: float) -> dict[str, Any]:
    child = subprocess.Popen([sys.executable, "-c", _RECEIVER_CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        url = child.stdout.readline().strip()
        host, port = url.removeprefix("http://").rsplit(":", 1)
        providers = [f"psp-{i:02d}.example" for i in range(20)]
        body = _spans_request(providers, 512 // 20 + 1, time.time_ns(), {"psp-03.example"})
        per_request = len(providers) * (512 // 20 + 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        cpu0 = _cpu_s(child.pid)
        started = time.perf_counter()
        sent = 0
        while time.perf_counter() - started < seconds:
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            sent += per_request
        wall = time.perf_counter() - started
        cpu = _cpu_s(child.pid) - cpu0
        child.stdin.write("count\n")
        child.stdin.flush()
        received = int(child.stdout.readline())
        conn.close()
    finally:
        child.kill()
        child.wait(5)
    return {"spans": received, "sent": sent, "wall_s": round(wall, 2),
            "receiver_cpu_s": round(cpu, 2), "spans_per_s": round(received / wall),
            "spans_per_cpu_s": round(received / cpu) if cpu > 0 else None,
            "spans_per_request": per_request}


def startup(repeats: int) -> dict[str, Any]:
    compile_paystab()
    times = []
    cpus = []
    pyod = None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            config = Path(tmp) / f"w{i}.yaml"
            log = Path(tmp) / f"w{i}.jsonl"
            config.write_text(_config_text(10) + f"decision_log: {log}\n")
            started = time.perf_counter()
            process = subprocess.Popen([sys.executable, "-m", "paystab", "watch", "--config",
                                        str(config), "--no-live", "--max-duration", "2s"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu = 0.0
            while time.perf_counter() - started < 30:
                if process.poll() is None:
                    cpu = _cpu_s(process.pid)
                if log.exists() and '"started"' in log.read_text():
                    break
                time.sleep(0.005)
            times.append(time.perf_counter() - started)
            cpus.append(cpu)
            process.terminate()
            process.wait(10)
        probe = subprocess.run([sys.executable, "-c",
                                "import sys\nfrom paystab.cli import cli\n"
                                "from paystab.watch.config import config_from_text\n"
                                "from paystab.watch.service import WatchService\n"
                                f"WatchService(config_from_text({_config_text(10)!r}))\n"
                                "print('pyod' in sys.modules)"],
                               capture_output=True, text=True, timeout=60)
        pyod = probe.stdout.strip() == "True"
    return {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
            "median_cpu_s": round(statistics.median(cpus), 3), "runs": repeats,
            "pyod_imported": pyod, "load_average_1m": os.getloadavg()[0]}


def run(quick: bool) -> dict[str, Any]:
    lag = decision_lag(90 if quick else 300)
    mem = memory(1000, 120 if quick else 600)
    otlp = otlp_throughput(3.0 if quick else 10.0)
    start = startup(3 if quick else 7)
    checks = {
        # CPU time per round: on two cores shared with other work the wall clock of a round
        # is mostly time spent waiting for a core (both are in the JSON, with the load)
        "decision_p99_ms": lag["p99_cpu_ms"] <= TARGETS["decision_p99_ms"],
        "memory_mb": mem["peak_rss_mb"] <= TARGETS["memory_mb"],
        "otlp_spans_per_cpu_s": (otlp["spans_per_cpu_s"] or 0) >= TARGETS["otlp_spans_per_cpu_s"],
        # CPU seconds: on two cores shared with other work the wall clock measures the queue
        "startup_s": start["median_cpu_s"] <= TARGETS["startup_s"] and not start["pyod_imported"],
    }
    return {"benchmark": "watch", "quick": quick, "decision_lag": lag, "memory": mem,
            "otlp": otlp, "startup": start, "targets": TARGETS, "checks": checks,
            "pass": all(checks.values())}


def render(result: dict[str, Any]) -> None:
    lag, mem, otlp, start = (result[k] for k in ("decision_lag", "memory", "otlp", "startup"))
    print(f"decision lag, {lag['providers']} providers: p50 {lag['p50_ms']} ms, p99 "
          f"{lag['p99_ms']} ms wall; p50 {lag['p50_cpu_ms']} ms, p99 {lag['p99_cpu_ms']} ms CPU "
          f"(target <= 50 ms; {lag['decisions']} decisions)")
    print(f"memory, {mem['providers']} providers x 4 series, {mem['rounds']} rounds: peak RSS "
          f"{mem['peak_rss_mb']} MB (target <= 200 MB)")
    print(f"OTLP receiver: {otlp['spans_per_cpu_s']} spans per CPU-second, {otlp['spans_per_s']} "
          f"spans/s wall (target >= 20,000 per core)")
    print(f"start-up: median {start['median_s']} s wall, {start['median_cpu_s']} s CPU, max "
          f"{start['max_s']} s, PyOD imported: {start['pyod_imported']} (target <= 1 s, no "
          f"PyOD; load average {start['load_average_1m']:.1f})")
    print("pass" if result["pass"] else f"FAIL: {result['checks']}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks watch")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args(argv)
    result = run(args.quick)
    render(result)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0 if result["pass"] else 1
