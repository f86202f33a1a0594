"""Detection benchmark: paystab's detectors vs the optimal CUSUM and today's alert rules.

``python -m benchmarks detection [--json out.json] [--seed N] [--episodes N] [--quick]``

Seeded and reproducible. On a labelled corpus (``paystab.anomaly.corpus``) at 10, 100 and
1000 attempts/s with a 0.5 % baseline failure rate it measures, per scenario: median, p90
and mean detection delay, the exact delay of the optimal known-parameter CUSUM at the same
false-alarm rate (Markov chain, ``paystab.anomaly.arl``), their ratio, false alarms per 24 h
of traffic (long no-change runs), precision, recall and the detector's cost per attempt; the
same for three baselines (a fixed 1 % over 1 min, a Prometheus rule every 15 s with
``for: 1m``, Envoy's 5 consecutive 5xx with a 10 s sweep). Then the noisy corpus of issue 12
(``_detection_noisy.py``: drifting baseline, clusters, surges, 1-1,000/s), hangs and latency
shifts of one provider among four behind one host and the host-wide episodes that must not
alarm (``_detection_host.py``), and the cost of a fresh process's first million
observations (``_detection_cost.py``). The optimum is always the one at one false alarm per
24 h (the target), whatever the detector is configured for. Targets are checked and written
to the JSON with pass/fail. ``--part noisy|request|cost`` runs one part.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from benchmarks._detection_common import (
    GATEWAY_TIMEOUT_S,
    H0_DAYS,
    OPTIMUM_HORIZON_H,
    RATES,
    SHIFTS,
    TARGETS,
    VOLUMES,
    WARMUP_S,
    _rng,
    _summary,
)
from benchmarks._detection_cost import fresh_process_cost
from benchmarks._detection_host import host_wide, request_level
from benchmarks._detection_noisy import noisy
from paystab.anomaly.arl import optimal_delay
from paystab.anomaly.corpus import (
    RequestEpisode,
    failure_indices,
    request_samples,
    step_stream,
    stream,
)
from paystab.anomaly.evaluation import (
    BASELINES,
    baseline_alarms,
    first_alarm_after,
    run_cusum,
    run_samples,
)
from paystab.anomaly.failure_rate import CusumBank, FailureRateConfig
from paystab.anomaly.hang import HangConfig, HangDetector
from paystab.anomaly.latency import LatencyDetector

P0 = 0.005
def h0_false_alarms(cfg: FailureRateConfig, rate: int, days: float, seed: int) -> dict[str, Any]:
    """Paystab's false alarms per 24 h on a long no-change stream (one bank, day chunks)."""
    rng = _rng(seed, 900, rate)
    bank = CusumBank(cfg)
    alarms, offset, cpu = 0, 0, 0.0
    per_day = int(86400 * rate)
    remaining = int(days * per_day)
    while remaining > 0:
        n = min(per_day, remaining)
        idx = (failure_indices(rng, [(n, P0)]) + offset).tolist()
        previous = offset - 1 if offset else -1
        observe = bank.observe_run
        started = time.perf_counter()
        for i in idx:
            if observe(i - previous - 1, 1, i / rate) >= 0:
                alarms += 1
            previous = i
        cpu += time.perf_counter() - started
        observe(offset + n - 1 - previous, 0, (offset + n) / rate)
        offset += n
        remaining -= n
    return {"days": days, "alarms": alarms, "per_24h": alarms / days,
            "us_per_attempt": cpu / offset * 1e6}


def baseline_h0(rate: int, days: float, seed: int) -> dict[str, float]:
    s = stream(_rng(seed, 901, rate), np.full(int(days * 86400), float(rate)),
               lambda t: np.full_like(t, P0))
    return {name: len(baseline_alarms(name, s)[0]) / days for name in BASELINES}


