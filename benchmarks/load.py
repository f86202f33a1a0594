"""Load generator throughput per CPU-second: paystab vs stock Locust, with wrk as reference.

One run, one endpoint: a private nginx (``daemon off``, one worker, temp config, free
loopback port) answering ``POST /v1/payments`` with a fixed approved payment, and a shop-like
``POST /api/orders`` → ``POST /api/orders/{id}/pay`` pair — fast enough that the generators,
not the target, are measured. Every generator runs for ``--seconds`` with keep-alive
connections, in ``--rounds`` interleaved rounds (the order rotates each round; the machine
is shared, so each figure is the median over rounds):

* ``wrk`` (C, epoll) POSTing the same JSON body — the physical reference;
* stock Locust, ``FastHttpUser`` with no wait: the peer a user would otherwise pick, once
  doing the payment POST and once the two-step order → pay (JSON decode, id extracted);
* ``paystab load`` flat out (an arrival rate far above what it can serve): its own payment,
  a declarative two-step ``--flow``, and ``-f`` with the very locustfile stock Locust ran;
* ``paystab load --processes 2`` (throughput scaling).

"Per CPU-second" is real and the same for every tool: HTTP requests divided by the CPU
seconds of the waited-for process tree (``RUSAGE_CHILDREN`` deltas, start-up included).
Targets (issue 16): paystab's payment ≥ 4× stock Locust per CPU-second, the two-step flow
≥ 3× Locust doing the same two steps, a user's locustfile under paystab ≥ 1× the same file
under stock Locust; ``--processes 2`` ≥ 1.7× one process's throughput (issue 5).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
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
        location = /nginx_status {{ stub_status; }}
        location = /v1/payments {{ default_type application/json; return 200 '{answer}'; }}
        location = /api/orders {{ default_type application/json; return 201 '{{"order":{{"id":"ord_1"}}}}'; }}
        location ~ ^/api/orders/[^/]+/pay$ {{ default_type application/json; return 200 '{{"state":"succeeded"}}'; }}
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
    measured = _timed([wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s",
                       str(script), url], _port(url))
    if measured.proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {measured.proc.stderr[-2000:]}")
    out, wall, cpu = measured.proc.stdout, measured.wall_s, measured.cpu_s
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": requests, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "rps": round(requests / seconds, 1), "rps_per_core": round(requests / cpu, 1),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, **measured.steady()}


TWO_STEP_FLOW = """\
flow:
  name: bench-two-step
  steps:
    - name: order
      path: /api/orders
      json: {amount: "{{ amount }}", currency: "{{ currency }}", customer: "{{ customer }}"}
      extract: {order_id: $.order.id}
    - name: pay
      path: /api/orders/{{ order_id }}/pay
      headers: {Idempotency-Key: "{{ key }}"}
      json: {card: "{{ card }}"}
      classify:
        - {status: 200, path: $.state, equals: succeeded, outcome: approved}
"""
LOCUSTFILE = """\
from itertools import count

from locust import FastHttpUser, constant, task

BODY = {body!r}
KEYS = count()


class Payer(FastHttpUser):
    wait_time = constant(0)

    @task
    def pay(self):
        self.client.post("/v1/payments", data=BODY, headers={{
            "Content-Type": "application/json", "Idempotency-Key": f"lc-{{next(KEYS)}}"}})
"""
LOCUSTFILE_TWO_STEP = """\
from itertools import count

from locust import FastHttpUser, constant, task

KEYS = count()


class Shopper(FastHttpUser):
    wait_time = constant(0)

    @task
    def buy(self):
        order = self.client.post("/api/orders", json={{"amount": 1999, "currency": "JPY",
                                                      "customer": "c_1"}}).json()
        self.client.post(f"/api/orders/{{order['order']['id']}}/pay",
                         json={{"card": "4242424242424242"}},
                         headers={{"Idempotency-Key": f"lc-{{next(KEYS)}}"}})
"""


_TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.25


def _proc_cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _served(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET /nginx_status HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return int(data.split(b"\r\n\r\n", 1)[1].splitlines()[2].split()[2])


class Measured:
    """A generator process watched while it runs: nginx's request counter and its CPU."""

    def __init__(self, proc: subprocess.CompletedProcess[str], wall_s: float, cpu_s: float,
                 samples: list[tuple[float, int, float]]) -> None:
        self.proc, self.wall_s, self.cpu_s, self.samples = proc, wall_s, cpu_s, samples

    def steady(self) -> dict[str, float]:
        """Requests per CPU-second of the load phase: from 0.5 s after the first request
        to the last sample with traffic — start-up and shutdown excluded, the same way for
        every tool (the generator's own process; nginx counts the HTTP requests)."""
        busy = [i for i in range(1, len(self.samples))
                if self.samples[i][1] > self.samples[i - 1][1] + 2]
        if len(busy) < 4:
            return {"steady_requests": 0, "steady_cpu_s": 0.0, "steady_rps_per_core": 0.0}
        first, last = busy[0] + 2, busy[-1] - 1
        t0, r0, c0 = self.samples[first]
        t1, r1, c1 = self.samples[last]
        cpu = max(c1 - c0, 1e-9)
        return {"steady_requests": r1 - r0, "steady_cpu_s": round(cpu, 3),
                "steady_rps": round((r1 - r0) / max(t1 - t0, 1e-9), 1),
                "steady_rps_per_core": round((r1 - r0) / cpu, 1)}


