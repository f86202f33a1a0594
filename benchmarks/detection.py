"""Detection benchmark: paystab's detectors vs the optimal CUSUM and today's alert rules.

``python -m benchmarks detection [--json out.json] [--seed N] [--episodes N] [--quick]``

Seeded and reproducible. On a labelled corpus (``paystab.anomaly.corpus``) at 10, 100 and
1000 attempts/s with a 0.5 % baseline failure rate it measures, per scenario: median, p90
and mean detection delay, the exact delay of the optimal known-parameter CUSUM at the same
false-alarm rate (Markov chain, ``paystab.anomaly.arl``), their ratio, false alarms per 24 h
of traffic (long no-change runs), precision, recall and the detector's cost per attempt; the
same for three baselines (a fixed 1 % over 1 min, a Prometheus rule every 15 s with
``for: 1m``, Envoy's 5 consecutive 5xx with a 10 s sweep). Then hangs and latency shifts
(request-level simulation sampled every 100 ms) and the episodes that must not alarm.
Targets are checked and written to the JSON with pass/fail.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from functools import cache
from typing import Any

import numpy as np

from paystab.anomaly.arl import optimal_delay
from paystab.anomaly.corpus import (
    Noise,
    RequestEpisode,
    failure_indices,
    noisy_stream,
    request_rounds,
    request_samples,
    step_stream,
    stream,
)
from paystab.anomaly.evaluation import (
    BASELINES,
    baseline_alarms,
    first_alarm_after,
    percentile,
    run_cusum,
    run_samples,
)
from paystab.anomaly.failure_rate import CusumBank, FailureRateConfig
from paystab.anomaly.hang import HangConfig, HangDetector
from paystab.anomaly.latency import LatencyDetector

P0 = 0.005
RATES = (10, 100, 1000)
SHIFTS = (0.02, 0.05, 0.2, 1.0)
WARMUP_S = {10: 7200, 100: 3600, 1000: 1800}
H0_DAYS = {10: 100.0, 100: 20.0, 1000: 5.0}
GATEWAY_TIMEOUT_S = 2.0
TARGETS = {"ratio_max": 1.5, "false_alarms_per_24h_max": 1.0,
           "hang_delay_max_s": GATEWAY_TIMEOUT_S / 2, "must_not_alarm": 0, "us_per_obs_max": 2.0,
           "worst_observe_ms_max": 1.0, "recall_1_from_shift": 0.05}
OPTIMUM_HORIZON_H = 24.0  # the yardstick: the optimal CUSUM at one false alarm per day
VOLUMES = (1, 5, 50, 300, 1000)  # the noisy corpus: mean attempts/s of one provider
NOISY_DAYS = {1: 30.0, 5: 20.0, 50: 8.0, 300: 3.0, 1000: 2.0}
NOISY_WARM_S = 4 * 3600  # a change comes 4-5 h into the provider's traffic
PEERS = {"psp-a": 80.0, "psp-b": 120.0, "psp-c": 60.0, "psp-d": 200.0}  # median latency ms


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _summary(delays: list[float], episodes: int, false_alarms: int) -> dict[str, Any]:
    detected = len(delays)
    return {
        "episodes": episodes, "detected": detected,
        "median_delay_s": percentile(delays, 50), "p90_delay_s": percentile(delays, 90),
        "mean_delay_s": float(np.mean(delays)) if delays else None,
        "max_delay_s": max(delays) if delays else None,
        "recall": detected / episodes if episodes else None,
        "precision": detected / (detected + false_alarms) if detected + false_alarms else None,
    }


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


# -- the noisy corpus (issue 12): false alarms per provider-day, delays vs the optimum -----


@cache
def _optimal_attempts(p0: float, p1: float, arl0: float) -> float:
    return optimal_delay(p0, p1, arl0, states=2000, tolerance=2e-3)[1]


def optimal_at(p0: float, p1: float, rate: float, cfg: FailureRateConfig) -> float:
    """Mean delay (attempts) of the known-parameter CUSUM at the local baseline and rate,
    with one false alarm per 24 h of traffic at that rate (the target) (quantised:
    p0 to 0.01 %, the ARL to 2^(1/2), so episodes share solves)."""
    p0_q = max(1e-4, round(p0, 4))
    arl0 = OPTIMUM_HORIZON_H * 3600.0 * max(rate, 0.01)
    arl_q = 2.0 ** (round(math.log2(arl0) * 2) / 2)
    return _optimal_attempts(p0_q, min(p1, 0.995), arl_q)


def noisy_false_alarms(cfg: FailureRateConfig, volume: int, days: float, seed: int
                       ) -> dict[str, Any]:
    """One provider's bank over ``days`` of noisy traffic, day after day (no change)."""
    bank = CusumBank(cfg)
    alarms: list[float] = []
    after_cluster, clusters, attempts, cpu = 0, 0, 0, 0.0
    day = 0
    while day < days:
        length = int(min(1.0, days - day) * 86400)
        ns = noisy_stream(_rng(seed, 10, volume, day), Noise(float(volume)), length)
        run = run_cusum(ns.stream, cfg, bank=bank, t_offset=day * 86400.0)
        cpu += run.cpu_s
        attempts += ns.stream.attempts
        clusters += len(ns.clusters)
        marks = np.asarray(ns.clusters) + day * 86400.0
        for t in run.false_alarms:
            alarms.append(t)
            after_cluster += bool(len(marks) and np.any((t >= marks) & (t - marks < 300.0)))
        day += 1
    return {"volume": volume, "days": days, "alarms": len(alarms),
            "per_day": len(alarms) / days, "alarms_within_5min_of_a_cluster": after_cluster,
            "clusters": clusters, "attempts": attempts,
            "us_per_attempt": cpu / max(attempts, 1) * 1e6,
            "pass": len(alarms) / days <= TARGETS["false_alarms_per_24h_max"]}


