"""Hypotheses: assertions on the drill report, such as ``availability >= 0.9999``.

A runbook states what must hold after the drill; the verdict is the conjunction. An
expression is a comparison ``VARIABLE OP VALUE`` (``<``, ``<=``, ``>``, ``>=``, ``==``,
``!=``) with VALUE a number (``0.9999``, ``99.99%``, ``300``), ``true``/``false`` or
``null``; several may be joined with ``and``. It is tokenised and parsed here — never
``eval``-ed — and every variable must be one of :data:`VARIABLES`, checked when the
runbook loads. :meth:`Hypothesis.evaluate` reads the report (schema v1, as a dict) and
returns what the report's ``hypotheses`` entry needs: ``expr``, ``observed``, ``ok``.
A variable the report leaves ``null`` fails any numeric comparison (an unmeasured
invariant does not pass) — except where ``null`` means the target does not provide that
data at all (:data:`NOT_PROVIDED`: a stack without ledgers to reconcile): such a hypothesis
is *not applicable*, ``ok`` is ``None``, shown in the report and never counted as a pass
or a failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paystab.comparison import Comparison as ParsedComparison
from paystab.comparison import holds, match_comparison

Report = Mapping[str, Any]


def _traffic(key: str) -> Callable[[Report], Any]:
    return lambda r: (r.get("traffic") or {}).get(key)


def _recon(key: str) -> Callable[[Report], Any]:
    return lambda r: (r.get("reconciliation") or {}).get(key)


def _count(key: str, **match: str) -> Callable[[Report], Any]:
    def get(report: Report) -> int:
        items = report.get(key) or []
        return sum(1 for i in items if all(i.get(k) == v for k, v in match.items()))
    return get


def _worst(key: str) -> Callable[[Report], Any]:
    """Largest per-incident value; null if any incident never got there."""
    def get(report: Report) -> Any:
        values = [i.get(key) for i in report.get("incidents") or []]
        if not values:
            return 0.0
        return None if any(v is None for v in values) else max(values)
    return get


def _failure_rate(report: Report) -> Any:
    traffic = report.get("traffic") or {}
    requests = traffic.get("requests")
    return None if not requests else (traffic.get("failed") or 0) / requests


VARIABLES: dict[str, tuple[Callable[[Report], Any], str]] = {
    "availability": (_traffic("availability"), "(approved + declined) / requests"),
    "failure_rate": (_failure_rate, "failed / requests"),
    "requests": (_traffic("requests"), "customer requests made"),
    "approved": (_traffic("approved"), "approved payments"),
    "declined": (_traffic("declined"), "customer declines"),
    "failed": (_traffic("failed"), "payments with no answer (5xx)"),
    "p50_ms": (_traffic("p50_ms"), "median customer latency"),
    "p95_ms": (_traffic("p95_ms"), "95th percentile customer latency"),
    "p99_ms": (_traffic("p99_ms"), "99th percentile customer latency"),
    "mttr_s": (lambda r: r.get("mttr_s"), "mean time to recovery"),
    "duration_s": (lambda r: r.get("duration_s"), "drill length"),
    "double_charges": (_recon("double_charges"), "captured twice for one payment"),
    "lost_payments": (_recon("lost_payments"), "customer told paid, nothing captured"),
    "orphans": (_recon("orphans"), "captured, gateway says failed"),
    "amount_mismatches": (_recon("amount_mismatches"),
                          "captured in another currency, or less than the order"),
    "voided_late_successes": (_recon("voided_late_successes"), "late successes voided"),
    "faults": (_count("faults"), "faults injected"),
    "detections": (_count("detections"), "anomalies detected"),
    "failovers": (_count("failovers"), "failover actions"),
    "drains": (_count("failovers", action="drain"), "providers drained"),
    "restores": (_count("failovers", action="restore"), "providers restored"),
    "degrades": (_count("failovers", action="degrade"), "degraded-mode decisions"),
    "max_ttd_s": (_worst("ttd_s"), "worst time to detect over incidents"),
    "max_ttm_s": (_worst("ttm_s"), "worst time to mitigate (drain)"),
    "max_ttr_s": (_worst("ttr_s"), "worst time to recover"),
    "false_failovers": (lambda r: (r.get("false_failovers") or {}).get("count", 0),
                        "drains with no injected fault on that provider to explain them"),
    "dropped_arrivals": (_traffic("dropped_arrivals"), "arrivals the load generator could not send"),
}
# Variables whose null means "the target does not provide this", with the reason shown.
NOT_PROVIDED: dict[str, str] = {
    name: "the target has no ledgers to reconcile"
    for name in ("double_charges", "lost_payments", "orphans", "amount_mismatches",
                 "voided_late_successes")
}
# Also accepted: the report's own paths, e.g. traffic.availability.
ALIASES = {f"traffic.{k}": k for k in ("availability", "requests", "approved", "declined",
                                       "failed", "p50_ms", "p95_ms", "p99_ms")}
ALIASES.update({f"reconciliation.{k}": k for k in ("double_charges", "lost_payments",
                                                   "orphans", "amount_mismatches",
                                                   "voided_late_successes")})

_AND = re.compile(r"\s+and\b")  # between comparisons of the shared grammar
_SHAPE = "VARIABLE OP VALUE, e.g. availability >= 0.9999"


class HypothesisError(ValueError):
    def __init__(self, problem: str, expected: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected


@dataclass(frozen=True)
class Comparison:
    variable: str
    op: str
    value: float | bool | None

    def holds(self, observed: Any) -> bool:
        if self.value is None or isinstance(self.value, bool):
            return holds(self.op, observed, self.value) if self.op in ("==", "!=") else False
        if observed is None or isinstance(observed, bool):
            return self.op == "!="
        return holds(self.op, float(observed), self.value)


@dataclass(frozen=True)
class HypothesisResult:
    expr: str
    observed: Any
    ok: bool | None  # None: not applicable (see NOT_PROVIDED)
    expected: str = ""

    def to_json(self) -> dict[str, Any]:
        status = "not_applicable" if self.ok is None else ("pass" if self.ok else "fail")
        return {"expr": self.expr, "observed": self.observed, "ok": self.ok, "status": status,
                "expected": self.expected}


@dataclass(frozen=True)
class Hypothesis:
    """One parsed assertion; ``line`` is where the runbook states it."""

    expr: str
    comparisons: tuple[Comparison, ...]
    line: int | None = None

    @classmethod
    def parse(cls, text: str, line: int | None = None) -> Hypothesis:
        """Parse ``text``; raises :class:`HypothesisError` naming what was expected."""
        if not text.strip():
            raise HypothesisError("empty hypothesis", "VARIABLE OP NUMBER")
        comparisons = []
        position = 0
        while True:
            found = match_comparison(text, position)
            if found is None:
                raise HypothesisError(f"cannot read {text!r}", _SHAPE)
            comparisons.append(_comparison(found))
            rest = text[found.end:]
            if not rest.strip():
                break
            joiner = _AND.match(text, found.end)
            if joiner is None:
                raise HypothesisError(f"unexpected {rest.split()[0]!r} in {text!r}",
                                      "'and' between comparisons")
            position = joiner.end()
        return cls(expr=" ".join(text.split()), comparisons=tuple(comparisons), line=line)

    def evaluate(self, report: Report) -> HypothesisResult:
        observed = {c.variable: VARIABLES[c.variable][0](report) for c in self.comparisons}
        shown = observed[self.comparisons[0].variable] if len(observed) == 1 else observed
        missing = [c.variable for c in self.comparisons if c.value is not None
                   and observed[c.variable] is None and c.variable in NOT_PROVIDED]
        if missing:
            return HypothesisResult(self.expr, shown, None,
                                    f"not applicable: {NOT_PROVIDED[missing[0]]}")
        ok = all(c.holds(observed[c.variable]) for c in self.comparisons)
        return HypothesisResult(self.expr, shown, ok)


def _comparison(found: ParsedComparison) -> Comparison:
    name = ALIASES.get(found.name, found.name)
    if name not in VARIABLES:
        from paystab.suggest import did_you_mean

        meant = did_you_mean(found.name, [*VARIABLES, *ALIASES])
        raise HypothesisError(f"unknown report variable '{found.name}'{meant}",
                              "one of " + ", ".join(sorted(VARIABLES)))
    value: float | bool | None
    if found.number is not None and found.unit in (None, "%"):
        value = found.ratio()
    elif found.word in ("true", "false", "null"):
        value = None if found.word == "null" else found.word == "true"
        if found.op not in ("==", "!="):
            raise HypothesisError(f"'{found.op} {found.word}' compares nothing", "== or != with it")
    else:
        raw = found.word or f"{found.number_text}{found.unit}"
        raise HypothesisError(f"'{raw}' is not a value", "a number, true, false or null")
    return Comparison(name, found.op, value)