def rate_changes(cfg: FailureRateConfig, episodes: int, seed: int, rates: tuple[int, ...],
                 h0: dict[int, dict[str, Any]], base_h0: dict[int, dict[str, float]]
                 ) -> list[dict[str, Any]]:
    rows = []
    for rate in rates:
        arl0 = OPTIMUM_HORIZON_H * 3600.0 * rate
        for shift in SHIFTS:
            _, optimal_attempts = optimal_delay(P0, shift, arl0)
            # long enough for a `for: 1m` rule evaluated every 15 s to show its delay
            horizon_s = max(180.0, 30.0 * optimal_attempts / rate)
            delays, delay_att, fas, cpu, attempts = [], [], 0, 0.0, 0
            base: dict[str, tuple[list[float], int]] = {b: ([], 0) for b in BASELINES}
            for e in range(episodes):
                rng = _rng(seed, 1, rate, int(shift * 1000), e)
                change_s = float(WARMUP_S[rate] + int(rng.integers(0, 60)))
                s = step_stream(rng, rate, int(change_s + horizon_s) + 1, change_s, P0, shift)
                change_index = s.index_at(change_s)
                t_change = float(s.time_of(change_index)[0])
                horizon_index = s.index_at(change_s + horizon_s)
                run = run_cusum(s, cfg, change_index, horizon_index)
                cpu += run.cpu_s
                attempts += run.attempts
                fas += len(run.false_alarms)
                if run.detected_index is not None and run.detected_at is not None:
                    delays.append(run.detected_at - t_change)
                    delay_att.append(run.detected_index - change_index + 1)
                for name in BASELINES:
                    edges, times, cond = baseline_alarms(name, s)
                    first = first_alarm_after(times, cond, change_s)
                    got, fa = base[name]
                    if first is not None and first <= change_s + horizon_s:
                        got.append(first - change_s)
                    base[name] = (got, fa + sum(1 for x in edges if x < change_s))
            label = f"{P0:.1%} -> {shift:.0%}"
            row = {"scenario": f"rate {label}", "kind": "rate_change", "rate": rate,
                   "shift": shift, "detector": "paystab", **_summary(delays, episodes, fas),
                   "optimal_delay_s": optimal_attempts / rate,
                   "ratio": float(np.mean(delay_att)) / optimal_attempts if delay_att else None,
                   "fa_per_24h": h0[rate]["per_24h"],
                   "us_per_obs": cpu / max(attempts, 1) * 1e6}
            row["pass"] = (row["ratio"] is not None and row["ratio"] <= TARGETS["ratio_max"]
                           and row["fa_per_24h"] <= TARGETS["false_alarms_per_24h_max"])
            rows.append(row)
            for name in BASELINES:
                got, fa = base[name]
                rows.append({"scenario": f"rate {label}", "kind": "rate_change", "rate": rate,
                             "shift": shift, "detector": name, **_summary(got, episodes, fa),
                             "optimal_delay_s": optimal_attempts / rate,
                             "ratio": (float(np.mean(got)) * rate / optimal_attempts
                                       if got else None),
                             "fa_per_24h": base_h0[rate][name], "us_per_obs": None})
    return rows


def flapping(cfg: FailureRateConfig, episodes: int, seed: int, rates: tuple[int, ...]
             ) -> list[dict[str, Any]]:
    rows = []
    for rate in rates:
        delays, fas = [], 0
        for e in range(episodes):
            rng = _rng(seed, 2, rate, e)
            start = float(WARMUP_S[rate] + int(rng.integers(0, 60)))
            total = int(start + 120)

            def prob(t: np.ndarray[Any, Any], start: float = start) -> np.ndarray[Any, Any]:
                phase = np.mod(t - start, 30.0)
                return np.where((t >= start) & (phase < 5.0), 0.5, P0)

            changes = [start + k * 30.0 + d for k in range(4) for d in (0.0, 5.0)]
            s = stream(rng, np.full(total, float(rate)), prob, changes)
            change_index = s.index_at(start)
            run = run_cusum(s, cfg, change_index, s.index_at(total - 1))
            fas += len(run.false_alarms)
            if run.detected_at is not None:
                delays.append(run.detected_at - float(s.time_of(change_index)[0]))
        rows.append({"scenario": "flapping 50% 5s/30s", "kind": "flapping", "rate": rate,
                     "detector": "paystab", **_summary(delays, episodes, fas)})
    return rows


