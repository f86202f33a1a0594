"""The detection benchmark's request-level part: one provider among four behind one host
(hang, latency shifts), and host-wide episodes that must not alarm anybody."""

from __future__ import annotations

import time
from typing import Any

from benchmarks._detection_common import GATEWAY_TIMEOUT_S, PEERS, TARGETS, _rng, _summary
from paystab.anomaly.corpus import RequestEpisode, request_rounds
from paystab.anomaly.hang import HangConfig, HangDetector
from paystab.anomaly.latency import LatencyDetector


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
