"""How numbers look in every human-facing renderer: one place, so they all agree.

Formatting only — no arithmetic beyond scaling a ratio to a percentage. A missing value
(``None``) is shown as an em dash everywhere.
"""

from __future__ import annotations

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
)
