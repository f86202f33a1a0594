"""Every schema-valid report renders: HTML, the terminal summary, JUnit and JSON never crash.

Reports are generated with ``hypothesis``, leaning on the shapes that broke renderers
before or could: one-second buckets with 0 % success, empty series, no traffic at all, a
drill aborted at second 0, null percentiles everywhere, huge counts and latencies, ten
providers, every verdict (``inconclusive`` included) and hypotheses that are not
applicable (``ok`` null). Each generated report is first checked against schema v1 (a
generator that makes invalid reports would prove nothing), then read back the way
``paystab report`` reads it and handed to every renderer.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rich.console import Console

from paystab.report.base import renderer, renderer_names
from paystab.report.model import (
    BurnWindow,
    DetectionRecord,
    ErrorBudget,
    FailoverRecord,
    FalseFailover,
    FalseFailovers,
    FaultRecord,
    HypothesisResult,
    Incident,
    ProviderHealth,
    ProviderPoint,
    ReconciliationRecord,
    Report,
    SloSummary,
    SloTargets,
    TimelinePoint,
    Traffic,
)
from paystab.report.schema import parse_report, schema_problems
from paystab.report.terminal import summary

PROVIDERS = ("card-alpha", "card-bravo", "card-charlie", "card-delta", "wallet-paypay",
             "wallet-kakao", "wallet-line", "bank-sepa", "konbini-lawson", "pix-itau")
METRICS = ("availability", "failure_rate", "p95_ms", "p99_ms", "mttr_s", "max_ttd_s",
           "false_failovers", "double_charges", "lost_payments", "orphans", "drains",
           "traffic.p95_ms", "error_budget_used")
HUGE = 10**12

counts = st.one_of(st.just(0), st.integers(0, 1000), st.integers(0, HUGE))
EXTREMES = (5e-324, 1e-12, 1e300)  # the smallest float, a tiny one, a huge one
seconds = st.one_of(st.just(0.0), st.floats(0, 120, allow_nan=False), st.floats(0, 1e7, allow_nan=False),
                    st.sampled_from(EXTREMES))
event_time = st.one_of(seconds, st.floats(-1e3, 0))  # the schema sets no minimum on event times
maybe_ms = st.one_of(st.none(), st.just(0.0), st.floats(0, 1e4, allow_nan=False),
                     st.floats(0, 1e12, allow_nan=False), st.sampled_from(EXTREMES))
ratio = st.one_of(st.none(), st.just(0.0), st.just(1.0), st.floats(0, 1, allow_nan=False))
# Free text, and text that looks like markup to rich, HTML or XML, or that XML cannot carry.
text = st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
                 st.sampled_from(("", "[/]", "[bold]x[/bold", "[red]", "<script>alert(1)</script>",
                                  "a & b", "]]>", "\x00\x1b[31m", "\u202e", "💳" * 30)))
provider = st.sampled_from(PROVIDERS)
observed = st.one_of(st.none(), st.booleans(), st.integers(-HUGE, HUGE),
                     st.floats(allow_nan=False, allow_infinity=False), text,
                     st.dictionaries(st.sampled_from(("a", "b", "c")), st.integers(0, 9), max_size=3))


@st.composite
def timeline_points(draw: st.DrawFn) -> list[TimelinePoint]:
    points = []
    for second in range(draw(st.integers(0, 40))):
        requests = draw(counts)
        failed = draw(st.one_of(st.just(requests), st.just(0), st.integers(0, requests)))
        declined = draw(st.integers(0, requests - failed))
        points.append(TimelinePoint(float(second), requests, requests - failed - declined, declined,
                                    0, failed, draw(maybe_ms), draw(maybe_ms), draw(maybe_ms)))
    return points


@st.composite
def provider_points(draw: st.DrawFn) -> list[ProviderPoint]:
    names = draw(st.lists(provider, unique=True, max_size=10))
    interval = draw(st.sampled_from((0.1, 0.5, 1.0)))
    points = []
    for name in names:
        for index in range(draw(st.integers(0, 30))):
            if draw(st.integers(0, 9)) == 0:
                continue  # a gap: no sample while drained, say
            attempts = draw(counts)
            points.append(ProviderPoint(round(index * interval, 3), name, attempts,
                                        draw(st.integers(0, attempts)), 0, draw(maybe_ms),
                                        draw(st.one_of(st.none(), seconds)), draw(st.booleans())))
    return points


@st.composite
def hypotheses(draw: st.DrawFn) -> HypothesisResult:
    metric = draw(st.sampled_from(METRICS))
    op = draw(st.sampled_from(("<=", ">=", "==", "<", ">")))
    ok = draw(st.one_of(st.none(), st.booleans()))
    return HypothesisResult(f"{metric} {op} {draw(st.integers(0, 1000))}", draw(observed), ok,
                            draw(st.one_of(st.just(""), text)))


@st.composite
def slo_sections(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {}
    targets = SloTargets(availability=draw(st.sampled_from((0.9, 0.99, 0.999, 0.9999, 0.99999))),
                         latency_ms=draw(st.sampled_from((1.0, 100.0, 500.0, 10_000.0))))
    budget = None
    if draw(st.booleans()):
        budget = ErrorBudget(targets.availability, draw(counts), draw(counts),
                             draw(st.floats(0, 1e9, allow_nan=False)),
                             draw(st.one_of(st.none(), st.floats(0, 1e9, allow_nan=False))))
    width = draw(st.sampled_from((1.0, 10.0)))
    burns = [BurnWindow(i * width, (i + 1) * width, draw(counts), draw(counts),
                        draw(st.one_of(st.none(), st.just(0.0), st.floats(0, 1e9, allow_nan=False))))
             for i in range(draw(st.integers(0, 8)))]
    health = [ProviderHealth(name, draw(counts), draw(counts), draw(ratio), targets.sla,
                             draw(st.one_of(st.none(), st.booleans())), draw(maybe_ms),
                             draw(st.floats(0, 1, allow_nan=False)), draw(seconds),
                             draw(st.one_of(st.none(), st.floats(0, 100, allow_nan=False))))
              for name in draw(st.lists(provider, unique=True, max_size=10))]
    return SloSummary(targets, budget, burns, health).to_json()


@st.composite
def reports(draw: st.DrawFn) -> Report:
    verdict = draw(st.sampled_from(("pass", "fail", "aborted", "inconclusive")))
    aborted_at_zero = verdict == "aborted" and draw(st.booleans())
    duration = 0.0 if aborted_at_zero else draw(seconds)
    no_traffic = aborted_at_zero or draw(st.integers(0, 4)) == 0
    requests = 0 if no_traffic else draw(counts)
    failed = draw(st.integers(0, requests))
    declined = draw(st.integers(0, requests - failed))
    traffic = Traffic(requests=requests, approved=requests - failed - declined, declined=declined,
                      failed=failed, availability=None if no_traffic else draw(ratio),
                      p50_ms=draw(maybe_ms), p95_ms=draw(maybe_ms), p99_ms=draw(maybe_ms),
                      failure_rate=None if no_traffic else draw(ratio),
                      dropped_arrivals=draw(counts))
    faults = [FaultRecord(f"f{i}-{draw(text)}", draw(st.sampled_from(("provider.hang", "latency", "x"))),
                          f"provider:{draw(provider)}", draw(st.dictionaries(text, st.integers(), max_size=2)),
                          draw(event_time), draw(st.one_of(st.none(), event_time)), draw(text),
                          draw(st.one_of(st.none(), provider)))
              for i in range(draw(st.integers(0, 4)))]
    false_events = [FalseFailover(draw(provider), draw(event_time), draw(text), draw(text))
                    for _ in range(draw(st.integers(0, 5)))]
    return Report(
        runbook=draw(text.filter(bool)), seed=draw(st.integers(-HUGE, HUGE)),
        started_at="2026-12-06T11:00:00+00:00", verdict=verdict, duration_s=duration,
        traffic=traffic, faults=faults,
        detections=[DetectionRecord(draw(provider), draw(text), draw(event_time), draw(text),
                                    draw(st.one_of(st.none(), st.floats(0, 1e9, allow_nan=False))))
                    for _ in range(draw(st.integers(0, 5)))],
        failovers=[FailoverRecord(draw(provider), draw(st.sampled_from(("drain", "restore", "degrade"))),
                                  draw(event_time), draw(text), draw(text))
                   for _ in range(draw(st.integers(0, 6)))],
        incidents=[Incident(f.id, *(draw(st.one_of(st.none(), seconds)) for _ in range(3)),
                            impact_requests=draw(counts), provider=f.provider, note=draw(text))
                   for f in faults if draw(st.booleans())],
        mttr_s=draw(st.one_of(st.none(), seconds)),
        reconciliation=ReconciliationRecord(*(draw(st.one_of(st.none(), counts)) for _ in range(4)),
                                            findings=draw(st.lists(st.dictionaries(text, text, max_size=2),
                                                                   max_size=3))),
        hypotheses=draw(st.lists(hypotheses(), max_size=8)),
        description=draw(text), target=draw(text),
        abort_reason=draw(st.one_of(st.none(), text)) if verdict == "aborted" else None,
        timeline=[] if no_traffic else draw(timeline_points()),
        provider_timeline=[] if no_traffic else draw(provider_points()),
        slo=draw(slo_sections()),
        load=draw(st.dictionaries(text, st.one_of(st.integers(), st.floats(allow_nan=False), text),
                                  max_size=3)),
        notes=draw(st.lists(text, max_size=3)),
        false_failovers=FalseFailovers(len(false_events), draw(seconds), false_events),
        inconclusive_reason=draw(st.one_of(st.none(), text)) if verdict == "inconclusive" else None,
    )


class _Balanced(HTMLParser):
    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "path", "rect", "line"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID:
            assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
            self.stack.pop()


def render_everything(report: Report) -> dict[str, str]:
    """Every registered renderer (``text`` is the terminal summary without colour) and the
    coloured summary as ``paystab drill`` prints it."""
    out = {name: renderer(name).render(report) for name in renderer_names()}
    buffer = io.StringIO()
    Console(file=buffer, width=100, force_terminal=True, color_system="standard").print(summary(report))
    out["summary"] = buffer.getvalue()
    return out


def zero_success_second() -> Report:
    """The report that crashed the HTML renderer: one second in which every request failed."""
    return Report("provider-timeout", 7, "2026-12-06T11:00:00+00:00", verdict="aborted",
                  duration_s=3.0, traffic=Traffic(requests=20, approved=18, failed=2, availability=0.9,
                                                   failure_rate=0.1),
                  abort_reason="interrupted by SIGINT",
                  timeline=[TimelinePoint(0.0, 18, 18), TimelinePoint(1.0, 2, 0, failed=2)])


def nothing_at_all() -> Report:
    """Aborted at second 0: no traffic, no series, no SLO section, nothing measured."""
    return Report("x", 0, "2026-12-06T11:00:00+00:00", verdict="aborted", duration_s=0.0,
                  reconciliation=ReconciliationRecord())


def assert_renders(report: Report) -> None:
    document = json.loads(json.dumps(report.to_json()))
    assert schema_problems(document) == []
    loaded = parse_report(document, "generated.json")
    rendered = render_everything(loaded)

    parser = _Balanced()
    parser.feed(rendered["html"])
    assert parser.stack == []
    suite = ET.fromstring(rendered["junit"]).find("testsuite")
    assert suite is not None
    assert json.loads(rendered["json"])["verdict"] == report.verdict
    verdict_words = {"pass": "PASS", "fail": "FAIL", "aborted": "ABORTED",
                     "inconclusive": "INCONCLUSIVE"}[report.verdict]
    for name in ("html", "text", "summary"):
        assert verdict_words in rendered[name], name
    # A hypothesis that is not applicable is skipped in JUnit, never a failure.
    cases = {case.get("name"): case for case in suite.iter("testcase")
             if (case.get("classname") or "").endswith(".hypotheses")}
    for hypothesis in report.hypotheses:
        case = cases.get(hypothesis.expr)
        if hypothesis.ok is None and case is not None:
            assert case.find("failure") is None


SETTINGS = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow,
                                                        HealthCheck.data_too_large]}


@pytest.mark.slow
@settings(max_examples=15, **SETTINGS)  # type: ignore[arg-type]
@example(zero_success_second())
@example(nothing_at_all())
@given(reports())
def test_generated_reports_render(report: Report) -> None:
    assert_renders(report)


@pytest.mark.slow
@settings(max_examples=300, **SETTINGS)  # type: ignore[arg-type]
@given(reports())
def test_many_generated_reports_render(report: Report) -> None:
    assert_renders(report)
