"""The charts of the HTML report, built from a finished report's series.

Each function maps part of a :class:`~paystab.report.model.Report` to an
:class:`~paystab.report.svg.Chart` (or lanes) and renders it: customer success ratio and
latency per 1-s bucket (plotted at the bucket's middle), per-provider attempts and
failures per second, provider state lanes (active / drained), and error-budget burn per
window. Every time chart carries the fault windows as shaded bands and the detections,
drains, restores and degrades as markers, so cause and effect line up vertically.
Only presentation happens here: unit scaling (ratio → %, count per interval → per second)
and axis ranges.
"""

from __future__ import annotations

import itertools
import statistics

from paystab.report import fmt
from paystab.report.model import ProviderPoint, Report, SloSummary
from paystab.report.svg import (
    POINT_SHAPES,
    Band,
    Chart,
    HLine,
    Lane,
    Marker,
    Series,
    render_chart,
    render_lanes,
)

# Ten providers must stay apart: ten qualitative colours (Okabe–Ito's colour-blind-safe set
# without its yellow, plus brown, purple and olive, all dark enough on white), and on top a
# dash pattern and a point shape per line, so two lines never share all three.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#1d1d1d",
           "#8c564b", "#6a3d9a", "#8a8a00")
DASHES: tuple[str | None, ...] = (None, "7 3", "2 2", "9 3 2 3")
ACTIVE, DRAINED = "#8fd19e", "#e57373"
SUCCESS_FLOORS = (99.9, 99.5, 99.0, 98.0, 95.0, 90.0, 80.0, 50.0, 0.0)


def x_max(report: Report) -> float:
    ends = [report.duration_s, len(report.timeline) * 1.0]
    ends += [p.t_s for p in report.provider_timeline]
    ends += [d.at_s for d in report.detections] + [f.at_s for f in report.failovers]
    return max([*ends, 1.0])


def bands(report: Report) -> list[Band]:
    end = x_max(report)
    out = []
    for f in report.faults:
        until = f" to {f.cleared_at_s:g} s" if f.cleared_at_s is not None else " (not cleared)"
        name = fmt.fault_name(f.id)
        out.append(Band(f.injected_at_s, f.cleared_at_s if f.cleared_at_s is not None else end,
                        name, tooltip=f"{name}: {f.kind} on {f.target} from "
                        f"{f.injected_at_s:g} s{until}"))
    return out


def markers(report: Report) -> list[Marker]:
    out = [Marker(d.at_s, "detection", f"{d.at_s:g} s detection: {d.provider} by {d.detector}"
                  + (f" — {d.reason}" if d.reason else ""))
           for d in report.detections]
    out += [Marker(f.at_s, f.action, f"{f.at_s:g} s {f.action}: {f.provider}"
                   + (f" — {f.reason}" if f.reason else ""))
            for f in report.failovers]
    return out


def _frame(report: Report, y_label: str, **kwargs: object) -> Chart:
    return Chart(y_label=y_label, x_max=x_max(report), bands=bands(report),
                 markers=markers(report), **kwargs)  # type: ignore[arg-type]


def success_chart(report: Report) -> str:
    """Customer success ratio (answered / requests) per second, against the SLO."""
    target = SloSummary.from_json(report.slo).targets.availability * 100
    points = [(p.t_s + 0.5, None if p.availability is None else p.availability * 100)
              for p in report.timeline]
    lowest = min([y for _, y in points if y is not None] + [target])
    # The highest round floor below every value; a second with 0 % success pins it at 0.
    floor = next((f for f in SUCCESS_FLOORS if f < lowest), 0.0)
    # A little headroom above 100 % keeps the line off the frame and clear of the markers.
    chart = _frame(report, "customer success (%)", y_min=floor, y_max=100 + (100 - floor) * 0.06,
                   y_format=lambda v: f"{v:g}")
    chart.hlines.append(HLine(target, f"SLO {fmt.pct(target / 100, 2)}", "#2e7d32"))
    chart.series.append(Series("success ratio per second", points, "#1f4e9c"))
    return render_chart(chart)


