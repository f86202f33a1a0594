"""A user's first seconds: a fresh ``paystab`` process against a fresh stock Locust.

What a user meets before any steady state: a new interpreter, nothing imported. Against a
private nginx (``_load_generators.start_nginx``), in ``--rounds`` interleaved rounds (the
order rotates each round; each figure is the median over rounds, each ratio also the
median of the per-round ratios, from the two runs of that round):

* ``locust``: ``locust -f payer.py --headless``, spawn to its first request;
* ``paystab_load``: ``paystab load`` (its own payment), spawn to its first load request
  (its preflight ``GET /healthz`` is not counted as one);
* ``paystab_load_f``: ``paystab load -f payer.py``, the same locustfile Locust ran;
* ``paystab_load_no_bytecode``: ``paystab load`` from a copy of the package with no
  ``__pycache__`` and ``PYTHONDONTWRITEBYTECODE=1``: every start of a checkout that cannot
  cache bytecode, and the first start of any checkout;
* ``locust_version`` / ``paystab_version``: ``--version``, spawn to exit — the bare price of
  each CLI.

paystab's bytecode is compiled first, as ``scripts/setup.sh`` and a wheel install leave it
(Locust's came with its install). Wall seconds and the process's CPU seconds
(``/proc/PID/stat`` up to the first request; ``wait4`` rusage for runs to exit). Reported,
no target: Locust is imported by ``paystab load`` itself, so its start-up is the floor.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._load_generators import (
    BODY,
    LOCUSTFILE,
    REPO,
    run_startup,
    start_nginx,
    stop_nginx,
)
from benchmarks._support import compile_paystab, write_json

FIRST_REQUEST = ("locust", "paystab_load", "paystab_load_f", "paystab_load_no_bytecode")
TO_EXIT = ("locust_version", "paystab_version")
# numerator, denominator: what each ratio compares
RATIOS = {
    "paystab_load_vs_locust": ("paystab_load", "locust"),
    "paystab_load_f_vs_locust": ("paystab_load_f", "locust"),
    "no_bytecode_vs_bytecode": ("paystab_load_no_bytecode", "paystab_load"),
    "paystab_version_vs_locust_version": ("paystab_version", "locust_version"),
}


def _to_exit(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Spawn to exit: wall seconds and the child's CPU seconds (its rusage)."""
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env, cwd=REPO)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} exited {child.returncode}")
    return {"s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


def _median(values: list[float]) -> float:
    return round(float(statistics.median(values)), 3)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks startup")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    compile_paystab()
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="paystab-bench-startup-") as tmp:
        workdir = Path(tmp)
        payer = workdir / "locustfile_payment.py"
        payer.write_text(LOCUSTFILE.format(body=BODY))
        # the package alone, without bytecode: PYTHONPATH puts it before the installed one
        source = workdir / "source"
        shutil.copytree(REPO / "paystab", source / "paystab",
                        ignore=shutil.ignore_patterns("__pycache__"))
        nginx, port = start_nginx(workdir)
        url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        uncompiled = dict(os.environ, PYTHONPATH=str(source), PYTHONDONTWRITEBYTECODE="1")
        load = [sys.executable, "-m", "paystab", "load", "--target", url, "--rps", "50",
                "--duration", "30", "--users", "4", "--no-live"]
        variants: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("locust", lambda: run_startup(
                [sys.executable, "-m", "locust", "-f", str(payer), "--headless", "-u", "4",
                 "-r", "40", "-t", "30s", "--host", url, "--only-summary"], port)),
            ("paystab_load", lambda: run_startup(load, port, preflight_requests=1)),
            ("paystab_load_f", lambda: run_startup([*load, "-f", str(payer)], port,
                                                   preflight_requests=1)),
            ("paystab_load_no_bytecode", lambda: run_startup(
                load, port, preflight_requests=1, env=uncompiled, cwd=source)),
            ("locust_version", lambda: _to_exit(
                [sys.executable, "-m", "locust", "--version"], env)),
            ("paystab_version", lambda: _to_exit(
                [sys.executable, "-m", "paystab", "--version"], env)),
        ]
        try:
            for round_index in range(args.rounds):
                shift = round_index % len(variants)
                for name, run in variants[shift:] + variants[:shift]:
                    result = run()
                    result["round"] = round_index
                    result["load_average_1m"] = round(os.getloadavg()[0], 2)
                    runs.setdefault(name, []).append(result)
                    wall = result.get("first_request_s", result.get("s"))
                    cpu = result.get("cpu_to_first_request_s", result.get("cpu_s"))
                    print(f"round {round_index} {name:<26} {wall:.3f} s, {cpu:.3f} CPU-s",
                          flush=True)
        finally:
            stop_nginx(nginx)
    results = summarize(runs, args.rounds, started, load_before)
    _print_table(results)
    write_json(args.json, results)
    return 0


def summarize(runs: dict[str, list[dict[str, Any]]], rounds: int,
              started: datetime.datetime, load_before: list[float]) -> dict[str, Any]:
    """Medians per variant, and each ratio as ratio of medians and median per round."""

    def keys(name: str) -> tuple[str, str]:
        return ("first_request_s", "cpu_to_first_request_s") if name in FIRST_REQUEST \
            else ("s", "cpu_s")

    medians = {}
    for name, results in runs.items():
        wall_key, cpu_key = keys(name)
        medians[name] = {"wall_s": _median([r[wall_key] for r in results]),
                         "cpu_s": _median([r[cpu_key] for r in results]),
                         "max_wall_s": max(r[wall_key] for r in results)}
    ratios: dict[str, dict[str, float]] = {}
    for label, (top, bottom) in RATIOS.items():
        entry = {}
        for measure, index in (("wall", 0), ("cpu", 1)):
            per_round = []
            for a, b in zip(runs[top], runs[bottom], strict=True):
                per_round.append(a[keys(top)[index]] / b[keys(bottom)[index]])
            entry[f"{measure}_ratio_of_medians"] = round(
                medians[top][f"{measure}_s"] / medians[bottom][f"{measure}_s"], 3)
            entry[f"{measure}_median_per_round"] = _median(per_round)
        ratios[label] = entry
    return {
        "benchmark": "startup",
        "date": started.isoformat(timespec="seconds"),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rounds": rounds,
        "measure": "spawn to first load request (or to exit for --version); wall and the "
                   "process's CPU seconds; paystab's bytecode compiled ahead unless named",
        "medians": medians,
        "ratios": ratios,
        "runs": runs,
    }


def _print_table(results: dict[str, Any]) -> None:
    print(f"\nmedians of {results['rounds']} rounds (wall / CPU seconds):")
    for name, m in results["medians"].items():
        print(f"  {name:<26} {m['wall_s']:.3f} s / {m['cpu_s']:.3f} CPU-s "
              f"(slowest {m['max_wall_s']:.3f} s)")
    for label, r in results["ratios"].items():
        print(f"  {label:<36} wall ×{r['wall_ratio_of_medians']:.2f} "
              f"(×{r['wall_median_per_round']:.2f} per round), CPU "
              f"×{r['cpu_ratio_of_medians']:.2f} (×{r['cpu_median_per_round']:.2f})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