def must_not_alarm(cfg: FailureRateConfig, episodes: int, seed: int, rates: tuple[int, ...],
                   quick: bool = False) -> list[dict[str, Any]]:
    rows = []

    def stream_row(name: str, rate: int, s: Any, hours: float, judged: bool = True) -> None:
        run = run_cusum(s, cfg)
        alarms = {"paystab": len(run.false_alarms)}
        for b in BASELINES:
            alarms[b] = len(baseline_alarms(b, s)[0])
        row: dict[str, Any] = {"scenario": name, "kind": "must_not_alarm", "rate": rate,
                               "traffic_h": hours, "alarms": alarms}
        if judged:
            row["pass"] = alarms["paystab"] == 0
        else:
            row["expected_alarms_at_budget"] = hours / cfg.false_alarm_every_h
        rows.append(row)

    for rate in rates:  # 1 h steady, 10 min at 10x, 20 min steady
        rates_s = np.full(5400, float(rate))
        rates_s[3600:4200] *= 10
        s = stream(_rng(seed, 4, rate), rates_s, lambda t: np.full_like(t, P0))
        stream_row("surge 10x for 10 min", rate, s, 1.5)
    # Diurnal swing compressed to 3 h (faster than any real day: the harder case for a
    # volume-sensitive rule). A real 24 h day is reported too, as information: at the
    # configured one false alarm per 24 h, ~1 alarm there is the budget, not a failure.
    for hours, judged in ((3.0, True),) if quick else ((3.0, True), (24.0, False)):
        t_s = np.arange(int(hours * 3600), dtype=np.float64)
        diurnal = 100.0 * (1.0 + 0.8 * np.sin(2 * np.pi * t_s / (hours * 3600)))
        stream_row(f"diurnal swing x0.2..x1.8 over {hours:g} h", 100,
                   stream(_rng(seed, 5, int(hours)), diurnal, lambda t: np.full_like(t, P0)),
                   hours, judged)

    def drift(t: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(P0 + 0.005 * np.clip((t - 3600.0) / 7200.0, 0.0, 1.0))

    stream_row("slow drift 0.5% -> 1.0% over 2 h", 100,
               stream(_rng(seed, 6), np.full(3 * 3600, 100.0), drift), 3.0)
    quiet: tuple[tuple[str, dict[str, float]], ...] = (
        ("one slow request (5 s)", dict(slow_request_s=5.0)),
        ("surge 10x for 30 s (latency/hang)", dict(surge_factor=10.0, surge_s=30.0)))
    for name, params in quiet:
        for rate in rates if "slow" in name else (100,):
            alarms = {"hang": 0, "latency": 0}
            for e in range(episodes):
                rng = _rng(seed, 7, rate, len(name), e)
                ep = RequestEpisode(rate=rate, seconds=150.0, event_s=120.0, **params)
                samples = request_samples(rng, ep)
                alarms["hang"] += len(run_samples(
                    HangDetector(HangConfig(gateway_timeout_s=GATEWAY_TIMEOUT_S)), samples))
                alarms["latency"] += len(run_samples(LatencyDetector(), samples))
            rows.append({"scenario": name, "kind": "must_not_alarm", "rate": rate,
                         "episodes": episodes, "alarms": alarms,
                         "pass": sum(alarms.values()) == 0})
    return rows


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    t = Table(title="failure-rate changes (delay s; ratio = mean delay / optimal CUSUM)")
    for c in ("rate/s", "change", "detector", "median", "p90", "optimal", "ratio",
              "FA/24h", "precision", "recall", "µs/obs", "ok"):
        t.add_column(c, justify="right")
    for r in result["rate_changes"]:
        t.add_row(str(r["rate"]), r["scenario"].removeprefix("rate "), r["detector"],
                  _fmt(r["median_delay_s"]), _fmt(r["p90_delay_s"]), _fmt(r["optimal_delay_s"]),
                  _fmt(r["ratio"]), _fmt(r["fa_per_24h"]), _fmt(r["precision"]),
                  _fmt(r["recall"]), _fmt(r["us_per_obs"], 3),
                  {True: "✔", False: "✘"}.get(r.get("pass"), ""))
    console.print(t)
    t = Table(title="hangs, latency shifts, flapping (delay s)")
    for c in ("scenario", "rate/s", "detector", "median", "p90", "max", "recall", "precision",
              "ok"):
        t.add_column(c, justify="right")
    for r in result["request_level"] + result["flapping"]:
        t.add_row(r["scenario"], str(r["rate"]), r["detector"], _fmt(r["median_delay_s"]),
                  _fmt(r["p90_delay_s"]), _fmt(r["max_delay_s"]), _fmt(r["recall"]),
                  _fmt(r["precision"]), {True: "✔", False: "✘"}.get(r.get("pass"), ""))
    console.print(t)
    t = Table(title="must not alarm (alarms)")
    for c in ("scenario", "rate/s", "alarms", "ok"):
        t.add_column(c, justify="right")
    for r in result["must_not_alarm"]:
        t.add_row(r["scenario"], str(r["rate"]),
                  ", ".join(f"{k}={v}" for k, v in r["alarms"].items()),
                  {True: "✔", False: "✘"}.get(r.get("pass"), "info"))
    console.print(t)
    t = Table(title="noisy corpus: false alarms per provider-day (no change)")
    for c in ("volume/s", "days", "alarms", "per day", "after a cluster", "clusters", "ok"):
        t.add_column(c, justify="right")
    for r in result["noisy"]["false_alarms"]:
        t.add_row(str(r["volume"]), _fmt(r["days"], 1), str(r["alarms"]), _fmt(r["per_day"]),
                  str(r["alarms_within_5min_of_a_cluster"]), str(r["clusters"]),
                  {True: "✔", False: "✘"}[r["pass"]])
    console.print(t)
    t = Table(title="noisy corpus: steps 4-5 h in (ratio = delay / optimal CUSUM at the local "
                    "rate and baseline)")
    for c in ("volume/s", "to", "recall", "median s", "optimal s", "median ratio", "p90 ratio",
              "FA before", "ok"):
        t.add_column(c, justify="right")
    for r in result["noisy"]["changes"]:
        t.add_row(str(r["volume"]), f"{r['shift']:.0%}", _fmt(r["recall"]),
                  _fmt(r["median_delay_s"]), _fmt(r["median_optimal_s"]),
                  _fmt(r["median_ratio"]), _fmt(r["p90_ratio"]),
                  str(r["false_alarms_before_change"]), {True: "✔", False: "✘"}[r["pass"]])
    console.print(t)
    d = result["noisy"]["delay"]
    console.print(f"noisy corpus, changes to >= 5 %: median ratio {_fmt(d['median_ratio'])} over "
                  f"{d['changes']} changes; {_fmt(d['median_ratio_optimum_ge_2s'])} over the "
                  f"{d['changes_optimum_ge_2s']} whose optimum is >= 2 s; per step: " + ", ".join(
                      f"{k}: {_fmt(v)}" for k, v in d["per_shift_median_ratio"].items()))
    c = result["cost"]
    console.print(f"fresh process, first {c['observations']:,} observations (median of "
                  f"{len(c['runs'])} processes): {c['mean_us']:.3f} µs/observation "
                  f"({c['mean_us_net_of_loop']:.3f} net of the loop), worst single observe() "
                  f"{c['worst_observe_ms']:.3f} ms CPU (runs: " + ", ".join(
                      f"{x:.3f}" for x in c["worst_observe_ms_runs"]) + f"; targets ≤ "
                  f"{TARGETS['us_per_obs_max']} µs, ≤ {TARGETS['worst_observe_ms_max']} ms)")
    console.print("false alarms per 24 h (paystab): " + ", ".join(
        f"{rate}/s: {h['per_24h']:.2f} ({h['alarms']} in {h['days']:g} d)"
        for rate, h in result["h0"].items()))
    console.print(f"targets met: {result['pass']}  ({result['seconds']:.0f} s)")


def run(seed: int = 7, episodes: int = 50, quick: bool = False,
        rates: tuple[int, ...] = RATES, volumes: tuple[int, ...] = VOLUMES,
        cost_observations: int = 1_000_000) -> dict[str, Any]:
    """Everything, as a JSON-ready dict; ``quick`` shortens the no-change runs 10-20x."""
    started = time.time()
    cfg = FailureRateConfig()
    scale = 0.05 if quick else 1.0
    h0 = {rate: h0_false_alarms(cfg, rate, H0_DAYS[rate] * scale, seed) for rate in rates}
    base_h0 = {rate: baseline_h0(rate, 0.25 if quick else 2.0, seed) for rate in rates}
    small = max(3, episodes // 3)
    result: dict[str, Any] = {
        "benchmark": "detection", "seed": seed, "episodes": episodes, "quick": quick,
        "baseline_failure_rate": P0, "gateway_timeout_s": GATEWAY_TIMEOUT_S,
        "targets": TARGETS, "config": {"false_alarm_every_h": cfg.false_alarm_every_h,
                                       "shifts": list(cfg.shifts), "horizon_s": cfg.horizon_s,
                                       "cluster_failures": cfg.cluster_failures},
        "h0": {str(r): v for r, v in h0.items()},
        "rate_changes": rate_changes(cfg, episodes, seed, rates, h0, base_h0),
        "noisy": noisy(cfg, small, seed, quick, volumes),
        "flapping": flapping(cfg, small, seed, rates),
        "request_level": request_level(small if quick else episodes // 2, seed, rates),
        "must_not_alarm": must_not_alarm(cfg, small, seed, rates, quick)
        + host_wide(small, seed, rates),
    }
    result["cost"] = fresh_process_cost(cost_observations, seed)
    checks = [r["pass"] for r in result["rate_changes"] if "pass" in r]
    checks += [r["pass"] for r in result["request_level"] if "pass" in r]
    checks += [r["pass"] for r in result["must_not_alarm"] if "pass" in r]
    checks += [r["pass"] for part in ("false_alarms", "changes") for r in result["noisy"][part]]
    checks.append(result["noisy"]["delay"]["pass"])
    checks.append(result["cost"]["pass"])
    checks += [h["per_24h"] <= TARGETS["false_alarms_per_24h_max"] for h in h0.values()]
    result["pass"] = all(checks)
    result["seconds"] = time.time() - started
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks detection")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="a small, fast version")
    parser.add_argument("--part", choices=("all", "noisy", "request", "cost"), default="all",
                        help="one part only (JSON of that part)")
    args = parser.parse_args(argv)
    if args.part != "all":
        cfg = FailureRateConfig()
        small = max(3, args.episodes // 3)
        part: dict[str, Any]
        if args.part == "noisy":
            part = {"noisy": noisy(cfg, small, args.seed, args.quick)}
        elif args.part == "request":
            part = {"request_level": request_level(small, args.seed, RATES),
                    "host_wide": host_wide(small, args.seed, RATES)}
        else:
            part = {"cost": fresh_process_cost(1_000_000, args.seed)}
        print(json.dumps(part, indent=2))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(part, fh, indent=2)
        return 0
    result = run(args.seed, args.episodes, args.quick)
    render(result)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0 if result["pass"] else 1


__all__ = ["main", "run"]
