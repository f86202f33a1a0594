"""Was the measuring apparatus itself the bottleneck? The drill's own health, judged.

A drill measures the stack through a load generator running on the same (often shared)
machine. When that generator cannot keep its schedule — out of CPU, its event loop late,
arrivals dropped — latencies and rates in the report describe the generator as much as the
stack, so neither a pass nor a fail can be trusted. :func:`judge` turns what the harness
measured about itself into a reason for the verdict ``inconclusive`` (exit 4), or None.

Three signals, each read where it is cheapest and most direct:

* **dropped arrivals**: the open-model pacer counts arrivals it could not issue in time;
  beyond :data:`MAX_DROPPED_RATIO` the offered load was not the runbook's.
* **generator lateness**: every checkout carries ``lag_ms``, scheduled arrival → start;
  a p99 beyond :data:`MAX_GENERATOR_LAG_MS` means customer arrivals bunched up.
* **harness loop lag**: :class:`LoopLagProbe` asks to wake every 100 ms and records how
  late it woke; a late loop also delays reading answers, inflating measured latency.

The thresholds sit an order of magnitude above what a quiet 2-core machine shows (p99 loop
lag ≈ 1–5 ms, generator lag < 10 ms, no drops at the bundled rates) and below what bends
the SLO judgement (p95 ≤ 500 ms): at 250 ms of lag, a measured p95 could be half harness.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from paystab.stats_math import percentile

MAX_DROPPED_RATIO = 0.01
MAX_GENERATOR_LAG_MS = 250.0
MAX_LOOP_LAG_MS = 250.0
LOOP_TICK_S = 0.1


class LoopLagProbe:
    """Measures how late the drill process's (gevent) loop wakes a sleeper, every 100 ms."""

    def __init__(self, tick_s: float = LOOP_TICK_S) -> None:
        self.tick_s = tick_s
        self.lags_ms: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="paystab-loop-lag", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            asked = time.monotonic()
            if self._stop.wait(self.tick_s):
                return
            self.lags_ms.append(max(0.0, (time.monotonic() - asked - self.tick_s) * 1000.0))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def summary(self) -> dict[str, float | None]:
        lags = sorted(self.lags_ms)
        return {"loop_lag_p99_ms": _round(percentile(lags, 99.0)),
                "loop_lag_max_ms": _round(max(lags)) if lags else None}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def harness_figures(generator: dict[str, Any], elapsed_s: float, lags_ms: Sequence[float],
                    probe: LoopLagProbe) -> dict[str, Any]:
    """What the report's ``harness`` section holds: the generator's own health."""
    issued = int(generator.get("issued", 0) or 0)
    dropped = int(generator.get("dropped", 0) or 0)
    offered = issued + dropped
    cpu_s = float(generator.get("cpu_s", 0.0) or 0.0)
    return {
        "arrivals": offered, "dropped": dropped,
        "dropped_ratio": round(dropped / offered, 6) if offered else 0.0,
        "generator_lag_p99_ms": _round(percentile(sorted(lags_ms), 99.0)),
        "generator_lag_max_ms": generator.get("max_lag_ms"),
        "cpu_s": round(cpu_s, 3),
        "cpu_share": round(cpu_s / elapsed_s, 3) if elapsed_s > 0 else None,
        **probe.summary(),
        "limits": {"dropped_ratio": MAX_DROPPED_RATIO, "generator_lag_p99_ms": MAX_GENERATOR_LAG_MS,
                   "loop_lag_p99_ms": MAX_LOOP_LAG_MS},
    }


def judge(figures: dict[str, Any]) -> str | None:
    """The reason the load generator, not the stack, decided the run; None when it kept up."""
    reasons = []
    if figures["dropped_ratio"] > MAX_DROPPED_RATIO:
        reasons.append(f"the load generator dropped {figures['dropped']} of {figures['arrivals']} "
                       f"arrivals ({figures['dropped_ratio']:.1%} > {MAX_DROPPED_RATIO:.0%}): "
                       "it could not offer the runbook's rate")
    lag = figures.get("generator_lag_p99_ms")
    if lag is not None and lag > MAX_GENERATOR_LAG_MS:
        reasons.append(f"checkouts started {lag:.0f} ms late at p99 (> {MAX_GENERATOR_LAG_MS:.0f} ms): "
                       "the load generator was starved of CPU")
    loop = figures.get("loop_lag_p99_ms")
    if loop is not None and loop > MAX_LOOP_LAG_MS:
        reasons.append(f"the drill's event loop woke {loop:.0f} ms late at p99 "
                       f"(> {MAX_LOOP_LAG_MS:.0f} ms): measured latencies include the harness's own delay")
    return "; ".join(reasons) or None
