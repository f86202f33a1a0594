"""``python -m benchmarks gateway``: what the gateway's work and its telemetry cost.

Three servers in front of the same simulated provider, measured with wrk in interleaved
rounds so drift on a noisy machine hits all of them alike:

* ``gateway_on``: the reference gateway with telemetry (metrics; spans for errors and a
  10 % sample of successes, exported as JSON lines);
* ``gateway_off``: the same with ``--no-telemetry``;
* ``passthrough``: a minimal aiohttp hop (``benchmarks/_passthrough.py``).

Targets: telemetry on ≥ 0.9× off; full gateway ≥ 0.8× pass-through (medians of rounds).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._support import Child, paystab, run_wrk, workdir, write_json, wrk_payment_script

PROVIDER = "card-alpha"
CONFIG = """
providers:
  card-alpha:
    latency: {median: 1ms, sigma: 0.1, max: 20ms}
    decline_mix: {}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(variant: str, wd: Path, providers_file: Path, config: Path, port: int) -> Child:
    ready = wd / f"{variant}-{time.monotonic_ns()}.json"
    log = wd / f"{variant}.log"
    if variant == "passthrough":
        import sys

        args = [sys.executable, "-m", "benchmarks._passthrough", str(providers_file), PROVIDER, str(port), str(ready)]
    else:
        args = paystab("gateway", "--providers-file", str(providers_file), "--port", str(port),
                       "--ledger", str(wd / f"{variant}-{time.monotonic_ns()}.db"), "--config", str(config),
                       "--ready-file", str(ready))
        args += ["--trace-jsonl", str(wd / "spans.jsonl")] if variant == "gateway_on" else ["--no-telemetry"]
    return Child(args, ready, log)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks gateway")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk duration per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)

    wd = workdir("gateway")
    config = wd / "stack.yaml"
    config.write_text(CONFIG)
    providers_ready = wd / "providers.json"
    providers = Child(paystab("provider", PROVIDER, "--port", "0", "--admin-port", "0", "--config", str(config),
                              "--data-dir", str(wd / "providers"), "--ready-file", str(providers_ready)),
                      providers_ready, wd / "providers.log")
    variants = ["gateway_on", "gateway_off", "passthrough"]
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    try:
        for round_no in range(args.rounds):
            order = variants[round_no % 3:] + variants[:round_no % 3]
            for variant in order:
                port = _free_port()
                child = _start(variant, wd, providers_ready, config, port)
                try:
                    url = f"http://127.0.0.1:{port}"
                    script = wrk_payment_script(wd, f"b{uuid.uuid4().hex[:8]}")
                    run_wrk(url, 2, args.connections, script=script)  # warm-up
                    result = run_wrk(url, args.seconds, args.connections, script=script)
                finally:
                    child.stop()
                samples[variant].append(result.__dict__)
                print(f"round {round_no + 1} {variant:12s} {result.requests_per_s:8.0f} req/s "
                      f"p50 {result.p50_ms} ms p99 {result.p99_ms} ms non2xx {result.non_2xx}", flush=True)
    finally:
        providers.stop()

    def median(variant: str, key: str) -> float:
        values = [s[key] for s in samples[variant] if s[key] is not None]
        return float(statistics.median(values)) if values else 0.0

    rps = {v: median(v, "requests_per_s") for v in variants}
    ratios = {
        "telemetry_on_vs_off": round(rps["gateway_on"] / rps["gateway_off"], 3) if rps["gateway_off"] else 0.0,
        "gateway_vs_passthrough": round(rps["gateway_on"] / rps["passthrough"], 3) if rps["passthrough"] else 0.0,
        "gateway_off_vs_passthrough": round(rps["gateway_off"] / rps["passthrough"], 3) if rps["passthrough"] else 0.0,
    }
    targets = {"telemetry_on_vs_off": 0.9, "gateway_vs_passthrough": 0.8}
    passed = {k: ratios[k] >= t for k, t in targets.items()}
    write_json(args.json, {
        "benchmark": "gateway",
        "method": f"wrk -t1 -c{args.connections}, {args.seconds:g}s x {args.rounds} interleaved rounds, medians",
        "requests_per_s": rps,
        "p50_ms": {v: median(v, "p50_ms") for v in variants},
        "p99_ms": {v: median(v, "p99_ms") for v in variants},
        "non_2xx": {v: sum(s["non_2xx"] for s in samples[v]) for v in variants},
        "ratios": ratios, "targets": targets, "passed": passed, "pass": all(passed.values()),
        "samples": samples,
    })
    return 0 if all(passed.values()) else 1
