"""How numbers look in every human-facing renderer: one place, so they all agree.

Formatting only — no arithmetic beyond scaling a ratio to a percentage. A missing value
(``None``) is shown as an em dash everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from paystab.report.model import HypothesisResult, Report

MISSING = "—"


def pct(ratio: float | None, digits: int = 3) -> str:
    """0.99987 → ``99.987 %``; ratios near 1 keep enough digits to compare with 99.99 %."""
    if ratio is None:
        return MISSING
    return f"{ratio * 100:.{digits}f} %"


def ms(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def secs(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value:,.{digits}f} s"


def budget(used: float | None) -> str:
    """Error budget used: a percentage up to 10× the budget, then a multiple."""
    if used is None:
        return MISSING
    return f"{used * 100:.1f} %" if used < 10 else f"{used:,.0f}× the budget"


def count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def number(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


def minutes(value: float | None, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:,.{digits}f} min"


def rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.4g} /s"


def count_share(part: int | None, whole: int | None) -> str:
    """``914 (15.2 % of 6,010)``: a count with its share of the whole."""
    if part is None:
        return MISSING
    if not whole:
        return f"{part:,}"
    share = part / whole * 100
    return f"{part:,} ({share:.1f} %)" if share >= 1 or share == 0 else f"{part:,} ({share:.2g} %)"


_FAULT_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


def fault_name(fault_id: str) -> str:
    """The runbook's name of a fault: ``card-alpha-hangs-c69ff0d0`` → ``card-alpha-hangs``
    (the suffix only keeps injections of one fault apart in the journal)."""
    return _FAULT_SUFFIX.sub("", fault_id) or fault_id


# Words people read for the keys of the report's ``load``, ``harness`` and ``provenance``
# sections; a key not listed is spelled out from its name (``_`` → space, unit suffix off).
KEY_LABELS = {
    "profile": "load profile", "rate_per_s": "target rate", "duration_s": "load duration",
    "users": "checkout users", "arrivals": "arrivals scheduled", "dropped": "dropped arrivals",
    "dropped_ratio": "dropped arrivals share", "generator_lag_p99_ms": "generator lag p99",
    "generator_lag_max_ms": "generator lag max", "cpu_s": "load generator CPU time",
    "cpu_share": "load generator CPU share", "loop_lag_p99_ms": "event-loop lag p99",
    "loop_lag_max_ms": "event-loop lag max", "limits": "limits for a conclusive run",
    "paystab_version": "paystab version", "host": "host", "python": "Python",
    "runbook_file": "runbook file", "runbook_sha256": "runbook sha256", "seed": "seed",
    "command_line": "command line",
}
_UNIT_SUFFIXES = (("_per_s", "rate"), ("_ms", "ms"), ("_s", "s"), ("_ratio", "share"),
                  ("_share", "share"), ("_rate", "share"), ("_pct", "pct"))


def _unit(key: str) -> tuple[str, str]:
    """(key without its unit suffix, unit kind) — ``rate_per_s`` → (``rate``, ``rate``)."""
    for suffix, unit in _UNIT_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], unit
    if key in ("availability", "failure_rate", "share", "success"):
        return key, "share"
    return key, ""


def label(key: str) -> str:
    """What a person reads for a report key: ``generator_lag_p99_ms`` → ``generator lag p99``."""
    return KEY_LABELS.get(key) or _unit(key)[0].replace("_", " ").replace(".", " ")


def with_unit(key: str, value: Any) -> str:
    """``value`` of report key ``key`` with the unit the key's name carries."""
    if isinstance(value, dict):
        return ", ".join(f"{label(k)} {with_unit(k, v)}" for k, v in value.items())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return observed(value)
    unit = _unit(key.rsplit(".", 1)[-1])[1]
    if unit == "rate":
        return rate(value)
    if unit == "ms":
        return ms(value)
    if unit == "s":
        return f"{value:,.4g} s"
    if unit == "share":
        return pct(value, 3 if 0.99 < value < 1 else 2)
    if unit == "pct":
        return f"{value:g} %"
    return count(value) if isinstance(value, int) else observed(value)


