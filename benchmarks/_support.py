"""Shared plumbing for benchmarks: child processes, ready files, wrk runs and parsing."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

PAYMENT_BODY = json.dumps({"amount": 1999, "currency": "USD", "method": "card", "country": "US",
                           "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030,
                                    "cvc": "123"}})


def wrk_payment_script(directory: Path, prefix: str) -> Path:
    """A wrk Lua script posting payments, each with its own Idempotency-Key."""
    script = directory / f"{prefix}.lua"
    body = PAYMENT_BODY.replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(f'''
local counter = 0
local body = "{body}"
request = function()
  counter = counter + 1
  return wrk.format("POST", "/v1/payments",
    {{["Content-Type"] = "application/json", ["Idempotency-Key"] = "{prefix}-" .. counter}}, body)
end
''')
    return script


@dataclass
class WrkResult:
    requests_per_s: float
    transfer_mb_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency_ms(text: str, pct: str) -> float | None:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def run_wrk(url: str, seconds: float, connections: int, threads: int = 1,
            script: Path | None = None) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency"]
    if script:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    mb = 0.0
    if transfer:
        factor = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}.get(transfer.group(2), 1.0)
        mb = float(transfer.group(1)) * factor
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(float(rps.group(1)) if rps else 0.0, mb, _latency_ms(out, "50"), _latency_ms(out, "99"),
                     int(non_2xx.group(1)) if non_2xx else 0,
                     sum(int(x) for x in errors.groups()) if errors else 0)


class Child:
    """A child process that writes a JSON ready file; stopped with SIGTERM."""

    def __init__(self, args: list[str], ready: Path, log: Path, timeout_s: float = 60) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready.exists():
                try:
                    self.info: dict[str, Any] = json.loads(ready.read_text())
                    return
                except ValueError:
                    pass
            if self.proc.poll() is not None:
                raise SystemExit(f"{args[:4]} exited early; see {log}")
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"{args[:4]} not ready in {timeout_s}s; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def compile_paystab() -> None:
    """paystab's bytecode, as ``scripts/setup.sh`` and an install from a wheel leave it
    (the other tools' comes with their install): a fresh process is then timed as users
    start it, also where ``PYTHONDONTWRITEBYTECODE`` keeps Python from caching it."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "paystab")],
                   check=True, stdout=subprocess.DEVNULL)


def paystab(*args: str) -> list[str]:
    return [sys.executable, "-m", "paystab", *args]


def workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"paystab-bench-{name}-"))


def write_json(path: str | None, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    print(text)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