def noisy_changes(cfg: FailureRateConfig, volume: int, shift: float, episodes: int, seed: int
                  ) -> dict[str, Any]:
    """Steps to ``shift`` 4-5 h into noisy traffic; each delay against the optimum at the
    baseline and rate the provider had at the change."""
    ratios, delays, optimal_s, missed, pre_alarms = [], [], [], 0, 0
    nominal = optimal_at(0.005, shift, volume, cfg) / volume
    horizon = int(min(6 * 3600.0, max(600.0, 40.0 * nominal)))
    for e in range(episodes):
        rng = _rng(seed, 11, volume, int(shift * 1000), e)
        change_s = NOISY_WARM_S + int(rng.integers(0, 3600))
        ns = noisy_stream(rng, Noise(float(volume)), change_s + horizon, float(change_s), shift)
        s = ns.stream
        change_index = s.index_at(change_s)
        rate = float(ns.rates[change_s])
        p0 = float(ns.baseline[change_s])
        optimum = optimal_at(p0, shift, rate, cfg)
        run = run_cusum(s, cfg, change_index, s.attempts - 1)
        pre_alarms += len(run.false_alarms)
        if run.detected_index is None or run.detected_at is None:
            missed += 1
            continue
        delays.append(run.detected_at - float(s.time_of(change_index)[0]))
        ratios.append((run.detected_index - change_index + 1) / optimum)
        optimal_s.append(optimum / max(rate, 1e-9))
    row: dict[str, Any] = {
        "volume": volume, "shift": shift, "episodes": episodes, "detected": len(delays),
        "recall": len(delays) / episodes, "median_delay_s": percentile(delays, 50),
        "p90_delay_s": percentile(delays, 90), "median_optimal_s": percentile(optimal_s, 50),
        "median_ratio": percentile(ratios, 50), "p90_ratio": percentile(ratios, 90),
        "false_alarms_before_change": pre_alarms, "horizon_s": horizon,
        "ratios": ratios, "optimal_s": optimal_s,
    }
    # recall is judged per class; the delay on the pooled median (see noisy())
    row["pass"] = row["recall"] == 1.0 or shift < TARGETS["recall_1_from_shift"]
    return row


