"""The terminal summary of a finished drill (rich), and its plain-text form.

:func:`summary` builds the renderable a command prints after a drill or ``paystab
report``: a verdict banner (with why, when aborted or inconclusive), the hypotheses with
observed against expected (not-applicable ones marked so), every SLO the report shows with
whether the verdict judged it, false failovers, customer traffic, the incident table and
reconciliation. Text from the report is shown as text, never read as rich markup.
:class:`TerminalRenderer` (``text``) renders the same thing without colour for logs and
files.
"""

from __future__ import annotations

import io

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from paystab.report import fmt
from paystab.report.base import Renderer, register
from paystab.report.model import HypothesisResult, Report, SloSummary

VERDICT_STYLE = {"pass": "bold white on green", "fail": "bold white on red",
                 "aborted": "bold black on yellow", "inconclusive": "bold white on blue"}
JUDGEMENT_STYLE = {"pass": "green", "fail": "bold red", "not applicable": "dim",
                   "not judged": "yellow"}


def _banner(report: Report) -> Panel:
    title = Text(f" {fmt.verdict_line(report)} ", style=VERDICT_STYLE.get(report.verdict, "bold"))
    facts = Text(f"{report.runbook} · seed {report.seed} · {report.duration_s:.1f} s · "
                 f"{report.target} · started {report.started_at}", style="dim")
    return Panel(Group(title, facts), expand=False, border_style="dim")


def _slo_judgements(report: Report) -> Table:
    """Each SLO the report shows, its objective, and whether the verdict judged it."""
    t = report.traffic
    slo = SloSummary.from_json(report.slo)
    targets, budget = slo.targets, slo.error_budget
    # (label, observed, the target the report states — "—" when it states none, metrics)
    rows = [
        ("availability", fmt.pct(t.availability), f"≥ {fmt.pct(targets.availability, 2)}",
         ("availability",)),
        ("failure rate", fmt.pct(t.failure_rate), fmt.MISSING, ("failure_rate",)),
        ("latency p95", fmt.ms(t.p95_ms), f"≤ {fmt.ms(targets.latency_ms)}", ("p95_ms",)),
        ("MTTR", fmt.secs(report.mttr_s), fmt.MISSING, ("mttr_s",)),
        ("error budget used", fmt.budget(budget.used) if budget else fmt.MISSING, "≤ 100 %",
         ("error_budget_used",)),
        ("false failovers", fmt.count(report.false_failovers.count), fmt.MISSING,
         ("false_failovers",)),
        ("reconciliation", " / ".join(fmt.count(getattr(report.reconciliation, f))
                                      for f, _ in fmt.INVARIANTS),
         " / ".join("0" for _ in fmt.INVARIANTS),
         tuple(f for f, _ in fmt.INVARIANTS)),
    ]
    table = Table(title="SLOs and the verdict", title_justify="left", box=None, padding=(0, 2))
    for name in ("", "observed", "SLO", "in the verdict"):
        table.add_column(name, justify="right" if name == "observed" else "left",
                         style="bold" if not name else None)
    for label, value, objective, metrics in rows:
        judged = fmt.judgement(report, *metrics)
        table.add_row(label, value, objective,
                      Text(judged.label, style=JUDGEMENT_STYLE.get(judged.state, "")))
    return table


def _false_failovers(report: Report) -> RenderableType:
    ff = report.false_failovers
    line = fmt.false_failover_line(report)
    if not ff.events:
        return Text(line, style="green" if ff.count == 0 else "bold red")
    table = Table(title=line, title_justify="left", title_style="bold red")
    for name in ("at", "provider", "action", "detector", "reason"):
        table.add_column(name, justify="right" if name == "at" else "left")
    for event in ff.events:
        table.add_row(fmt.secs(event.at_s), Text(event.provider), Text(event.action),
                      Text(event.detector), Text(event.reason))
    return table


