"""k6-style pass/fail criteria: ``failure_rate<0.005``, ``p(99)<500``, ``availability>=0.9999``.

An expression is ``METRIC OP NUMBER[UNIT]`` read by the shared grammar of
:mod:`paystab.comparison` (never ``eval``). Latency metrics are in milliseconds (``300ms``,
``0.3s`` also accepted); ratios accept ``%`` (``failure_rate<0.5%``). Every threshold is
checked over the whole run **and** over each window, so a ten-second burst of failures
inside a long run is not averaged away: the result names the windows that breached. A span
with no requests passes a window check (nothing happened) but fails the whole-run check
(the run measured nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from paystab.comparison import holds, match_comparison
from paystab.exceptions import InvalidInput
from paystab.loadtest.stats import Summary, Window

_RATIOS = ("failure_rate", "availability", "dropped_rate", "decline_rate")
_LATENCY_NAMES = {"avg": "avg_ms", "med": "p50_ms", "min": "min_ms", "max": "max_ms"}
_OPS = ("<=", ">=", "==", "<", ">")
# The NAME of the shared grammar (paystab/comparison.py) as a load metric.
_METRIC = re.compile(r"(?P<metric>[a-z_]+)|p\(\s*(?P<pct>\d+(?:\.\d+)?)\s*\)"
                     r"|p(?P<short>\d{1,2}(?:\.\d+)?)")
ALLOWED = (
    "METRIC OP NUMBER, where METRIC is one of failure_rate, availability, dropped_rate, "
    "decline_rate (ratios 0..1, or with %), rps (requests/s), p(N) for 0<N<=100, p50, p95, "
    "p99, avg, med, min, max (latency in ms, or with ms/s); OP is one of <, <=, >, >=, ==; "
    "e.g. 'failure_rate<0.005', 'p(99)<500', 'availability>=0.9999', 'dropped_rate<0.01'"
)


@dataclass(frozen=True)
class Threshold:
    expr: str
    metric: str  # failure_rate … | rps | latency
    op: str
    value: float  # ratios 0..1, rps, or milliseconds
    pct: float | None = None  # for p(N)
    stat: str | None = None  # avg_ms, p50_ms … for named latency stats

    def observe(self, summary: Summary) -> float:
        if self.metric == "rps":
            return summary.rps
        if self.metric in _RATIOS:
            return float(getattr(summary, self.metric))
        if self.pct is not None:
            return summary.latency_percentile(self.pct)
        assert self.stat is not None
        return float(getattr(summary, self.stat))

    def holds(self, observed: float) -> bool:
        return not math.isnan(observed) and holds(self.op, observed, self.value)


def parse_threshold(text: str) -> Threshold:
    """Read one expression; anything else → InvalidInput listing what is allowed (exit 2)."""
    found = match_comparison(text)
    named = _METRIC.fullmatch(found.name) if found is not None else None
    if (found is None or named is None or found.op not in _OPS or found.number is None
            or text[found.end:].strip()):
        raise InvalidInput(f"cannot read threshold {text!r}", source="--threshold",
                           expected=ALLOWED)
    metric, op, unit, value = named["metric"], found.op, found.unit, found.number
    pct_text = named["pct"] or named["short"]
    normal = f"{found.name}{op}{found.number_text}{unit or ''}"
    if pct_text is not None:
        pct = float(pct_text)
        if not 0 < pct <= 100:
            raise InvalidInput(f"percentile {pct:g} is out of range in {text!r}",
                               source="--threshold", expected="p(N) with 0 < N <= 100")
        if unit == "%":
            raise InvalidInput(f"a latency cannot be a percentage in {text!r}",
                               source="--threshold", expected="milliseconds, or a 's' suffix")
        return Threshold(normal, "latency", op, value * (1000.0 if unit == "s" else 1.0), pct=pct)
    if metric in _LATENCY_NAMES:
        if unit == "%":
            raise InvalidInput(f"a latency cannot be a percentage in {text!r}",
                               source="--threshold", expected="milliseconds, or a 's' suffix")
        return Threshold(normal, "latency", op, value * (1000.0 if unit == "s" else 1.0),
                         stat=_LATENCY_NAMES[metric])
    if metric in _RATIOS:
        if unit in ("ms", "s"):
            raise InvalidInput(f"{metric} is a ratio, not a time, in {text!r}",
                               source="--threshold", expected="a number 0..1 or a percentage")
        return Threshold(normal, metric, op, value / 100.0 if unit == "%" else value)
    if metric == "rps":
        if unit is not None:
            raise InvalidInput(f"rps takes a bare number in {text!r}", source="--threshold",
                               expected="requests per second, e.g. rps>=100")
        return Threshold(normal, "rps", op, value)
    raise InvalidInput(f"unknown metric {metric!r} in threshold {text!r}", source="--threshold",
                       expected=ALLOWED)


def parse_thresholds(texts: Sequence[str]) -> list[Threshold]:
    return [parse_threshold(t) for t in texts]


@dataclass(frozen=True)
class Breach:
    window: int
    start_s: float
    end_s: float
    observed: float


@dataclass
class ThresholdResult:
    threshold: Threshold
    observed: float  # over the whole run
    ok_run: bool
    breaches: list[Breach] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ok_run and not self.breaches

    def describe(self) -> str:
        """One line naming the threshold and where it broke."""
        t = self.threshold
        obs = "no data" if math.isnan(self.observed) else f"{self.observed:.6g}"
        if self.ok:
            return f"{t.expr}: ok (run {obs})"
        parts = []
        if not self.ok_run:
            parts.append(f"whole run {obs}")
        for b in self.breaches[:5]:
            parts.append(f"window {b.window} [{b.start_s:g}s–{b.end_s:g}s) {b.observed:.6g}")
        if len(self.breaches) > 5:
            parts.append(f"… {len(self.breaches) - 5} more windows")
        return f"{t.expr}: BREACHED — " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        obs = None if math.isnan(self.observed) else self.observed
        return {
            "expr": self.threshold.expr, "observed": obs, "ok": self.ok, "ok_run": self.ok_run,
            "breaches": [{"window": b.window, "start_s": b.start_s, "end_s": b.end_s,
                          "observed": None if math.isnan(b.observed) else b.observed}
                         for b in self.breaches],
        }


def evaluate(
    thresholds: Sequence[Threshold], run: Summary, series: Sequence[Window] = (),
) -> list[ThresholdResult]:
    """Check each threshold on the whole run and on every window that saw any arrival."""
    results = []
    for t in thresholds:
        observed = t.observe(run)
        result = ThresholdResult(t, observed, t.holds(observed))
        for w in series:
            s = w.summary
            if s.requests + s.dropped == 0:
                continue
            value = t.observe(s)
            if math.isnan(value):
                # e.g. p(99) of a window whose arrivals were all dropped: dropped_rate judges it
                continue
            if not t.holds(value):
                result.breaches.append(Breach(w.index, s.start_s, s.end_s, value))
        results.append(result)
    return results