def noisy(cfg: FailureRateConfig, episodes: int, seed: int, quick: bool,
          volumes: tuple[int, ...] = VOLUMES) -> dict[str, Any]:
    scale = 0.1 if quick else 1.0
    changes = [noisy_changes(cfg, v, shift, episodes, seed) for v in volumes for shift in SHIFTS]
    judged = [r for r in changes if r["shift"] >= TARGETS["recall_1_from_shift"]]
    pairs = [(x, o) for r in judged for x, o in zip(r["ratios"], r["optimal_s"], strict=True)]
    slow = [x for x, o in pairs if o >= 2.0]
    pooled: dict[str, Any] = {
        "changes": len(pairs),
        "median_ratio": percentile([x for x, _ in pairs], 50),
        "changes_optimum_ge_2s": len(slow),
        "median_ratio_optimum_ge_2s": percentile(slow, 50),
        "per_shift_median_ratio": {
            f"{shift:g}": percentile([x for r in changes if r["shift"] == shift
                                      for x in r["ratios"]], 50) for shift in SHIFTS},
    }
    pooled["pass"] = (pooled["median_ratio"] is not None
                      and pooled["median_ratio"] <= TARGETS["ratio_max"]
                      and (not slow or (pooled["median_ratio_optimum_ge_2s"] is not None
                           and pooled["median_ratio_optimum_ge_2s"] <= TARGETS["ratio_max"])))
    return {
        "false_alarms": [noisy_false_alarms(cfg, v, max(1.0, NOISY_DAYS[v] * scale), seed)
                         for v in volumes],
        "changes": changes,
        "delay": pooled,
    }


# -- request level, several providers behind one host --------------------------------------


def _round_episodes(rate: float, seconds: float, target: dict[str, Any] | None = None,
                    **host: Any) -> dict[str, RequestEpisode]:
    """Four providers with their own latencies; ``target`` params apply to psp-a only."""
    out = {}
    for name, median in PEERS.items():
        params = dict(host)
        if name == "psp-a" and target:
            params.update(target)
        out[name] = RequestEpisode(rate=rate, seconds=seconds, median_ms=median, **params)
    return out


def _run_rounds(rounds: list[list[Any]]) -> dict[str, list[Any]]:
    detectors: dict[str, HangDetector | LatencyDetector] = {
        "hang": HangDetector(HangConfig(gateway_timeout_s=GATEWAY_TIMEOUT_S)),
        "latency": LatencyDetector()}
    found: dict[str, list[Any]] = {k: [] for k in detectors}
    for samples in rounds:
        for sample in samples:
            for name, detector in detectors.items():
                detection = detector.update(sample)
                if detection is not None:
                    found[name].append(detection)
    return found


def request_level(episodes: int, seed: int, rates: tuple[int, ...]) -> list[dict[str, Any]]:
    """Hangs and latency shifts of one provider among four, sampled every 100 ms, through
    the real detectors (one instance fed every provider, as the failover controller does)."""
    kinds: dict[str, dict[str, float]] = {
        "hang": dict(hang_ratio=1.0),
        "latency x2": dict(latency_factor=2.0),
        "latency +300ms": dict(added_ms=300.0),
    }
    rows = []
    warm = 60.0
    for name, params in kinds.items():
        detector_name = "hang" if name == "hang" else "latency"
        for rate in rates:
            delays, fas, cpu, calls = [], 0, 0.0, 0
            for e in range(episodes):
                rng = _rng(seed, 3, rate, len(name), e)
                event = warm + float(rng.uniform(0, 1))
                rounds = request_rounds(rng, _round_episodes(
                    rate, event + 15.0, dict(params, event_s=event)))
                started = time.perf_counter()
                found = _run_rounds(rounds)[detector_name]
                cpu += time.perf_counter() - started
                calls += sum(len(r) for r in rounds) * 2
                fas += sum(1 for d in found if d.at < event or d.provider != "psp-a")
                hit = [d.at for d in found if d.at >= event and d.provider == "psp-a"]
                if hit:
                    delays.append(hit[0] - event)
            row = {"scenario": name + " (1 of 4 providers)", "kind": name.split()[0],
                   "rate": rate, "detector": detector_name, **_summary(delays, episodes, fas),
                   "false_alarms": fas, "us_per_sample": cpu / calls * 1e6}
            if name == "hang":
                row["pass"] = (row["max_delay_s"] is not None and row["recall"] == 1.0
                               and row["max_delay_s"] < TARGETS["hang_delay_max_s"] and fas == 0)
            rows.append(row)
    return rows


