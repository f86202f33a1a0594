"""The generators ``python -m benchmarks load`` compares, and how each is measured.

A private nginx on a free loopback port; wrk, stock Locust and ``paystab load`` run as child
processes against it. While a generator runs, nginx's request counter (``stub_status``) and
the generator's CPU time (``/proc/PID/stat``) are sampled every ``SAMPLE_S``:
:meth:`Measured.steady` divides requests by CPU seconds over the load phase, the same way for
every tool. :func:`run_startup` times a fresh process from spawn to its first request.
"""

from __future__ import annotations

import csv
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


def stop_nginx(proc: subprocess.Popen[bytes]) -> None:
    """Graceful stop (SIGQUIT), killed if it lingers."""
    proc.send_signal(signal.SIGQUIT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_wrk(url: str, seconds: float, connections: int, workdir: Path) -> dict[str, Any]:
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    script = workdir / "post.lua"
    script.write_text(WRK_LUA.format(body=BODY))
    measured = _timed([wrk, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s",
                       str(script), url], port_of(url))
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
STARTUP_TIMEOUT_S = 60.0
STARTUP_POLL_S = 0.01


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
         "--no-live", "--json", str(out), *extra], port_of(url),
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
        port_of(url), env=dict(os.environ, PYTHONPATH=str(REPO)))
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


def run_startup(cmd: list[str], port: int, preflight_requests: int = 0,
                env: dict[str, str] | None = None, cwd: Path = REPO) -> dict[str, Any]:
    """A fresh process (cold: a new interpreter, nothing imported) from spawn to its first
    load request at nginx: wall seconds and the process's CPU seconds by then. Requests a
    tool makes before its load (``paystab load`` first GETs /healthz: exit 4, not a run, if
    the target is down) are ``preflight_requests``, not counted as the first. The process is
    stopped (SIGTERM) once its first load request is seen. ``env`` replaces the
    default environment (this one, with the checkout on ``PYTHONPATH``); ``python -m``
    looks in ``cwd`` first."""
    before = _served(port)  # every look at stub_status is a request too: counted out below
    polls = 0
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env or dict(os.environ, PYTHONPATH=str(REPO)), cwd=cwd)
    first_s = cpu_s = None
    cpu = 0.0
    deadline = t0 + STARTUP_TIMEOUT_S
    try:
        while time.monotonic() < deadline and child.poll() is None:
            cpu = _proc_cpu_s(child.pid) or cpu
            polls += 1
            if _served(port) > before + polls + preflight_requests:
                first_s, cpu_s = time.monotonic() - t0, _proc_cpu_s(child.pid) or cpu
                break
            time.sleep(STARTUP_POLL_S)
    finally:
        if child.poll() is None:
            child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)
    if first_s is None or cpu_s is None:
        raise RuntimeError(f"no request from {cmd[:4]} within {STARTUP_TIMEOUT_S:g} s")
    return {"first_request_s": round(first_s, 3), "cpu_to_first_request_s": round(cpu_s, 3)}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


PAIRED_WARMUP_S = 3.0


def run_paired(locust_url: str, other_url: str, seconds: float, users: int,
               locustfile: Path, *, control: bool = False, swap: bool = False) -> dict[str, Any]:
    """Stock Locust and ``paystab load -f`` with the same locustfile **at once**, each
    against its own nginx: both meet the same host in the same seconds, so the ratio of
    their requests per CPU-second is not moved by what the rest of the machine does
    between two runs (run one after the other, per-round ratios of this very comparison
    spread 0.57-1.27x). Counted from ``PAIRED_WARMUP_S`` after the start (both loading)
    for ``seconds - 1``: each nginx's counter and each process's CPU, sampled at the same
    two instants.

    ``control``: the other generator is stock Locust too — the instrument's own error
    (Locust against itself should read 1). ``swap``: the other generator is started first
    and the two nginx endpoints trade places, so alternating rounds cancel any advantage of
    either slot."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    total = f"{int(seconds + PAIRED_WARMUP_S + 1)}"
    if swap:
        locust_url, other_url = other_url, locust_url

    def locust_cmd(url: str) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u",
                str(users), "-r", str(users * 10), "-t", f"{total}s", "--host", url,
                "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]

    other_cmd = locust_cmd(other_url) if control else [
        sys.executable, "-m", "paystab", "load", "--target", other_url, "--rps", "1000000",
        "--duration", total, "--users", str(users), "--no-live", "-f", str(locustfile)]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for name, cmd in (("other", other_cmd), ("locust", locust_cmd(locust_url))) if swap \
            else (("locust", locust_cmd(locust_url)), ("other", other_cmd)):
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       env=env, cwd=REPO)
    pairs = ((port_of(locust_url), procs["locust"]), (port_of(other_url), procs["other"]))
    try:
        time.sleep(PAIRED_WARMUP_S)
        before = [(_served(port), _proc_cpu_s(proc.pid)) for port, proc in pairs]
        time.sleep(seconds - 1)
        after = [(_served(port), _proc_cpu_s(proc.pid)) for port, proc in pairs]
    finally:
        for proc in procs.values():
            try:
                proc.wait(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    per_core = []
    for (r0, c0), (r1, c1) in zip(before, after, strict=True):
        if c0 is None or c1 is None or c1 <= c0 or r1 <= r0:
            raise RuntimeError("a paired generator did not load the whole window")
        per_core.append(round((r1 - r0) / (c1 - c0), 1))
    other = "locust_again_rps_per_core" if control else "paystab_user_locustfile_rps_per_core"
    return {"locust_rps_per_core": per_core[0], other: per_core[1],
            "ratio": round(per_core[1] / per_core[0], 3), "started_first": (
                "locust" if not swap else "locust_again" if control else "paystab")}
