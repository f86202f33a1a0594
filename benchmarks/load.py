"""Load generator throughput per CPU-second: paystab vs stock Locust, with wrk as reference.

One run, one endpoint: a private nginx (``daemon off``, one worker, temp config, free
loopback port) answering ``POST /v1/payments`` with a fixed approved payment, and a shop-like
``POST /api/orders`` → ``POST /api/orders/{id}/pay`` pair — fast enough that the generators,
not the target, are measured. Every generator runs for ``--seconds`` with keep-alive
connections, in ``--rounds`` interleaved rounds (the order rotates each round; the machine
is shared, so each figure is the median over rounds, and each ratio is also given per round,
from the two runs of that round):

* ``wrk`` (C, epoll) POSTing the same JSON body — the physical reference;
* stock Locust, ``FastHttpUser`` with no wait: the peer a user would otherwise pick, once
  doing the payment POST and once the two-step order → pay (JSON decode, id extracted);
* ``paystab load`` flat out (an arrival rate far above what it can serve): its own payment,
  a declarative two-step ``--flow``, and ``-f`` with the very locustfile stock Locust ran;
* ``paystab load --processes 2`` (throughput scaling);
* the first seconds of a fresh process (cold: a new interpreter): ``locust --headless`` and
  ``paystab load`` (its payment, and ``-f``) from spawn to their first request;
* stock Locust and ``paystab load -f`` with the same locustfile side by side, at the same
  time, each against its own nginx (``run_paired``; which starts first and which nginx
  each gets alternate by round), and as a control stock Locust side by side with itself
  (the instrument's own error: it should read 1). The user-locustfile target is judged
  on this side-by-side measurement: its two generators meet the same host in the same
  seconds, where run one after the other a round's ratio moves with whatever the rest
  of the machine did in between. The one-after-the-other figures are still reported
  (``sequential`` in that target).

"Per CPU-second" is real and the same for every tool: HTTP requests counted by nginx divided
by the CPU seconds of the generator process over its load phase (``/proc/PID/stat``, sampled;
start-up and shutdown excluded alike), never wall time; the JSON also has the figures with
start-up included (``RUSAGE_CHILDREN`` deltas of the whole process). Targets (issue 16):
paystab's payment ≥ 4× stock Locust per CPU-second, the two-step flow ≥ 3× Locust doing the
same two steps, a user's locustfile under paystab ≥ 1× the same file under stock Locust;
``--processes 2`` ≥ 1.7× one process's throughput (issue 5). Each target is stated in the
JSON with what was measured and whether it was met: met only when both the ratio of the
medians and the median of the per-round ratios reach it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._load_generators import (
    BODY,
    LOCUSTFILE,
    LOCUSTFILE_TWO_STEP,
    TWO_STEP_FLOW,
    run_locust,
    run_paired,
    run_paystab,
    run_startup,
    run_wrk,
    start_nginx,
    stop_nginx,
)
from benchmarks._support import compile_paystab

# name → (what it compares, numerator, denominator, measure, target)
TARGETS: dict[str, tuple[str, str, str, str, float]] = {
    "payment_vs_locust_per_core": (
        "paystab's own payment vs stock Locust FastHttpUser, HTTP requests per CPU-second",
        "paystab_payment", "locust_payment", "steady_rps_per_core", 4.0),
    "two_step_flow_vs_locust_per_core": (
        "declarative two-step --flow vs stock Locust doing the same two steps, per CPU-second",
        "paystab_two_step_flow", "locust_two_step", "steady_rps_per_core", 3.0),
    "user_locustfile_vs_locust_per_core": (
        "a user's locustfile under paystab load -f vs the same file under stock Locust, "
        "per CPU-second, both running at the same time", "paystab_user_locustfile",
        "locust_payment", "steady_rps_per_core", 1.0),
    "two_vs_one_process_throughput": (
        "paystab load --processes 2 vs 1, requests per second (issue 5)",
        "paystab_payment_2_processes", "paystab_payment", "rps", 1.7),
}
REFERENCES = {  # reported, no target
    "payment_vs_wrk_per_core": ("paystab_payment", "wrk"),
    "locust_vs_wrk_per_core": ("locust_payment", "wrk"),
    "user_locustfile_vs_wrk_per_core": ("paystab_user_locustfile", "wrk"),
}
STARTUP = ("locust_startup", "paystab_startup", "paystab_user_locustfile_startup")
PAIRED = ("paired_user_locustfile", "paired_locust_control")  # two generators at once
JUDGED_SIDE_BY_SIDE = {"user_locustfile_vs_locust_per_core": "paired_user_locustfile"}


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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
    started = datetime.datetime.now(datetime.UTC)
    load_before = _load_average()
    compile_paystab()
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
        (workdir / "second").mkdir()
        nginx_b, port_b = start_nginx(workdir / "second")  # the paired run's other endpoint
        cold_paystab = [sys.executable, "-m", "paystab", "load", "--target", url, "--rps", "50",
                        "--duration", "30", "--users", "4", "--no-live"]
        generators: list[tuple[str, Callable[[], dict[str, Any]]]] = [
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
            ("locust_startup", lambda: run_startup(
                [sys.executable, "-m", "locust", "-f", str(payer), "--headless", "-u", "4",
                 "-r", "40", "-t", "30s", "--host", url, "--only-summary"], port)),
            ("paystab_startup", lambda: run_startup(cold_paystab, port, preflight_requests=1)),
            ("paystab_user_locustfile_startup", lambda: run_startup(
                [*cold_paystab, "-f", str(payer)], port, preflight_requests=1)),
            ("paired_user_locustfile", lambda: run_paired(
                url, f"http://127.0.0.1:{port_b}", seconds, users, payer,
                swap=current[0] % 2 == 1)),
            ("paired_locust_control", lambda: run_paired(
                url, f"http://127.0.0.1:{port_b}", seconds, users, payer, control=True,
                swap=current[0] % 2 == 1)),
        ]
        current = [0]  # the round: the paired runs alternate their slots by it
        try:
            for round_index in range(args.rounds):
                current[0] = round_index
                shift = round_index % len(generators)
                for name, run in generators[shift:] + generators[:shift]:
                    load = _load_average()
                    result = run()
                    result["round"] = round_index
                    result["load_average_1m"] = load[0]
                    runs.setdefault(name, []).append(result)
                    if name in PAIRED:
                        other = ("Locust again", "locust_again") if name.endswith("control") \
                            else ("paystab -f", "paystab_user_locustfile")
                        print(f"round {round_index} {name:<32} side by side: {other[0]} "
                              f"{result[other[1] + '_rps_per_core']:.0f}, Locust "
                              f"{result['locust_rps_per_core']:.0f} req/CPU-s, "
                              f"×{result['ratio']:.3f}", flush=True)
                    elif name in STARTUP:
                        print(f"round {round_index} {name:<32} first request after "
                              f"{result['first_request_s']:.2f} s, "
                              f"{result['cpu_to_first_request_s']:.2f} CPU-s", flush=True)
                    else:
                        print(f"round {round_index} {name:<32} {result['rps']:>9.0f} req/s "
                              f"{result['steady_rps_per_core']:>9.0f} req/CPU-s (load phase) "
                              f"{result['rps_per_core']:>9.0f} (whole process)", flush=True)
        finally:
            for server in (nginx, nginx_b):
                stop_nginx(server)
    results = summarize(runs, args, started, load_before)
    print_summary(results, args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def summarize(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace,
              started: datetime.datetime, load_before: list[float]) -> dict[str, Any]:
    """Medians, ratios (of the medians, and per round), each target stated and judged."""
    throughput = {n: rs for n, rs in runs.items() if n not in STARTUP and n not in PAIRED}

    def median_of(name: str, measure: str) -> float:
        return _median([r[measure] for r in runs[name]])

    def ratio(a: str, b: str, measure: str) -> float:
        bottom = median_of(b, measure)
        return round(median_of(a, measure) / bottom, 3) if bottom else 0.0

    def per_round(a: str, b: str, measure: str) -> list[float]:
        return [round(x[measure] / y[measure], 3)
                for x, y in zip(runs[a], runs[b], strict=True) if y[measure]]

    targets = []
    for key, (what, a, b, measure, target) in TARGETS.items():
        measured = ratio(a, b, measure)
        rounds = per_round(a, b, measure)
        of_rounds = round(_median(rounds), 3)
        extra: dict[str, Any] = {}
        paired = JUDGED_SIDE_BY_SIDE.get(key)
        if paired is not None and paired in runs:
            # judged side by side; the runs one after the other are kept for reference
            extra["sequential"] = {"measured": measured, "median_of_round_ratios": of_rounds,
                                   "per_round": rounds}
            side = runs[paired]
            bottom = _median([r["locust_rps_per_core"] for r in side])
            measured = round(_median([r["paystab_user_locustfile_rps_per_core"]
                                      for r in side]) / bottom, 3) if bottom else 0.0
            rounds = [r["ratio"] for r in side]
            of_rounds = round(_median(rounds), 3)
            extra["measured_side_by_side"] = True
            if "paired_locust_control" in runs:
                extra["control_median_ratio"] = round(
                    _median([r["ratio"] for r in runs["paired_locust_control"]]), 3)
        targets.append({
            "name": key, "what": what, "target": f">= {target:g}", "measured": measured,
            "median_of_round_ratios": of_rounds, "per_round": rounds, **extra,
            # met only if both estimates say so: the ratio of the two medians, and the
            # median of the ratios within each round (the noisy host moves them apart)
            "met": measured >= target and of_rounds >= target,
        })
    startup: dict[str, dict[str, Any]] = {
        name: {"first_request_s": median_of(name, "first_request_s"),
               "cpu_to_first_request_s": median_of(name, "cpu_to_first_request_s"),
               "per_round": runs[name]}
        for name in STARTUP}
    locust_first = startup["locust_startup"]["first_request_s"]
    locust_cpu = startup["locust_startup"]["cpu_to_first_request_s"]
    return {
        "benchmark": "load",
        "date": started.isoformat(timespec="seconds"),
        "cores": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": _load_average(),
        "seconds": args.seconds, "rounds": args.rounds, "users": args.users,
        "endpoint": "nginx return 200/201 (1 worker), loopback",
        "measure": "HTTP requests counted by nginx per CPU-second of the generator process "
                   "over its load phase (sampled /proc/PID/stat), medians of interleaved rounds",
        "median_rps_per_core": {n: median_of(n, "steady_rps_per_core") for n in throughput},
        "median_rps": {n: median_of(n, "rps") for n in throughput},
        "median_rps_per_core_incl_startup": {n: median_of(n, "rps_per_core")
                                             for n in throughput},
        "ratios": {t["name"]: t["measured"] for t in targets} | {
            name: ratio(a, b, "steady_rps_per_core") for name, (a, b) in REFERENCES.items()},
        "ratios_incl_startup": {key: ratio(a, b, "rps_per_core")
                                for key, (_w, a, b, m, _t) in TARGETS.items()
                                if m == "steady_rps_per_core"},
        "targets": targets,
        "passed": {t["name"]: t["met"] for t in targets},
        # the locustfile comparison and its control, both generators at once (run_paired)
        "paired": {name: {"median_ratio": _median([r["ratio"] for r in runs[name]]),
                          "per_round": runs[name]} for name in PAIRED if name in runs},
        "startup_cold": {
            **startup,
            "paystab_vs_locust_first_request": round(
                startup["paystab_startup"]["first_request_s"] / locust_first, 3)
            if locust_first else 0.0,
            "paystab_vs_locust_cpu_to_first_request": round(
                startup["paystab_startup"]["cpu_to_first_request_s"] / locust_cpu, 3)
            if locust_cpu else 0.0,
        },
        "runs": throughput,
    }


def print_summary(results: dict[str, Any], rounds: int) -> None:
    for name, paired in results["paired"].items():
        ratios = [r["ratio"] for r in paired["per_round"]]
        other = "stock Locust again" if name.endswith("control") else "paystab -f"
        print(f"{name}: side by side, {other} vs stock Locust ×{paired['median_ratio']:.3f} "
              f"(median; per round {ratios})")
    per_core, rps = results["median_rps_per_core"], results["median_rps"]
    print(f"{'generator':<32} {'req/s':>9} {'req/CPU-s':>10}  (load phase; medians of "
          f"{rounds} rounds)")
    for name in per_core:
        print(f"{name:<32} {rps[name]:>9.0f} {per_core[name]:>10.0f}")
    for target in results["targets"]:
        how = ""
        if target.get("measured_side_by_side"):
            seq = target["sequential"]
            how = (f"; side by side, control Locust vs Locust "
                   f"×{target.get('control_median_ratio', 0.0):.3f}; one after the other "
                   f"×{seq['measured']:.2f}")
        print(f"{target['name']}: ×{target['measured']:.2f}, median of rounds "
              f"×{target['median_of_round_ratios']:.2f} (target {target['target']}; per round "
              f"{target['per_round']}{how}) {'met' if target['met'] else 'NOT MET'}")
    for name in REFERENCES:
        print(f"{name}: ×{results['ratios'][name]:.3f} (reference)")
    cold = results["startup_cold"]
    for name in STARTUP:
        print(f"{name:<32} first request after {cold[name]['first_request_s']:.2f} s, "
              f"{cold[name]['cpu_to_first_request_s']:.2f} CPU-s (cold, median)")
