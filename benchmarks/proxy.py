"""``python -m benchmarks proxy [--json FILE]``: what the fault proxy costs when idle.

Two measurements, each proxied vs direct side by side in one run, in alternating rounds
(so drift of a shared machine hits both sides alike), medians over rounds:

(a) payments/s through the reference gateway (``paystab up``) with every provider behind
    the proxy (no toxics) vs the same gateway talking to the providers directly. Both
    gateways run at once against the same provider simulators; a closed-loop client drives
    one at a time. Target: proxied >= 0.85x direct.
(b) raw pass-through against a fast upstream (an nginx of our own serving a small static
    body), measured with wrk: at 1 connection (the added latency of one request: target
    p50 <= 0.3 ms) and at 16 connections (throughput; the ratio is reported as it is).

The proxy runs as ``paystab chaos proxy`` in its own process. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_ADDED_P50_MS = 0.3
TARGET_PAYMENTS_RATIO = 0.85
NGINX = "/usr/sbin/nginx"
BODY_BYTES = 612  # the size of nginx's own welcome page
PAYMENT_MIX = [
    {"amount": 1999, "currency": "JPY", "method": "card", "country": "JP",
     "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}},
    {"amount": 1500, "currency": "JPY", "method": "wallet", "country": "JP",
     "wallet": {"brand": "paypay"}},
    {"amount": 2500, "currency": "JPY", "method": "konbini", "country": "JP"},
]


# -- processes and ports ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout_s:.0f} s")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _read_ready_json(path: Path, what: str, timeout_s: float = 90.0) -> Any:
    """Wait for a ready file and return its JSON (retrying while it is being written)."""
    found: list[Any] = []

    def readable() -> bool:
        try:
            found.append(json.loads(path.read_text()))
            return True
        except (OSError, ValueError):
            return False

    _wait(readable, what, timeout_s)
    return found[-1]


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGINT, then SIGTERM, then SIGKILL of the process group we started."""
    if proc is None or proc.poll() is not None:
        return
    for signum, wait_s in ((signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _http(method: str, url: str, body: object = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


class ProxyProcess:
    """``paystab chaos proxy`` in a process of its own."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = "from paystab.cli.proxy_cmd import proxy_command; proxy_command()"
        self.proc = _spawn([sys.executable, "-c", code, "--listen", f"127.0.0.1:{self.port}"],
                           workdir / "proxy.log")
        _wait(lambda: _port_open(self.port), "paystab chaos proxy")

    def add(self, name: str, upstream: str) -> str:
        proxy = _http("POST", self.url + "/proxies",
                      {"name": name, "listen": "127.0.0.1:0", "upstream": upstream})
        return str(proxy["listen"])

    def stop(self) -> None:
        _stop(self.proc)


# -- part (b): wrk against nginx, direct vs proxied ---------------------------------------------
_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_UNITS_B = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s, MB/s and the p50/p99 latency (ms) of a ``wrk --latency`` report."""
    def latency_ms(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m is None:
            raise ValueError(f"no {pct}% line in wrk output:\n{text}")
        return float(m.group(1)) * _UNITS_S[m.group(2)] * 1000.0

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", text)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if rps is None or transfer is None:
        raise ValueError(f"cannot read wrk output:\n{text}")
    return {"rps": float(rps.group(1)),
            "mb_s": float(transfer.group(1)) * _UNITS_B[transfer.group(2)] / 1e6,
            "p50_ms": latency_ms("50"), "p99_ms": latency_ms("99"),
            "non_2xx": float(errors.group(1)) if errors else 0.0}


def _start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    root = workdir / "nginx"
    (root / "www").mkdir(parents=True)
    (root / "www" / "index.html").write_bytes(b"x" * (BODY_BYTES - 1) + b"\n")
    for path in (workdir, root, root / "www"):  # the worker may run as nobody
        path.chmod(0o755)
    port = _free_port()
    temp = {name: root / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    conf = root / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {temp['body']};
  proxy_temp_path {temp['proxy']};
  fastcgi_temp_path {temp['fastcgi']};
  uwsgi_temp_path {temp['uwsgi']};
  scgi_temp_path {temp['scgi']};
  server {{
    listen 127.0.0.1:{port};
    location / {{ root {root}/www; index index.html; }}
  }}
}}
""")
    proc = _spawn([NGINX, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
                  workdir / "nginx.log")
    _wait(lambda: _port_open(port), "nginx")
    return proc, port


def _wrk(url: str, connections: int, duration_s: float) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency", url],
        capture_output=True, text=True, timeout=duration_s + 30, check=True,
    ).stdout
    return parse_wrk(out)


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def run_passthrough(workdir: Path, proxy: ProxyProcess, rounds: int,
                    duration_s: float) -> dict[str, Any]:
    nginx, port = _start_nginx(workdir)
    try:
        urls = {"direct": f"http://127.0.0.1:{port}/",
                "proxied": f"http://{proxy.add('nginx', f'127.0.0.1:{port}')}/"}
        for url in urls.values():  # warm up both paths
            _wrk(url, 4, 1)
        phases: dict[str, Any] = {}
        for phase, connections in (("latency", 1), ("throughput", 16)):
            runs: dict[str, list[dict[str, float]]] = {"direct": [], "proxied": []}
            for r in range(rounds):
                order = ["direct", "proxied"] if r % 2 == 0 else ["proxied", "direct"]
                for side in order:
                    runs[side].append(_wrk(urls[side], connections, duration_s))
            direct, proxied = _median_of(runs["direct"]), _median_of(runs["proxied"])
            phases[phase] = {
                "connections": connections, "direct": direct, "proxied": proxied,
                "added_p50_ms": proxied["p50_ms"] - direct["p50_ms"],
                "added_p99_ms": proxied["p99_ms"] - direct["p99_ms"],
                "ratio_rps": proxied["rps"] / direct["rps"],
                "ratio_mb_s": proxied["mb_s"] / direct["mb_s"],
                "rounds": runs,
            }
        version = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
        return {"upstream": version, "body_bytes": BODY_BYTES, "round_s": duration_s, **phases}
    finally:
        _stop(nginx)


# -- part (a): payments/s through the reference gateway, providers proxied vs direct -------------
def run_payments(workdir: Path, proxy: ProxyProcess, rounds: int, duration_s: float,
                 concurrency: int) -> dict[str, Any]:
    """HOOK for part (a). Starts ``paystab up``, puts a second gateway in front of the same
    provider simulators through one proxy per provider, and drives each gateway in turn."""
    stack_dir = workdir / "stack"
    ready = stack_dir / "ready.json"
    stack_dir.mkdir()
    up = _spawn([sys.executable, "-m", "paystab", "up", "--port", "0", "--seed", "1",
                 "--ready-file", str(ready), "--data-dir", str(stack_dir / "data")],
                workdir / "up.log")
    gateway: subprocess.Popen[bytes] | None = None
    try:
        stack = _read_ready_json(ready, "paystab up")
        proxied_providers = {}
        for name, provider in stack["providers"].items():
            upstream = provider["url"].removeprefix("http://").rstrip("/")
            listen = proxy.add(f"provider-{name}", upstream)
            proxied_providers[name] = {**provider, "url": f"http://{listen}"}
        providers_file = workdir / "providers-proxied.json"
        providers_file.write_text(json.dumps({"providers": proxied_providers}))
        gw_ready = workdir / "gateway-proxied.json"
        gateway = _spawn([sys.executable, "-m", "paystab", "gateway", "--port", "0",
                          "--seed", "1", "--providers-file", str(providers_file),
                          "--ledger", str(workdir / "gateway-proxied.db"),
                          "--ready-file", str(gw_ready)], workdir / "gateway-proxied.log")
        gw_info = _read_ready_json(gw_ready, "the proxied gateway")
        urls = {"direct": stack["gateway_url"], "proxied": f"http://127.0.0.1:{gw_info['port']}"}
        for url in urls.values():
            asyncio.run(drive_payments(url, concurrency, 1.0))  # warm-up
        runs: dict[str, list[dict[str, float]]] = {"direct": [], "proxied": []}
        for r in range(rounds):
            for side in (["direct", "proxied"] if r % 2 == 0 else ["proxied", "direct"]):
                runs[side].append(asyncio.run(drive_payments(urls[side], concurrency, duration_s)))
        direct, proxied = _median_of(runs["direct"]), _median_of(runs["proxied"])
        return {"concurrency": concurrency, "round_s": duration_s, "providers":
                len(proxied_providers), "direct": direct, "proxied": proxied,
                "ratio": proxied["payments_per_s"] / direct["payments_per_s"],
                "added_p50_ms": proxied["p50_ms"] - direct["p50_ms"], "rounds": runs}
    finally:
        _stop(gateway)
        _stop(up)


async def drive_payments(url: str, concurrency: int, duration_s: float) -> dict[str, float]:
    """Closed loop: ``concurrency`` clients post payments back to back for ``duration_s``."""
    import aiohttp

    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    failed = 0
    deadline = loop.time() + duration_s
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def client(index: int) -> None:
            nonlocal failed
            n = index
            while loop.time() < deadline:
                body = PAYMENT_MIX[n % len(PAYMENT_MIX)]
                n += 1
                started = loop.time()
                async with http.post(url + "/v1/payments", json=body,
                                     headers={"Idempotency-Key": uuid.uuid4().hex}) as resp:
                    await resp.read()
                    if resp.status == 200:
                        latencies.append(loop.time() - started)
                    else:
                        failed += 1

        began = loop.time()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = loop.time() - began
    latencies.sort()
    count = len(latencies)
    return {"payments_per_s": count / elapsed, "failed": float(failed),
            "p50_ms": latencies[count // 2] * 1000 if count else 0.0,
            "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else 0.0}


# -- main ------------------------------------------------------------------------------------------
def _check(value: float | None, target: float, higher_is_better: bool) -> dict[str, Any]:
    ok = value is not None and (value >= target if higher_is_better else value <= target)
    return {"value": value, "target": target, "ok": ok}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks proxy", description=__doc__)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--payments-duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32, help="payment clients")
    parser.add_argument("--skip-payments", action="store_true", help="part (b) only")
    args = parser.parse_args(argv)
    missing = [tool for tool in ("wrk", NGINX) if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install wrk nginx-light)", file=sys.stderr)
        return 4
    workdir = Path(tempfile.mkdtemp(prefix="paystab-bench-proxy-"))
    proxy = ProxyProcess(workdir)
    try:
        passthrough = run_passthrough(workdir, proxy, args.rounds, args.duration)
        payments: dict[str, Any] = {"skipped": "--skip-payments"}
        if not args.skip_payments:
            payments = run_payments(workdir, proxy, args.rounds, args.payments_duration,
                                    args.concurrency)
    except BaseException:
        print(f"benchmark failed; logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        proxy.stop()
    checks = {
        "passthrough_added_p50_ms": _check(passthrough["latency"]["added_p50_ms"],
                                           TARGET_ADDED_P50_MS, higher_is_better=False),
        "payments_ratio": _check(payments.get("ratio"), TARGET_PAYMENTS_RATIO,
                                 higher_is_better=True),
    }
    result = {"benchmark": "proxy", "cpus": os.cpu_count(), "python": sys.version.split()[0],
              "passthrough": passthrough, "payments": payments, "checks": checks,
              "pass": all(c["ok"] for c in checks.values())}
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result["pass"] else 1


def _print(result: dict[str, Any]) -> None:
    pt = result["passthrough"]
    print(f"(b) pass-through, {pt['upstream']}, {pt['body_bytes']} B body, wrk, medians")
    for phase in ("latency", "throughput"):
        p = pt[phase]
        for side in ("direct", "proxied"):
            s = p[side]
            print(f"  c={p['connections']:<3} {side:8} {s['rps']:10.0f} req/s {s['mb_s']:8.2f} MB/s"
                  f"  p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms")
        print(f"  c={p['connections']:<3} added p50 {p['added_p50_ms']:+.3f} ms, "
              f"p99 {p['added_p99_ms']:+.3f} ms, throughput ratio {p['ratio_rps']:.2f}")
    pay = result["payments"]
    if "ratio" in pay:
        print(f"(a) payments/s, {pay['providers']} providers, {pay['concurrency']} clients: "
              f"direct {pay['direct']['payments_per_s']:.0f}, proxied "
              f"{pay['proxied']['payments_per_s']:.0f}, ratio {pay['ratio']:.3f}")
    else:
        print(f"(a) payments: skipped ({pay.get('skipped')})")
    for name, check in result["checks"].items():
        value = "n/a" if check["value"] is None else f"{check['value']:.3f}"
        print(f"  {name}: {value} (target {check['target']}) {'ok' if check['ok'] else 'FAIL'}")
