"""The HTML renderer: one self-contained file a team can attach to a DR-drill ticket.

Everything is inline — CSS in a ``<style>`` element, charts as SVG (see
:mod:`paystab.report.html_charts`), no script, no web font, no external URL — so the file
opens offline and archives well. Order: verdict (with the reason when aborted or
inconclusive) and headline cards, hypotheses, the charts (customer success and latency,
provider traffic, failures and state, error-budget burn), incidents, false failovers and
the event log, reconciliation, SLO and provider SLA tables, faults, load and notes. Each
headline card carries the verdict's judgement of its metric — the runbook hypothesis that
names it (:meth:`Report.judgement`), pass or fail — or says plainly "not judged", so a red
number beside a PASS is never unexplained. Every value comes from the report; nothing is
computed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape

from paystab import __version__
from paystab.report import fmt, html_charts
from paystab.report.base import Renderer, register
from paystab.report.html_style import CSS
from paystab.report.model import HypothesisResult, Report, SloSummary

Cell = str | tuple[str, str]  # text, or (text, css class)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], numeric: Sequence[int] = (),
           empty: str = "none") -> str:
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{escape(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            text, css = cell if isinstance(cell, tuple) else (cell, "")
            css = f"{css} num".strip() if index in numeric else css
            cells.append(f'<td class="{css}">{escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td class="empty" colspan="{len(headers)}">{escape(empty)}</td></tr>')
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _mark(ok: bool | None) -> Cell:
    if ok is None:
        return ("n/a", "muted")
    return ("✔ pass", "ok") if ok else ("✘ fail", "bad")


def _status(hypothesis: HypothesisResult) -> Cell:
    state = fmt.status(hypothesis)
    if state == "pass":
        return ("✔ pass", "ok")
    if state == "fail":
        return ("✘ fail", "bad")
    return (state, "muted")


JUDGED_BADGE = {"pass": ("✔ judged: pass", "ok"), "fail": ("✘ judged: fail", "bad"),
                "not applicable": ("not applicable", "na"), "not judged": ("not judged", "nj")}


def _card(label: str, value: str, sub: str, judged: fmt.Judgement,
          within_slo: bool | None = None, badge: str | None = None) -> str:
    """One headline number. Its colour is the verdict's own judgement of it; a number the
    runbook does not judge says so plainly, and is amber when it is outside its SLO."""
    default_badge, css = JUDGED_BADGE[judged.state]
    badge = badge or default_badge
    if judged.state == "not judged" and within_slo is False:
        css = "nj warn"
        badge = "not judged · outside the SLO"
    title = escape(judged.label, quote=True)
    return (f'<div class="card {css}" title="{title}"><div class="label">{escape(label)}</div>'
            f'<div class="value">{escape(value)}</div><div class="sub">{escape(sub)}</div>'
            f'<div class="judged">{escape(badge)}</div></div>')


def _header(report: Report) -> str:
    facts = [("runbook", report.runbook), ("started", report.started_at),
             ("duration", fmt.secs(report.duration_s)), ("seed", str(report.seed)),
             ("target", report.target)]
    prov = report.provenance
    facts += [(k, str(prov[key])) for k, key in (("paystab", "paystab_version"), ("host", "host"))
              if prov.get(key)]
    facts_html = "".join(f"<span><b>{escape(k)}</b> {escape(v)}</span>" for k, v in facts)
    description = f"<p class=desc>{escape(report.description)}</p>" if report.description else ""
    return (f'<header><div class="verdict {escape(report.verdict)}">'
            f'{escape(fmt.verdict_line(report))}</div>'
            f"<h1>Drill report: {escape(report.runbook)}</h1>{description}"
            f'<div class="facts">{facts_html}</div></header>')


def _cards(report: Report, slo: SloSummary) -> str:
    t, targets, recon = report.traffic, slo.targets, report.reconciliation
    budget = slo.error_budget
    worst = [i.ttd_s for i in report.incidents]
    max_ttd = None if not worst or None in worst else max(w for w in worst if w is not None)
    recon_values = [getattr(recon, f) for f, _ in fmt.INVARIANTS]
    states = [fmt.status(h) for h in report.hypotheses]
    passed, failed = states.count("pass"), states.count("fail")
    not_applicable = len(states) - passed - failed
    ff = report.false_failovers
    verdict = fmt.Judgement("fail" if failed else "pass") if passed + failed else fmt.Judgement(
        "not judged")
    cards = [
        _card("availability", fmt.pct(t.availability), f"SLO {fmt.pct(targets.availability, 2)}",
              fmt.judgement(report, "availability"),
              None if t.availability is None else t.availability >= targets.availability),
        _card("failure rate", fmt.pct(t.failure_rate), f"{fmt.count(t.failed)} failed of "
              f"{fmt.count(t.requests)}", fmt.judgement(report, "failure_rate")),
        _card("latency p95", fmt.ms(t.p95_ms),
              f"p99 {fmt.ms(t.p99_ms)}; SLO p95 ≤ {fmt.ms(targets.latency_ms)}",
              fmt.judgement(report, "p95_ms"),
              None if t.p95_ms is None else t.p95_ms <= targets.latency_ms),
        _card("MTTR", fmt.secs(report.mttr_s), f"{len(report.incidents)} incident(s); "
              f"worst TTD {fmt.secs(max_ttd)}", fmt.judgement(report, "mttr_s")),
        _card("error budget used", fmt.budget(budget.used) if budget else fmt.MISSING,
              f"of {fmt.pct(1 - targets.availability, 2)} allowed failures",
              fmt.judgement(report, "error_budget_used"),
              None if not budget or budget.used is None else budget.used <= 1.0),
        _card("false failovers", fmt.count(ff.count), f"drains outside fault windows "
              f"+ {ff.grace_s:g} s", fmt.judgement(report, "false_failovers"),
              ff.count == 0),
        _card("reconciliation", " / ".join(fmt.count(v) for v in recon_values),
              "double charges / lost / orphans / wrong amounts",
              fmt.judgement(report, *(f for f, _ in fmt.INVARIANTS)),
              None if None in recon_values else all(v == 0 for v in recon_values)),
        _card("payments", fmt.count(t.requests), f"{fmt.count(t.approved)} approved · "
              f"{fmt.count(t.declined)} declined · {fmt.count(t.failed)} failed",
              fmt.Judgement("not judged")),
        _card("pending", fmt.count_share(t.pending, t.requests),
              "no final answer when the drill ended (counted as answered)",
              fmt.judgement(report, "pending")),
        _card("dropped arrivals", fmt.count_share(t.dropped_arrivals,
                                                  report.harness.get("arrivals")),
              "arrivals the load generator could not send in time",
              fmt.judgement(report, "dropped_arrivals")),
        _card("load", fmt.with_unit("rate_per_s", report.load.get("rate_per_s")),
              f"{report.load.get('profile', fmt.MISSING)} profile for "
              f"{fmt.with_unit('duration_s', report.load.get('duration_s'))}",
              fmt.Judgement("not judged"), badge="the load the drill offered"),
        _card("hypotheses", f"{passed} / {passed + failed}", "held"
              + (f"; {not_applicable} not applicable" if not_applicable else ""), verdict,
              badge=f"✘ {failed} failed" if failed else "✔ all held" if passed else "none judged"),
    ]
    return f'<section class="cards">{"".join(cards)}</section>'


def _hypotheses(report: Report) -> str:
    rows = [(_status(h), fmt.hypothesis_text(h), fmt.observed_value(h))
            for h in report.hypotheses]
    return _table(("", "expected", "observed"), rows, numeric=(2,),
                  empty="the runbook states no hypotheses")


def _figure(title: str, svg: str, caption: str = "") -> str:
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f"<figure><h3>{escape(title)}</h3>{svg}{cap}</figure>"


def _charts(report: Report) -> str:
    parts = []
    if report.timeline:
        parts.append(_figure("Customer success ratio", html_charts.success_chart(report),
                             "Answered ÷ requests per 1-s bucket by arrival time (declines are "
                             "answers). Shaded: fault active."))
        parts.append(_figure("Customer latency", html_charts.latency_chart(report),
                             "Percentiles per 1-s bucket by arrival time, including client "
                             "retries."))
    if report.provider_timeline:
        parts.append(_figure("Provider attempts", html_charts.provider_chart(
            report, "attempts", "attempts per second"), "What the gateway sent each provider."))
        parts.append(_figure("Provider failures", html_charts.provider_chart(
            report, "failures", "failures per second"),
            "Provider-side errors and timeouts; customer declines excluded."))
    if report.provider_timeline or report.failovers:
        parts.append(_figure("Provider state", html_charts.provider_lanes(report)))
    if SloSummary.from_json(report.slo).burn_rates:
        parts.append(_figure("Error-budget burn", html_charts.burn_chart(report),
                             "Failure rate per window ÷ the failure rate the SLO allows."))
    if not parts:
        return '<p class="muted">No time series in this report.</p>'
    return "".join(parts)


def _incidents(report: Report) -> str:
    faults = {f.id: f for f in report.faults}
    rows = []
    for i in report.incidents:
        fault = faults.get(i.fault_id)
        rows.append((
            fmt.fault_name(i.fault_id), fault.kind if fault else "", i.provider or "any",
            fmt.secs(fault.injected_at_s) if fault else fmt.MISSING,
            fmt.secs(fault.cleared_at_s) if fault else fmt.MISSING,
            fmt.secs(i.ttd_s, 2), fmt.secs(i.ttm_s, 2),
            (fmt.secs(i.ttr_s), "") if i.ttr_s is not None else ("not recovered", "bad"),
            fmt.count(i.impact_requests), i.note,
        ))
    return _table(("fault", "kind", "provider", "injected", "cleared", "TTD", "TTM", "TTR",
                   "impacted requests", "note"), rows, numeric=(3, 4, 5, 6, 7, 8),
                  empty="no fault injected")


def _events(report: Report) -> str:
    events = [(d.at_s, "detection", d.provider, d.detector, d.reason) for d in report.detections]
    false = {(e.provider, e.at_s) for e in report.false_failovers.events}
    events += [(f.at_s, f"{f.action} (false)" if (f.provider, f.at_s) in false else f.action,
                f.provider, f.detector, f.reason) for f in report.failovers]
    events += [(f.injected_at_s, "fault injected", f.target, f.kind, fmt.fault_name(f.id))
               for f in report.faults]
    events += [(f.cleared_at_s, "fault cleared", f.target, f.kind, fmt.fault_name(f.id))
               for f in report.faults if f.cleared_at_s is not None]
    rows = [(fmt.secs(at, 2), (what, f"ev-{what.split()[0]}"), who, how, why)
            for at, what, who, how, why in sorted(events, key=lambda e: e[0])]
    return _table(("at", "event", "provider / target", "detector / kind", "reason"), rows,
                  numeric=(0,), empty="no events")


def _false_failovers(report: Report) -> str:
    ff = report.false_failovers
    rows = [(fmt.secs(e.at_s, 2), e.provider, e.action, e.detector, e.reason) for e in ff.events]
    line = (f'<p class="{"bad" if ff.count else "ok"}-text">{escape(fmt.false_failover_line(report))}'
            f"</p>")
    table = _table(("at", "provider", "action", "detector", "reason"), rows, numeric=(0,),
                   empty="none") if ff.events or ff.count else ""
    return line + table


def _reconciliation(report: Report) -> str:
    recon = report.reconciliation
    rows: list[Sequence[Cell]] = [
        (_mark(fmt.recon_ok(getattr(recon, f))), meaning, fmt.count(getattr(recon, f)))
        for f, meaning in fmt.INVARIANTS]
    rows.append((("info", "muted"), "late successes voided (correct behaviour)",
                 fmt.count(recon.voided_late_successes)))
    findings = ""
    if recon.findings:
        items = "".join(f"<li><code>{escape(json.dumps(f, sort_keys=True))}</code></li>"
                        for f in recon.findings[:50])
        findings = (f"<details><summary>{len(recon.findings)} finding(s)</summary>"
                    f"<ul>{items}</ul></details>")
    return _table(("", "invariant", "count"), rows, numeric=(2,)) + findings


def _slo(report: Report, slo: SloSummary) -> str:
    targets, budget = slo.targets, slo.error_budget
    rows = [
        ("availability target", fmt.pct(targets.availability, 2)),
        ("latency SLO (p95 per second)", fmt.ms(targets.latency_ms)),
        ("recovered when healthy for", fmt.secs(targets.sustain_s, 0)),
        ("allowed failures over the drill", f"{fmt.number(budget.allowed_failures)} requests" if budget
         else fmt.MISSING),
        ("failed requests", fmt.count(budget.failed) if budget else fmt.MISSING),
        ("error budget used", fmt.budget(budget.used) if budget else fmt.MISSING),
        ("highest burn rate", f"{fmt.number(slo.max_burn_rate, 1)}×"
         if slo.max_burn_rate is not None else fmt.MISSING),
        ("MTTR", fmt.secs(report.mttr_s)),
    ]
    return _table(("", "value"), rows, numeric=(1,))


def _providers(slo: SloSummary) -> str:
    rows = []
    for p in slo.providers:
        score = p.health_score
        score_css = "" if score is None else ("ok" if score >= 80 else "bad")
        rows.append((p.provider, fmt.count(p.attempts), fmt.pct(p.share, 1),
                     fmt.count(p.failures), fmt.pct(p.success, 3), fmt.pct(p.sla_target, 2),
                     _mark(p.sla_met), fmt.ms(p.p95_ms), fmt.minutes(p.minutes_drained),
                     (fmt.MISSING if score is None else f"{fmt.number(score, 1)} / 100",
                      score_css)))
    return _table(("provider", "attempts", "share", "failures", "success", "SLA", "met",
                   "p95", "time drained", "health score"), rows,
                  numeric=(1, 2, 3, 4, 5, 7, 8, 9), empty="no provider series in this report")


def _faults(report: Report) -> str:
    rows = [(fmt.fault_name(f.id), f.kind, f.target,
             ", ".join(f"{k} = {fmt.observed(v)}" for k, v in sorted(f.params.items())) or "none",
             fmt.secs(f.injected_at_s), fmt.secs(f.cleared_at_s), f.description,
             (f.id, "muted"))
            for f in report.faults]
    return _table(("fault", "kind", "target", "parameters", "injected", "cleared", "description",
                   "injection id"), rows, numeric=(4, 5), empty="no fault injected")


def _provenance(report: Report) -> str:
    rows = [(fmt.label(k), (fmt.observed(v), "mono")) for k, v in report.provenance.items()]
    return _table(("", "value"), rows, empty="not recorded (a report from before paystab "
                  "recorded provenance)")


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


@register
class HtmlRenderer(Renderer):
    name = "html"
    suffix = ".html"

    def render(self, report: Report) -> str:
        slo = SloSummary.from_json(report.slo)
        load = _table(("", "value"), [(fmt.label(k), fmt.with_unit(k, v)) for k, v in
                                      [*report.load.items(), *report.harness.items()]],
                      empty="not recorded")
        notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
        body = [
            _header(report), _cards(report, slo),
            _section("Hypotheses", _hypotheses(report), "hypotheses"),
            _section("Over time", _charts(report), "charts"),
            _section("Incidents", _incidents(report)
                     + "<p class=muted>TTD = first detection − injection; TTM = first drain "
                       "or degrade − injection; TTR = injection → start of the first "
                     f"{slo.targets.sustain_s:g} s in a row within the SLO.</p>", "incidents"),
            _section("False failovers", _false_failovers(report), "false-failovers"),
            _section("Event log", _events(report), "events"),
            _section("Reconciliation", _reconciliation(report), "reconciliation"),
            _section("SLO and error budget", _slo(report, slo), "slo"),
            _section("Provider SLA and health", _providers(slo)
                     + f"<p class=muted>SLA: success excluding customer declines ≥ "
                       f"{fmt.pct(slo.targets.sla, 2)}"
                       f"{' (promotion)' if slo.targets.promotion else ''}. Health score "
                       "0–100; the seeds drop a channel below 80 three months running.</p>",
                     "providers"),
            _section("Faults", _faults(report), "faults"),
            _section("Load", load, "load"),
            _section("Provenance", _provenance(report), "provenance"),
        ]
        if notes:
            body.append(_section("Notes", f"<ul>{notes}</ul>", "notes"))
        footer = (f"<footer>paystab {escape(__version__)} · schema paystab.report/v1 · "
                  "self-contained: no scripts, no external resources</footer>")
        title = f"paystab drill {report.runbook}: {report.verdict}"
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{escape(title)}</title><style>{CSS}</style></head>"
                f"<body><main>{''.join(body)}{footer}</main></body></html>\n")
