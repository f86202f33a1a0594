"""The JUnit XML renderer: what CI systems show as test results for a drill.

One ``<testsuite>`` per drill (named ``paystab.drill.<runbook>``) holding:

* one testcase per hypothesis (classname ``….hypotheses``, name = the expression); a
  failing one carries ``<failure message="observed X; expected EXPR">``; a not-applicable
  one (``ok`` null: the target does not provide the data) is ``<skipped>`` with the reason,
  never a failure; the failure of ``false_failovers == 0`` lists the false drains;
* one testcase per reconciliation invariant (double charges, lost payments, orphans must
  be 0); an unmeasured one (``null``: the target has no ledgers) is ``<skipped>``;
* for an aborted drill, a ``drill ran to completion`` testcase with an ``<error>`` giving
  the reason, and for an inconclusive one a ``the measurement was sound`` testcase with an
  ``<error type="Inconclusive">`` naming the cause, so CI never shows either as green.

Drill facts (seed, verdict, availability, MTTR, false failovers, the SLO metrics no
hypothesis judged…) go in ``<properties>``. Characters XML 1.0 cannot carry (control
characters in a runbook name or a reason) are written as ``\\xNN``. The layout is the
common subset Jenkins, GitLab and GitHub test reporters read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from paystab.report import fmt
from paystab.report.base import Renderer, register
from paystab.report.model import Report

# What XML 1.0 cannot contain even escaped: C0 controls but tab/LF/CR, surrogates, U+FFFE/F.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
SLO_METRICS = ("availability", "failure_rate", "p95_ms", "mttr_s", "error_budget_used",
               "false_failovers")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _false_failover_text(report: Report) -> str:
    return "\n".join(f"{e.at_s:g} s {e.action} {e.provider} by {e.detector}: {e.reason}"
                     for e in report.false_failovers.events)


def _case(suite: ET.Element, classname: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")


@register
class JunitRenderer(Renderer):
    name = "junit"
    suffix = ".xml"

    def render(self, report: Report) -> str:
        return render_many([report])

    @staticmethod
    def suite(report: Report) -> tuple[ET.Element, dict[str, int]]:
        """One drill's ``<testsuite>`` and its counts (tests, failures, errors, skipped)."""
        prefix = f"paystab.drill.{report.runbook}"
        suite = ET.Element("testsuite", name=prefix, timestamp=report.started_at,
                           time=f"{report.duration_s:.3f}")
        props = ET.SubElement(suite, "properties")
        for key, text in (
            ("runbook", report.runbook), ("seed", str(report.seed)),
            ("verdict", report.verdict), ("target", report.target),
            ("requests", str(report.traffic.requests)),
            ("availability", fmt.observed(report.traffic.availability)),
            ("mttr_s", fmt.observed(report.mttr_s)),
            ("false_failovers", str(report.false_failovers.count)),
            ("not_judged", ", ".join(m for m in SLO_METRICS
                                     if report.judgement(m) is None) or "none"),
        ):
            ET.SubElement(props, "property", name=key, value=text)
        failures = errors = skipped = 0
        if report.verdict == "aborted":
            case = _case(suite, f"{prefix}.drill", "drill ran to completion")
            reason = report.abort_reason or "stopped early"
            ET.SubElement(case, "error", message=f"aborted: {reason}", type="Aborted").text = (
                f"The drill was aborted: {reason}. Its hypotheses were judged on the partial "
                "report.")
            errors += 1
        if report.verdict == "inconclusive":
            case = _case(suite, f"{prefix}.drill", "the measurement was sound")
            reason = report.inconclusive_reason or "the measuring apparatus was the bottleneck"
            ET.SubElement(case, "error", message=f"inconclusive: {reason}",
                          type="Inconclusive").text = (
                f"The verdict is inconclusive: {reason}. The stack was neither passed nor "
                "failed; rerun on a machine with room for the load generator.")
            errors += 1
        for hypothesis in report.hypotheses:
            case = _case(suite, f"{prefix}.hypotheses", hypothesis.expr)
            state = fmt.status(hypothesis)
            seen = fmt.observed(hypothesis.observed)
            wanted = fmt.expected(hypothesis.expr, hypothesis.expected)
            if state == "not applicable":
                ET.SubElement(case, "skipped", message=f"not applicable: {wanted}")
                skipped += 1
            elif state != "pass":
                failure = ET.SubElement(case, "failure", type="HypothesisFailed",
                                        message=f"observed {seen}; expected {wanted}")
                failure.text = f"expected: {wanted}\nobserved: {seen}\n"
                if hypothesis.metric == "false_failovers" and report.false_failovers.events:
                    failure.text += "false failovers:\n" + _false_failover_text(report) + "\n"
                failures += 1
        recon = report.reconciliation
        for field, meaning in fmt.INVARIANTS:
            value: int | None = getattr(recon, field)
            case = _case(suite, f"{prefix}.reconciliation", f"{field} == 0")
            ok = fmt.recon_ok(value)
            if ok is None:
                ET.SubElement(case, "skipped",
                              message="not measured: the target offers no ledgers to reconcile")
                skipped += 1
            elif not ok:
                failure = ET.SubElement(case, "failure", type="InvariantBroken",
                                        message=f"observed {value}; expected 0 ({meaning})")
                failure.text = "\n".join(str(f) for f in recon.findings[:50]) or None
                failures += 1
        tests = sum(1 for _ in suite.iter("testcase"))
        counts = {"tests": tests, "failures": failures, "errors": errors, "skipped": skipped}
        suite.attrib.update({k: str(v) for k, v in counts.items()})
        out = ET.SubElement(suite, "system-out")
        out.text = (f"verdict: {fmt.verdict_line(report)}\n"
                    f"{fmt.false_failover_line(report)}\n")
        if report.false_failovers.events:
            out.text += _false_failover_text(report) + "\n"
        return suite, counts


def render_many(reports: list[Report]) -> str:
    """One JUnit document for several drills: a ``<testsuite>`` per runbook in one
    ``<testsuites>``, so ``--junit FILE`` with several runbooks still writes FILE."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.Element("testsuites", name="paystab drill",
                      time=f"{sum(r.duration_s for r in reports):.3f}")
    for report in reports:
        suite, counts = JunitRenderer.suite(report)
        root.append(suite)
        for key, value in counts.items():
            totals[key] += value
    root.attrib.update({k: str(v) for k, v in totals.items()})
    ET.indent(root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + _xml_safe(ET.tostring(root, encoding="unicode")) + "\n")