HOST_WIDE: tuple[tuple[str, float, dict[str, Any], dict[str, Any]], ...] = (
    ("host-wide: every latency x3 for 30 s", 150.0, {},
     dict(host_start_s=120.0, host_s=30.0, host_factor=3.0)),
    ("host-wide: loop stalls 0.4 s every 1 s for 20 s", 150.0, {},
     dict(host_start_s=120.0, host_s=20.0, stall_every_s=1.0, stall_s=0.4)),
    ("host-wide: x2 latency and 0.6 s stalls every 2 s", 150.0, {},
     dict(host_start_s=120.0, host_s=20.0, host_factor=2.0, stall_every_s=2.0, stall_s=0.6)),
    ("starved load generator: 1 s gaps every 2 s for 20 s", 150.0, {},
     dict(host_start_s=120.0, host_s=20.0, starve_every_s=2.0, starve_s=1.0)),
    ("cold start: x4 latency and a 0.5 s stall in the first 5 s", 30.0, {},
     dict(host_start_s=0.0, host_s=5.0, host_factor=4.0, stall_every_s=2.5, stall_s=0.5)),
    ("one slow request (5 s) on one provider", 150.0, dict(event_s=120.0, slow_request_s=5.0),
     {}),
    ("surge 10x for 30 s on every provider", 150.0, {},
     dict(event_s=120.0, surge_factor=10.0, surge_s=30.0)),
)


def host_wide(episodes: int, seed: int, rates: tuple[int, ...]) -> list[dict[str, Any]]:
    """Episodes that must not alarm the hang or latency detector on any provider."""
    rows = []
    for k, (name, seconds, target, host) in enumerate(HOST_WIDE):
        for rate in rates:
            alarms = {"hang": 0, "latency": 0}
            for e in range(episodes):
                rng = _rng(seed, 8, rate, k, e)
                found = _run_rounds(request_rounds(rng, _round_episodes(rate, seconds, target,
                                                                        **host)))
                for det, hits in found.items():
                    alarms[det] += len(hits)
            rows.append({"scenario": name, "kind": "must_not_alarm", "rate": rate,
                         "episodes": episodes, "alarms": alarms,
                         "pass": sum(alarms.values()) == 0})
    return rows


# -- cost in a fresh process -------------------------------------------------------------

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
alarms = 0
t0 = clock()
for f, t in zip(failed, times):
    a = clock()
    c = cpu()
    if observe(f, t) >= 0:
        alarms += 1
    c = cpu() - c
    b = clock() - a
    if c > worst:
        worst = c
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
                  "worst_observe_wall_ms": worst_wall / 1e6, "calls_over_1ms_wall": over_1ms_wall,
                  "alarms": alarms, "setup_s": import_s}))
"""


def fresh_process_cost(observations: int, seed: int) -> dict[str, Any]:
    """The first ``observations`` of a fresh process: mean µs per ``observe()`` (a second,
    untimed pass on a new bank in the same process) and the worst single call, timed one
    by one in thread CPU time (what the code costs: solving a threshold would show here).
    Its wall time is reported too: on a shared machine a call can be preempted for a
    scheduler tick or more, which is not the detector's doing."""
    out = subprocess.run([sys.executable, "-c", _COST_CHILD, str(observations), str(seed)],
                         capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    result["pass"] = (result["mean_us"] <= TARGETS["us_per_obs_max"]
                      and result["worst_observe_ms"] <= TARGETS["worst_observe_ms_max"])
    return result


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
    console.print(f"fresh process, first {c['observations']:,} observations: "
                  f"{c['mean_us']:.3f} µs/observation ({c['mean_us_net_of_loop']:.3f} net of the "
                  f"loop), worst single observe() {c['worst_observe_ms']:.3f} ms (targets ≤ "
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
