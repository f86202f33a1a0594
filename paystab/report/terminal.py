"""The terminal summary of a finished drill (rich), and its plain-text form.

:func:`summary` builds the renderable a command prints after a drill or ``paystab
report``: a verdict banner, customer traffic and SLO, the incident table, reconciliation
and the hypotheses with observed against expected. :class:`TerminalRenderer` (``text``)
renders the same thing without colour for logs and files.
"""

from __future__ import annotations

import io

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from paystab.report import fmt
from paystab.report.base import Renderer, register
from paystab.report.model import Report, SloSummary

VERDICT_STYLE = {"pass": "bold white on green", "fail": "bold white on red",
                 "aborted": "bold black on yellow"}


def _banner(report: Report) -> Panel:
    title = Text(f" {fmt.verdict_line(report)} ", style=VERDICT_STYLE.get(report.verdict, "bold"))
    facts = Text(f"{report.runbook} · seed {report.seed} · {report.duration_s:.1f} s · "
                 f"{report.target} · started {report.started_at}", style="dim")
    return Panel(Group(title, facts), expand=False, border_style="dim")


def _traffic(report: Report) -> Table:
    t = report.traffic
    slo = SloSummary.from_json(report.slo)
    budget = slo.error_budget
    table = Table(title="Customer traffic", title_justify="left", show_header=False,
                  box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("requests", fmt.count(t.requests), "availability", fmt.pct(t.availability)),
        ("approved", fmt.count(t.approved), "failure rate", fmt.pct(t.failure_rate)),
        ("declined", fmt.count(t.declined), "p50 / p95",
         f"{fmt.ms(t.p50_ms)} / {fmt.ms(t.p95_ms)}"),
        ("pending", fmt.count(t.pending), "p99", fmt.ms(t.p99_ms)),
        ("failed", fmt.count(t.failed), "MTTR", fmt.secs(report.mttr_s)),
        ("dropped arrivals", fmt.count(t.dropped_arrivals), "error budget used",
         fmt.budget(budget.used) if budget else fmt.MISSING),
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
        table.add_row(i.fault_id, i.provider or "any", fmt.secs(i.ttd_s), fmt.secs(i.ttm_s),
                      ttr, fmt.count(i.impact_requests), i.note)
    return table


def _mark(ok: bool | None) -> Text:
    if ok is None:
        return Text("n/a", style="dim")
    return Text("✔", style="green") if ok else Text("✘", style="bold red")


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
        table.add_row(_mark(h.ok), fmt.expected(h.expr, h.expected), fmt.observed(h.observed))
    return table


def summary(report: Report) -> RenderableType:
    """Everything a person needs at the end of a drill, most important first."""
    parts: list[RenderableType] = [_banner(report), _hypotheses(report), _traffic(report),
                                   _incidents(report), _reconciliation(report)]
    parts.extend(Text(f"note: {n}", style="yellow") for n in report.notes)
    return Group(*[Group(p, Text("")) for p in parts])


@register
class TerminalRenderer(Renderer):
    name = "text"
    suffix = ".txt"

    def render(self, report: Report) -> str:
        buffer = io.StringIO()
        Console(file=buffer, width=100, color_system=None, force_terminal=False,
                emoji=False).print(summary(report))
        return buffer.getvalue()