def latency_chart(report: Report) -> str:
    """Customer latency percentiles per second, log scale, against the latency SLO."""
    slo_ms = SloSummary.from_json(report.slo).targets.latency_ms
    series = []
    for key, label, color, dash in (("p50_ms", "p50", "#7fa7d9", None),
                                    ("p95_ms", "p95", "#1f4e9c", None),
                                    ("p99_ms", "p99", "#0b1f44", "5 3")):
        series.append(Series(label, [(p.t_s + 0.5, getattr(p, key)) for p in report.timeline],
                             color, dash))
    values = [y for s in series for _, y in s.points if y]
    lo = min([*values, slo_ms]) / 1.6
    hi = max([*values, slo_ms]) * 1.6
    chart = _frame(report, "latency (ms, log scale)", y_min=lo, y_max=hi, log_y=True,
                   y_format=lambda v: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    chart.series.extend(series)
    chart.hlines.append(HLine(slo_ms, f"SLO p95 ≤ {fmt.ms(slo_ms)}", "#c62828"))
    return render_chart(chart)


def _by_provider(points: list[ProviderPoint]) -> dict[str, list[ProviderPoint]]:
    out: dict[str, list[ProviderPoint]] = {}
    for p in sorted(points, key=lambda p: (p.provider, p.t_s)):
        out.setdefault(p.provider, []).append(p)
    return out


def _per_second(series: list[ProviderPoint], key: str) -> list[tuple[float, float | None]]:
    """Counts per sampling interval → per second, plotted at the interval's middle; a gap
    longer than 1.5 intervals (no samples while drained, say) breaks the line."""
    gaps = [b.t_s - a.t_s for a, b in itertools.pairwise(series)]
    interval = statistics.median(gaps) if gaps else 1.0
    out: list[tuple[float, float | None]] = []
    for index, point in enumerate(series):
        if index and gaps[index - 1] > 1.5 * interval:
            out.append((point.t_s - interval / 2, None))
        out.append((point.t_s + interval / 2, getattr(point, key) / interval))
    return out


def provider_chart(report: Report, key: str, y_label: str) -> str:
    """Per-provider ``attempts`` or ``failures`` per second, one line per provider."""
    chart = _frame(report, y_label, y_min=0.0)
    for index, (name, series) in enumerate(_by_provider(report.provider_timeline).items()):
        color, dash, point = provider_style(index)
        chart.series.append(Series(name, _per_second(series, key), color, dash, point=point))
    return render_chart(chart)


def provider_style(index: int) -> tuple[str, str | None, str]:
    """(colour, dash, point shape) of the ``index``-th provider: ten colours, four dashes and
    five shapes, so no two of the first twenty lines look alike."""
    return (PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)],
            POINT_SHAPES[index % len(POINT_SHAPES)])


def provider_lanes(report: Report) -> str:
    """Active/drained state of each provider over the drill, from the failover events."""
    end = x_max(report)
    names = list(_by_provider(report.provider_timeline))
    names += [n for n in dict.fromkeys(f.provider for f in report.failovers) if n not in names]
    lanes = []
    for name in names:
        events = sorted((f for f in report.failovers if f.provider == name), key=lambda f: f.at_s)
        segments: list[tuple[float, float, str, str]] = []
        start, drained = 0.0, False
        for event in events:
            if event.action not in ("drain", "restore") or drained == (event.action == "drain"):
                continue
            color, state = (DRAINED, "drained") if drained else (ACTIVE, "active")
            tip = f"{name} {state} {start:g}–{event.at_s:g} s"
            segments.append((start, event.at_s, color, tip))
            start, drained = event.at_s, event.action == "drain"
        if not events:  # no events: fall back to the sampled drained flags
            for point in _by_provider(report.provider_timeline).get(name, []):
                if point.drained != drained:
                    color = DRAINED if drained else ACTIVE
                    segments.append((start, point.t_s, color, f"{name} {start:g}–{point.t_s:g} s"))
                    start, drained = point.t_s, point.drained
        color, state = (DRAINED, "drained") if drained else (ACTIVE, "active")
        segments.append((start, end, color, f"{name} {state} {start:g}–{end:g} s"))
        lane_markers = [m for m in markers(report) if f": {name}" in m.tooltip]
        lanes.append(Lane(name, segments, lane_markers))
    return render_lanes(lanes, end, [(ACTIVE, "active"), (DRAINED, "drained"),
                                     ("#fbe3e5", "fault active")],
                        bands=bands(report))


def burn_chart(report: Report) -> str:
    """Error-budget burn rate per window (1× spends the budget exactly at the SLO pace)."""
    slo = SloSummary.from_json(report.slo)
    windows = slo.burn_rates
    chart = _frame(report, "burn rate (× budget pace)", y_min=0.0,
                   y_format=lambda v: f"{v:g}×")
    width = (windows[0].end_s - windows[0].start_s) if windows else 10.0
    chart.series.append(Series(f"burn rate per {width:g} s window",
                               [(w.start_s, w.burn_rate) for w in windows], "#b85c00",
                               kind="bars", bar_width=width))
    chart.hlines.append(HLine(1.0, "1× (budget pace)", "#555"))
    if not any(w.burn_rate for w in windows):
        chart.y_max = 2.0
    return render_chart(chart)