def _timed(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Measured:
    cpu0, t0 = _children_cpu_s(), time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, cwd=REPO)
        samples: list[tuple[float, int, float]] = []
        while child.poll() is None:
            cpu = _proc_cpu_s(child.pid)
            if cpu is not None:
                samples.append((time.monotonic(), _served(port), cpu))
            time.sleep(SAMPLE_S)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(cmd, child.returncode, out.read(), err.read())
    return Measured(proc, time.monotonic() - t0, _children_cpu_s() - cpu0, samples)


def run_paystab(url: str, seconds: float, users: int, workdir: Path, *extra: str,
                steps: int = 1, processes: int = 1) -> dict[str, Any]:
    """``paystab load`` flat out; HTTP requests = checkouts × steps (none may fail)."""
    out = workdir / "paystab.json"
    out.unlink(missing_ok=True)
    measured = _timed(
        [sys.executable, "-m", "paystab", "load", "--target", url, "--rps", "1000000",
         "--duration", str(seconds), "--users", str(users), "--processes", str(processes),
         "--no-live", "--json", str(out), *extra], _port(url),
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    proc, wall, cpu = measured.proc, measured.wall_s, measured.cpu_s
    if proc.returncode not in (0, 1) or not out.exists():
        raise RuntimeError(f"paystab load failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(out.read_text())
    s, g = data["summary"], data["generator"]
    requests = int(s["requests"]) * steps
    return {"requests": requests, "checkouts": s["requests"], "failed": s["failed"],
            "rps": round(requests / seconds, 1), "cpu_s": round(cpu, 3),
            "rps_per_core": round(requests / cpu, 1), "wall_s": round(wall, 2),
            "load_phase_cpu_s": g["cpu_s"],
            # with workers the generator is a process tree /proc/PID does not add up
            **(measured.steady() if processes == 1 else {
                "steady_rps_per_core": round(requests / cpu, 1), "steady_of": "process tree"}),
            "load_phase_rps_per_core": round(requests / g["cpu_s"], 1) if g["cpu_s"] else 0.0}


def run_locust(url: str, seconds: float, users: int, workdir: Path, locustfile: Path) -> dict[str, Any]:
    """Stock ``locust --headless`` with no wait: requests and failures from its CSV."""
    prefix = workdir / "locust"
    measured = _timed(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users),
         "-r", str(users * 10), "-t", f"{int(seconds)}s", "--host", url, "--only-summary",
         "--csv", str(prefix), "--loglevel", "WARNING", "--exit-code-on-error", "0"],
        _port(url), env=dict(os.environ, PYTHONPATH=str(REPO)))
    proc, wall, cpu = measured.proc, measured.wall_s, measured.cpu_s
    stats = Path(f"{prefix}_stats.csv")
    if proc.returncode != 0 or not stats.exists():
        raise RuntimeError(f"locust failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with stats.open() as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    requests = int(total["Request Count"])
    return {"requests": requests, "failed": int(total["Failure Count"]),
            "rps": round(requests / seconds, 1), "cpu_s": round(cpu, 3),
            "rps_per_core": round(requests / cpu, 1), "wall_s": round(wall, 2),
            **measured.steady()}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


TARGETS = {"payment_vs_locust_per_core": 4.0, "two_step_flow_vs_locust_per_core": 3.0,
           "user_locustfile_vs_locust_per_core": 1.0, "two_vs_one_process_throughput": 1.7}


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks load")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--users", type=int, default=32, help="users per Locust/paystab run")
    args = parser.parse_args(argv)
    seconds, users = args.seconds, args.users
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="paystab-bench-load-") as tmp:
        workdir = Path(tmp)
        flow = workdir / "flow.yaml"
        flow.write_text(TWO_STEP_FLOW)
        payer = workdir / "locustfile_payment.py"
        payer.write_text(LOCUSTFILE.format(body=BODY))
        shopper = workdir / "locustfile_two_step.py"
        shopper.write_text(LOCUSTFILE_TWO_STEP.format())
        nginx, port = start_nginx(workdir)
        url = f"http://127.0.0.1:{port}"
        generators: list[tuple[str, Any]] = [
            ("wrk", lambda: run_wrk(f"{url}/v1/payments", seconds, args.connections, workdir)),
            ("locust_payment", lambda: run_locust(url, seconds, users, workdir, payer)),
            ("paystab_payment", lambda: run_paystab(url, seconds, users, workdir)),
            ("locust_two_step", lambda: run_locust(url, seconds, users, workdir, shopper)),
            ("paystab_two_step_flow", lambda: run_paystab(url, seconds, users, workdir,
                                                          "--flow", str(flow), steps=2)),
            ("paystab_user_locustfile", lambda: run_paystab(url, seconds, users, workdir,
                                                            "-f", str(payer))),
            ("paystab_payment_2_processes", lambda: run_paystab(url, seconds, users, workdir,
                                                                processes=2)),
        ]
        try:
            for round_index in range(args.rounds):
                shift = round_index % len(generators)
                for name, run in generators[shift:] + generators[:shift]:
                    result = run()
                    result["round"] = round_index
                    runs.setdefault(name, []).append(result)
                    print(f"round {round_index} {name:<28} {result['rps']:>9.0f} req/s "
                          f"{result['steady_rps_per_core']:>9.0f} req/CPU-s (load phase) "
                          f"{result['rps_per_core']:>9.0f} (whole process)", flush=True)
        finally:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait(timeout=5)
    per_core = {n: _median([r["steady_rps_per_core"] for r in rs]) for n, rs in runs.items()}
    whole = {n: _median([r["rps_per_core"] for r in rs]) for n, rs in runs.items()}
    rps = {n: _median([r["rps"] for r in rs]) for n, rs in runs.items()}

    def ratio(a: str, b: str, table: dict[str, float]) -> float:
        return round(table[a] / table[b], 3) if table.get(b) else 0.0

    def per_round(a: str, b: str) -> list[float]:
        return [round(x["steady_rps_per_core"] / y["steady_rps_per_core"], 3)
                for x, y in zip(runs[a], runs[b], strict=True) if y["steady_rps_per_core"]]

    ratios = {
        "payment_vs_locust_per_core": ratio("paystab_payment", "locust_payment", per_core),
        "two_step_flow_vs_locust_per_core": ratio("paystab_two_step_flow", "locust_two_step",
                                                  per_core),
        "user_locustfile_vs_locust_per_core": ratio("paystab_user_locustfile", "locust_payment",
                                                    per_core),
        "two_vs_one_process_throughput": ratio("paystab_payment_2_processes",
                                               "paystab_payment", rps),
        "payment_vs_wrk_per_core": ratio("paystab_payment", "wrk", per_core),
        "locust_vs_wrk_per_core": ratio("locust_payment", "wrk", per_core),
    }
    results = {
        "benchmark": "load", "cores": os.cpu_count(), "seconds": seconds, "rounds": args.rounds,
        "users": users, "endpoint": "nginx return 200/201 (1 worker), loopback",
        "median_rps_per_core": per_core, "median_rps": rps, "ratios": ratios,
        "median_rps_per_core_incl_startup": whole,
        "ratios_incl_startup": {
            "payment_vs_locust_per_core": ratio("paystab_payment", "locust_payment", whole),
            "two_step_flow_vs_locust_per_core": ratio("paystab_two_step_flow",
                                                      "locust_two_step", whole),
            "user_locustfile_vs_locust_per_core": ratio("paystab_user_locustfile",
                                                        "locust_payment", whole),
        },
        "ratios_per_round": {
            "payment_vs_locust_per_core": per_round("paystab_payment", "locust_payment"),
            "two_step_flow_vs_locust_per_core": per_round("paystab_two_step_flow",
                                                          "locust_two_step"),
            "user_locustfile_vs_locust_per_core": per_round("paystab_user_locustfile",
                                                            "locust_payment"),
        },
        "targets": TARGETS,
        "passed": {k: ratios[k] >= v for k, v in TARGETS.items()},
        "runs": runs,
    }
    print(f"{'generator':<28} {'req/s':>9} {'req/CPU-s':>10}  (load phase; medians of "
          f"{args.rounds} rounds)")
    for name in per_core:
        print(f"{name:<28} {rps[name]:>9.0f} {per_core[name]:>10.0f}")
    for key, target in TARGETS.items():
        print(f"{key}: ×{ratios[key]:.2f} (target ≥ {target:g})")
    print(f"payment_vs_wrk_per_core: ×{ratios['payment_vs_wrk_per_core']:.3f} (reference)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0
