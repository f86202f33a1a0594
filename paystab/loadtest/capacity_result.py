"""Capacity search results and settings: steps, the latency curve, headroom (no Locust).

Kept apart from the search itself (``capacity``, which runs Locust) so the CLI can validate
settings before any network traffic and renderers can format results without importing
Locust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from paystab.exceptions import InvalidInput
from paystab.loadtest.stats import Summary

DEFAULT_THRESHOLDS = ("failure_rate<0.005", "p(99)<500", "dropped_rate<0.01")


@dataclass(frozen=True)
class CapacityStep:
    rate: float
    summary: Summary
    ok: bool
    breached: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        s = self.summary.to_json()
        return {"rate": self.rate, "ok": self.ok, "breached": list(self.breached),
                "achieved_rps": s["rps"], "requests": s["requests"],
                "failure_rate": s["failure_rate"], "dropped_rate": s["dropped_rate"],
                "p50_ms": s["p50_ms"], "p95_ms": s["p95_ms"], "p99_ms": s["p99_ms"]}


@dataclass
class CapacityResult:
    capacity_rps: float  # highest passing rate (0.0 if even the first step failed)
    first_failing_rps: float | None  # None: never failed up to max_rps
    thresholds: list[str]
    steps: list[CapacityStep] = field(default_factory=list)
    expected_peak: float | None = None
    elapsed_s: float = 0.0
    interrupted: bool = False
    max_rps: float = 0.0

    @property
    def headroom(self) -> float | None:
        """capacity / expected peak (≥ 1 means the peak fits)."""
        if not self.expected_peak:
            return None
        return self.capacity_rps / self.expected_peak

    @property
    def passed(self) -> bool:
        return self.headroom is None or self.headroom >= 1.0

    def curve(self) -> list[CapacityStep]:
        return sorted(self.steps, key=lambda s: s.rate)

    def to_json(self) -> dict[str, Any]:
        headroom = self.headroom
        return {
            "schema": "paystab.capacity/v1", "capacity_rps": self.capacity_rps,
            "first_failing_rps": self.first_failing_rps,
            "limited_by_max_rps": self.first_failing_rps is None, "max_rps": self.max_rps,
            "thresholds": self.thresholds, "expected_peak": self.expected_peak,
            "headroom": headroom,
            "headroom_pct": None if headroom is None else round((headroom - 1) * 100, 2),
            "passed": self.passed, "elapsed_s": round(self.elapsed_s, 2),
            "interrupted": self.interrupted,
            "steps": [s.to_json() for s in self.steps],
            "curve": [s.to_json() for s in self.curve()],
        }


def validate_search(start_rps: float, max_rps: float, step_s: float, settle_s: float,
              max_time_s: float, tolerance: float, growth: float) -> None:
    def bad(source: str, value: float, expected: str) -> InvalidInput:
        return InvalidInput(f"{value:g} is not allowed", source=source, expected=expected)

    if not start_rps > 0 or math.isinf(start_rps):
        raise bad("--start-rps", start_rps, "a rate > 0")
    if not max_rps >= start_rps or math.isinf(max_rps):
        raise bad("--max-rps", max_rps, f"a rate >= --start-rps ({start_rps:g})")
    if not step_s > 0:
        raise bad("--step", step_s, "a step length > 0 s")
    if settle_s < 0:
        raise bad("--settle", settle_s, "a settle time >= 0 s")
    if not max_time_s >= step_s + settle_s:
        raise bad("--max-time", max_time_s, f"at least one step ({step_s + settle_s:g} s)")
    if not 0 < tolerance < 1:
        raise bad("--tolerance", tolerance, "a share between 0 and 1, e.g. 0.05")
    if not growth > 1:
        raise bad("growth", growth, "a factor > 1")