def observed_value(hypothesis: HypothesisResult) -> str:
    """A hypothesis' observed value with the unit of what it judges (``mttr_s`` → s)."""
    metric = hypothesis.metric
    if metric.startswith("steady_state"):  # probes say what they measure in words
        text = hypothesis.expr
        metric = ("p95_ms" if "latency" in text else "availability" if "availability" in text
                  else metric)
    return with_unit(metric, hypothesis.observed)


def observed(value: Any) -> str:
    """A hypothesis' observed value: numbers compactly, dicts as ``k=v`` pairs."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={observed(v)}" for k, v in value.items())
    return str(value)


def expected(expr: str, stated: str = "") -> str:
    """What a hypothesis expected: its own ``expected`` text, else the expression."""
    return stated or expr


VERDICT_TEXT = {
    "pass": "PASS — the judged SLOs and payment invariants held",
    "fail": "FAIL — at least one hypothesis did not hold",
    "aborted": "ABORTED — the drill stopped early",
    "inconclusive": "INCONCLUSIVE — the measuring apparatus, not the stack, limited the run",
}


def verdict_line(report: Report) -> str:
    text = VERDICT_TEXT.get(report.verdict, report.verdict.upper())
    if report.verdict == "aborted" and report.abort_reason:
        text += f": {report.abort_reason}"
    if report.verdict == "inconclusive" and report.inconclusive_reason:
        text += f": {report.inconclusive_reason}"
    return text


STATUS_TEXT = {"pass": "pass", "fail": "fail", "not_applicable": "not applicable"}


def status(hypothesis: HypothesisResult) -> str:
    """``pass``, ``fail`` or ``not applicable`` (a hypothesis with ``ok`` null)."""
    key = hypothesis.status or ("not_applicable" if hypothesis.ok is None
                                else "pass" if hypothesis.ok else "fail")
    return STATUS_TEXT.get(key, key.replace("_", " "))


def hypothesis_text(hypothesis: HypothesisResult) -> str:
    """What a hypothesis expected; a not-applicable one also says why it was not judged."""
    if status(hypothesis) == "not applicable":
        why = f": {hypothesis.expected}" if hypothesis.expected else ""
        return f"{hypothesis.expr} — not applicable{why}"
    return expected(hypothesis.expr, hypothesis.expected)


@dataclass(frozen=True)
class Judgement:
    """How an SLO card or row stands in the verdict: ``state`` is ``pass``, ``fail``,
    ``not applicable`` or ``not judged`` (no runbook hypothesis names that metric)."""

    state: str
    expr: str = ""

    @property
    def judged(self) -> bool:
        return self.state in ("pass", "fail")

    @property
    def ok(self) -> bool | None:
        return None if not self.judged else self.state == "pass"

    @property
    def label(self) -> str:
        if self.state == "not judged":
            return "not judged: not part of the verdict"
        if self.state == "not applicable":
            return f"not applicable: {self.expr}"
        return f"judged {self.state}: {self.expr}"


def judgement(report: Report, *metrics: str) -> Judgement:
    """The verdict on ``metrics`` (all of them must be judged; any fail fails)."""
    found = [report.judgement(m) for m in metrics]
    if not found or any(h is None for h in found):
        return Judgement("not judged")
    states = [status(h) for h in found if h is not None]
    exprs = "; ".join(h.expr for h in found if h is not None)
    for state in ("fail", "not applicable"):
        if state in states:
            return Judgement(state, exprs)
    return Judgement("pass", exprs)


def false_failover_line(report: Report) -> str:
    """``0 false failovers (grace 5 s)`` — a drain outside every fault window + grace."""
    ff = report.false_failovers
    noun = "false failover" if ff.count == 1 else "false failovers"
    return f"{ff.count:,} {noun} (drains outside every injected fault's window + {ff.grace_s:g} s grace)"


def recon_ok(value: int | None) -> bool | None:
    """A reconciliation count holds when it is 0; None when it was not measured."""
    return None if value is None else value == 0


INVARIANTS = (
    ("double_charges", "no payment captured twice"),
    ("lost_payments", "no customer told 'paid' without a capture"),
    ("orphans", "no capture the gateway reports as failed"),
    ("amount_mismatches", "no capture in another currency or short of the order"),
)
