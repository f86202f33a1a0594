"""The detection benchmark's cost: a fresh process over its first million observations."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarks._detection_common import TARGETS

_COST_CHILD = r"""
import json, sys, time
import numpy as np
started = time.perf_counter()
from paystab.anomaly.failure_rate import CusumBank, FailureRateConfig
n, seed = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(seed)
# traffic whose rate and baseline move (recalibrations happen) and a 5 % incident
rate = np.repeat(rng.choice([5.0, 50.0, 300.0, 1000.0], size=n // 50_000 + 1), 50_000)[:n]
times = np.cumsum(1.0 / rate).tolist()
p = np.where((np.arange(n) > n // 2) & (np.arange(n) < n // 2 + 20_000), 0.05, 0.005)
p = p * np.repeat(rng.uniform(0.2, 1.8, size=n // 20_000 + 1), 20_000)[:n]
failed = (rng.random(n) < p).tolist()
import_s = time.perf_counter() - started
import gc
gc.freeze()  # the benchmark's own 2 x 10^6-element lists: not the detector's to traverse
clock = time.perf_counter_ns
cpu = time.thread_time_ns
bank = CusumBank(FailureRateConfig())
observe = bank.observe
worst = worst_wall = over_1ms_wall = 0
worst_kind = ""
alarms = 0
t0 = clock()
for f, t in zip(failed, times):
    folds = bank.t_fold
    a = clock()
    c = cpu()
    if observe(f, t) >= 0:
        alarms += 1
    c = cpu() - c
    b = clock() - a
    if c > worst:
        worst = c
        worst_kind = "block fold" if bank.t_fold != folds else ("failure" if f else "success")
    if b > worst_wall:
        worst_wall = b
    if b > 1_000_000:
        over_1ms_wall += 1
timed = (clock() - t0) / n / 1000.0
bank = CusumBank(FailureRateConfig())
observe = bank.observe
t0 = clock()
for f, t in zip(failed, times):
    observe(f, t)
plain = (clock() - t0) / n / 1000.0
t0 = clock()
for f, t in zip(failed, times):
    pass
loop = (clock() - t0) / n / 1000.0
print(json.dumps({"observations": n, "mean_us": plain, "mean_us_net_of_loop": plain - loop,
                  "mean_us_with_per_call_timers": timed, "worst_observe_ms": worst / 1e6,
                  "worst_observe_kind": worst_kind,
                  "worst_observe_wall_ms": worst_wall / 1e6, "calls_over_1ms_wall": over_1ms_wall,
                  "alarms": alarms, "setup_s": import_s}))
"""


def fresh_process_cost(observations: int, seed: int, repeats: int = 3) -> dict[str, Any]:
    """The first ``observations`` of a fresh process: mean µs per ``observe()`` (a second,
    untimed pass on a new bank in the same process) and the worst single call, timed one
    by one in thread CPU time (what the code costs: solving a threshold would show here).
    Its wall time is reported too: on a shared machine a call can be preempted for a
    scheduler tick or more, which is not the detector's doing. Even thread CPU time jumps
    now and then on a shared VM (1.3 ms once for a call that only counted a success, while
    other runs' worst were 0.17-0.29 ms), so ``repeats`` fresh processes run and the
    median of each figure is judged; every run is in ``runs``."""
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _COST_CHILD, str(observations), str(seed)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    result: dict[str, Any] = {"runs": runs, "observations": observations}
    for key in ("mean_us", "mean_us_net_of_loop", "worst_observe_ms"):
        result[key] = sorted(r[key] for r in runs)[len(runs) // 2]
    result["worst_observe_ms_runs"] = [r["worst_observe_ms"] for r in runs]
    result["pass"] = (result["mean_us"] <= TARGETS["us_per_obs_max"]
                      and result["worst_observe_ms"] <= TARGETS["worst_observe_ms_max"])
    return result