def _traffic(report: Report) -> Table:
    """Counts and percentiles; the ratios judged against SLOs are in :func:`_slo_judgements`."""
    t = report.traffic
    table = Table(title="Customer traffic", title_justify="left", show_header=False,
                  box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("requests", fmt.count(t.requests), "declined", fmt.count(t.declined)),
        ("approved", fmt.count(t.approved), "pending", fmt.count(t.pending)),
        ("failed", fmt.count(t.failed), "dropped arrivals", fmt.count(t.dropped_arrivals)),
        ("p50 / p95", f"{fmt.ms(t.p50_ms)} / {fmt.ms(t.p95_ms)}", "p99", fmt.ms(t.p99_ms)),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def _incidents(report: Report) -> Table | Text:
    if not report.incidents:
        return Text("No faults injected: no incidents.", style="dim")
    table = Table(title="Incidents", title_justify="left")
    for name in ("fault", "provider", "TTD", "TTM", "TTR", "impacted", "note"):
        table.add_column(name, justify="right" if name in ("TTD", "TTM", "TTR", "impacted")
                         else "left")
    for i in report.incidents:
        ttr = fmt.secs(i.ttr_s) if i.ttr_s is not None else Text("not recovered", style="red")
        table.add_row(Text(i.fault_id), Text(i.provider or "any"), fmt.secs(i.ttd_s),
                      fmt.secs(i.ttm_s), ttr, fmt.count(i.impact_requests), Text(i.note))
    return table


def _mark(ok: bool | None) -> Text:
    if ok is None:
        return Text("n/a", style="dim")
    return Text("✔", style="green") if ok else Text("✘", style="bold red")


def _status_mark(hypothesis: HypothesisResult) -> Text:
    state = fmt.status(hypothesis)
    if state == "pass":
        return Text("✔", style="green")
    if state == "fail":
        return Text("✘", style="bold red")
    return Text("n/a", style="dim")


def _reconciliation(report: Report) -> Table:
    recon = report.reconciliation
    table = Table(title="Reconciliation (gateway ledger vs provider ledgers)",
                  title_justify="left")
    table.add_column("")
    table.add_column("invariant")
    table.add_column("count", justify="right")
    for field, meaning in fmt.INVARIANTS:
        value: int | None = getattr(recon, field)
        table.add_row(_mark(fmt.recon_ok(value)), meaning, fmt.count(value))
    table.add_row(Text("i", style="blue"), "late successes voided (correct behaviour)",
                  fmt.count(recon.voided_late_successes))
    return table


def _hypotheses(report: Report) -> Table | Text:
    if not report.hypotheses:
        return Text("The runbook states no hypotheses.", style="dim")
    table = Table(title="Hypotheses", title_justify="left")
    table.add_column("")
    table.add_column("expected")
    table.add_column("observed", justify="right")
    for h in report.hypotheses:
        table.add_row(_status_mark(h), Text(fmt.hypothesis_text(h)),
                      Text(fmt.observed(h.observed)))
    return table


def summary(report: Report) -> RenderableType:
    """Everything a person needs at the end of a drill, most important first."""
    parts: list[RenderableType] = [_banner(report), _hypotheses(report), _slo_judgements(report),
                                   _false_failovers(report), _traffic(report),
                                   _incidents(report), _reconciliation(report)]
    parts.extend(Text(f"note: {n}", style="yellow") for n in report.notes)
    return Group(*[Group(p, Text("")) for p in parts])


def plain_summary(report: Report) -> str:
    """The summary as plain lines for logs and pipes: one fact per line, ``key: value``, no
    table to be cut at 80 columns, so ``grep``/``awk`` in a CI job can read it."""
    traffic = report.traffic
    lines = [f"verdict: {fmt.verdict_line(report)}",
             f"runbook: {report.runbook} (seed {report.seed}, {fmt.secs(report.duration_s)})"]
    for h in report.hypotheses:
        lines.append(f"hypothesis {fmt.status(h)}: {fmt.hypothesis_text(h)} "
                     f"(observed {fmt.observed(h.observed)})")
    lines.append(f"false failovers: {fmt.false_failover_line(report)}")
    for e in report.false_failovers.events:
        lines.append(f"false failover: {e.at_s:g} s {e.action} {e.provider} by {e.detector}: {e.reason}")
    lines += [
        f"requests: {traffic.requests:,} (approved {traffic.approved:,}, declined {traffic.declined:,}, "
        f"pending {traffic.pending:,}, failed {traffic.failed:,}, dropped arrivals {traffic.dropped_arrivals:,})",
        f"availability: {fmt.pct(traffic.availability)}",
        f"latency: p50 {fmt.ms(traffic.p50_ms)}, p95 {fmt.ms(traffic.p95_ms)}, p99 {fmt.ms(traffic.p99_ms)}",
        f"mttr: {fmt.secs(report.mttr_s)}",
    ]
    for i in report.incidents:
        lines.append(f"incident {fmt.fault_name(i.fault_id)}: provider {i.provider or '-'}, "
                     f"ttd {fmt.secs(i.ttd_s)}, ttm {fmt.secs(i.ttm_s)}, ttr {fmt.secs(i.ttr_s)}, "
                     f"impacted {i.impact_requests:,}")
    recon = report.reconciliation
    for field, meaning in fmt.INVARIANTS:
        value = getattr(recon, field)
        lines.append(f"reconciliation {field}: {'not measured' if value is None else value} ({meaning})")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


@register
class TerminalRenderer(Renderer):
    name = "text"
    suffix = ".txt"

    def render(self, report: Report) -> str:
        buffer = io.StringIO()
        Console(file=buffer, width=100, color_system=None, force_terminal=False,
                emoji=False).print(summary(report))
        return buffer.getvalue()
