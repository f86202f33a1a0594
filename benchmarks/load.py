"""Load generator throughput: paystab's harness vs ``wrk``, per CPU core, and 2 processes vs 1.

One run, one endpoint: a private nginx (``daemon off``, one worker, temp config, free
loopback port) answering ``POST /v1/payments`` with a fixed approved payment — fast enough
that the generators, not the target, are measured. Each generator runs for ``--seconds``
against it with keep-alive connections:

* ``wrk`` (C, epoll; Debian's /usr/bin/wrk) with a Lua script POSTing the same JSON body
  with an Idempotency-Key header;
* ``paystab load --processes 1`` and ``--processes 2`` at an arrival rate far above what
  they can serve (so they run flat out; the excess arrivals are counted as dropped).

"Per core" is real: requests divided by the CPU seconds the generator consumed —
``RUSAGE_CHILDREN`` deltas of the waited-for generator process tree (wrk; paystab's master
and its workers), cross-checked with the harness's own CPU accounting of its load phase
(which excludes interpreter start-up). Targets (ARCHITECTURE/issue 5): harness ≥ 0.5× wrk
per core; ``--processes 2`` ≥ 1.7× the single-process throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BODY = ('{"amount":1999,"currency":"JPY","method":"card","country":"JP",'
        '"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}')
ANSWER = ('{"id":"pay_bench","status":"approved","code":"approved","provider":"bench",'
          '"attempts":1,"amount":1999,"currency":"JPY"}')
NGINX_CONF = """
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{ return 200 'ok'; }}
        location = /v1/payments {{ default_type application/json; return 200 '{answer}'; }}
    }}
}}
"""
WRK_LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "wrk-" .. counter
  return wrk.format(nil, "/v1/payments")
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    port = _free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port, answer=ANSWER))
    proc = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port)
    return proc, port


def run_wrk(url: str, seconds: float, connections: int, workdir: Path) -> dict[str, Any]:
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    script = workdir / "post.lua"
    script.write_text(WRK_LUA.format(body=BODY))
    cpu0, t0 = _children_cpu_s(), time.monotonic()
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s",
                          str(script), url], capture_output=True, text=True, check=True).stdout
    wall, cpu = time.monotonic() - t0, _children_cpu_s() - cpu0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": requests, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "rps": round(requests / seconds, 1), "rps_per_core": round(requests / cpu, 1),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def run_harness(url: str, seconds: float, processes: int, users: int,
                workdir: Path) -> dict[str, Any]:
    out = workdir / f"harness{processes}.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cpu0, t0 = _children_cpu_s(), time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "paystab", "load", "--target", url, "--rps", "1000000",
         "--duration", str(seconds), "--users", str(users), "--processes", str(processes),
         "--no-live", "--json", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO)
    wall, cpu = time.monotonic() - t0, _children_cpu_s() - cpu0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"paystab load failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(out.read_text())
    s, g = data["summary"], data["generator"]
    return {"processes": processes, "users": users, "requests": s["requests"],
            "failed": s["failed"], "rps": round(s["rps"], 1), "p50_ms": s["p50_ms"],
            "load_phase_cpu_s": g["cpu_s"], "rps_per_core": g["requests_per_cpu_s"],
            "process_tree_cpu_s": round(cpu, 3),
            "rps_per_core_incl_startup": round(s["requests"] / cpu, 1), "wall_s": round(wall, 2)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks load")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--users", type=int, default=32, help="harness users per run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="paystab-bench-load-") as tmp:
        workdir = Path(tmp)
        nginx, port = start_nginx(workdir)
        url = f"http://127.0.0.1:{port}"
        try:
            wrk = run_wrk(f"{url}/v1/payments", args.seconds, args.connections, workdir)
            one = run_harness(url, args.seconds, 1, args.users, workdir)
            two = run_harness(url, args.seconds, 2, args.users, workdir)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait(timeout=5)
    per_core_ratio = one["rps_per_core"] / wrk["rps_per_core"]
    scaling = two["rps"] / one["rps"] if one["rps"] else 0.0
    results = {
        "benchmark": "load", "cores": os.cpu_count(), "seconds": args.seconds,
        "endpoint": "nginx return 200 (1 worker), loopback", "wrk": wrk,
        "harness_1_process": one, "harness_2_processes": two,
        "ratios": {
            "harness_vs_wrk_per_core": round(per_core_ratio, 4),
            "two_vs_one_process_throughput": round(scaling, 3),
            "two_vs_one_process_per_core": round(two["rps_per_core"] / one["rps_per_core"], 3),
        },
        "targets": {"harness_vs_wrk_per_core": 0.5, "two_vs_one_process_throughput": 1.7},
    }
    results["passed"] = {
        "harness_vs_wrk_per_core": per_core_ratio >= 0.5,
        "two_vs_one_process_throughput": scaling >= 1.7,
    }
    print(f"wrk:            {wrk['rps']:>10.0f} req/s  {wrk['rps_per_core']:>10.0f} req/CPU-s")
    print(f"paystab 1 proc: {one['rps']:>10.0f} req/s  {one['rps_per_core']:>10.0f} req/CPU-s")
    print(f"paystab 2 proc: {two['rps']:>10.0f} req/s  {two['rps_per_core']:>10.0f} req/CPU-s")
    print(f"harness/wrk per core: {per_core_ratio:.3f} (target ≥ 0.5)")
    print(f"2 vs 1 process throughput: ×{scaling:.2f} (target ≥ 1.7)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0
