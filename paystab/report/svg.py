"""Small inline-SVG charts for the HTML report: time series, bars, bands, event markers.

No plotting library and nothing external: each chart is one inline ``<svg>`` element (HTML5
needs no ``xmlns`` there, so the page contains no URL at all) with a
``viewBox`` (it scales to the page width), text styled by the page's CSS, and ``<title>``
tooltips on markers and bands. A :class:`Chart` is plain data — series of ``(x, y)``
points (``y`` None breaks the line), shaded bands (fault windows), vertical markers
(detections, drains, restores) and horizontal reference lines (SLO targets) — and
:func:`render_chart` draws it with a linear or log y axis, grid, ticks with units and a
legend. :func:`render_lanes` draws one horizontal lane per row (provider state over time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH = 1000
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 110, 20, 34, 42


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float | None]]
    color: str
    dash: str | None = None  # SVG stroke-dasharray, e.g. "5 3"
    kind: str = "line"  # line | bars (bars: points are (start, y) with ``bar_width``)
    bar_width: float = 1.0
    point: str | None = None  # a point shape on the line and its legend: see POINT_SHAPES


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    label: str
    color: str = "#e4606d"
    tooltip: str = ""


@dataclass(frozen=True)
class Marker:
    at: float
    kind: str  # a key of MARKER_STYLES
    tooltip: str = ""


@dataclass(frozen=True)
class HLine:
    y: float
    label: str
    color: str = "#555"


MARKER_STYLES: dict[str, tuple[str, str]] = {  # kind → (colour, legend label)
    "detection": ("#e8890c", "detection"),
    "drain": ("#c62828", "drain"),
    "restore": ("#2e7d32", "restore"),
    "degrade": ("#7b1fa2", "degrade"),
}


@dataclass
class Chart:
    y_label: str  # with its unit, e.g. "latency (ms)"
    x_max: float
    series: list[Series] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    hlines: list[HLine] = field(default_factory=list)
    y_min: float | None = None
    y_max: float | None = None
    log_y: bool = False
    height: int = 250
    y_format: Callable[[float], str] = field(default=lambda v: f"{v:g}")
    x_label: str = "seconds since the drill started"


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k steps) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = math.floor((hi - first) / step + 1e-9) + 1
    return [round(first + i * step, 10) for i in range(count)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks for a log axis from lo to hi (both > 0)."""
    ticks = []
    for exp in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            value = m * 10.0 ** exp
            if lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9):
                ticks.append(value)
    return ticks


class _Frame:
    """Maps data to the plot area of one chart; ``extra_top`` makes room for more legend rows
    (the svg is that much taller, the plot area keeps its height)."""

    def __init__(self, chart: Chart, extra_top: float = 0.0) -> None:
        self.chart = chart
        self.height = chart.height + extra_top
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP + extra_top, self.height - MARGIN_BOTTOM
        values = [y for s in chart.series for _, y in s.points if y is not None]
        values += [h.y for h in chart.hlines]
        lo = chart.y_min if chart.y_min is not None else min(values, default=0.0)
        hi = chart.y_max if chart.y_max is not None else max(values, default=1.0)
        if chart.log_y:
            lo, hi = max(lo, 1e-9), max(hi, lo * 10)
        elif hi <= lo:
            hi = lo + 1.0
        self.lo, self.hi = lo, hi

    def x(self, value: float) -> float:
        span = self.chart.x_max or 1.0
        return self.left + (self.right - self.left) * min(max(value / span, 0.0), 1.0)

    def y(self, value: float) -> float:
        if self.chart.log_y:
            value = max(value, self.lo)
            low, high = math.log10(self.lo), math.log10(self.hi)
            frac = (math.log10(value) - low) / (high - low)
        else:
            frac = (value - self.lo) / (self.hi - self.lo)
        return self.bottom - (self.bottom - self.top) * min(max(frac, 0.0), 1.0)


def _f(v: float) -> str:
    return f"{v:.1f}"


def _axes(frame: _Frame) -> list[str]:
    chart = frame.chart
    out = []
    y_ticks = log_ticks(frame.lo, frame.hi) if chart.log_y else nice_ticks(frame.lo, frame.hi, 5)
    for tick in y_ticks:
        y = frame.y(tick)
        out.append(f'<line class="grid" x1="{frame.left}" x2="{frame.right}" y1="{_f(y)}" '
                   f'y2="{_f(y)}"/>')
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{_f(y + 4)}" '
                   f'text-anchor="end">{escape(chart.y_format(tick))}</text>')
    for tick in nice_ticks(0.0, chart.x_max, 12):
        x = frame.x(tick)
        out.append(f'<line class="axis" x1="{_f(x)}" x2="{_f(x)}" y1="{frame.bottom}" '
                   f'y2="{frame.bottom + 4}"/>')
        out.append(f'<text class="tick" x="{_f(x)}" y="{frame.bottom + 17}" '
                   f'text-anchor="middle">{tick:g}</text>')
    out.append(f'<line class="axis" x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" '
               f'y2="{frame.bottom}"/>')
    out.append(f'<line class="axis" x1="{frame.left}" x2="{frame.left}" y1="{frame.top}" '
               f'y2="{frame.bottom}"/>')
    mid = (frame.top + frame.bottom) / 2
    out.append(f'<text class="label" transform="translate(16 {_f(mid)}) rotate(-90)" '
               f'text-anchor="middle">{escape(chart.y_label)}</text>')
    out.append(f'<text class="label" x="{_f((frame.left + frame.right) / 2)}" '
               f'y="{_f(frame.height - 6)}" text-anchor="middle">{escape(chart.x_label)}</text>')
    return out


def _bands(frame: _Frame) -> list[str]:
    out = []
    for band in frame.chart.bands:
        x0, x1 = frame.x(band.start), frame.x(band.end)
        tip = escape(band.tooltip or band.label)
        out.append(f'<rect x="{_f(x0)}" y="{frame.top}" width="{_f(max(x1 - x0, 1.5))}" '
                   f'height="{frame.bottom - frame.top}" fill="{band.color}" fill-opacity="0.13">'
                   f'<title>{tip}</title></rect>')
        out.append(f'<text class="band" x="{_f(x0 + 4)}" y="{frame.top + 24}" '
                   f'fill="{band.color}">{escape(band.label)}</text>')
    return out


def _series(frame: _Frame, series: Series) -> list[str]:
    if series.kind == "bars":
        out = []
        for x, y in series.points:
            if y is None:
                continue
            x0, x1 = frame.x(x), frame.x(x + series.bar_width)
            y0 = frame.y(y)
            out.append(f'<rect x="{_f(x0 + 1)}" y="{_f(y0)}" width="{_f(max(x1 - x0 - 2, 1))}" '
                       f'height="{_f(max(frame.bottom - y0, 0))}" fill="{series.color}" '
                       f'fill-opacity="0.8"><title>{escape(series.label)} {x:g} s: '
                       f'{escape(frame.chart.y_format(y))}</title></rect>')
        return out
    path: list[str] = []
    pen_up = True
    for x, y in series.points:
        if y is None:
            pen_up = True
            continue
        path.append(f"{'M' if pen_up else 'L'}{_f(frame.x(x))} {_f(frame.y(y))}")
        pen_up = False
    if not path:
        return []
    dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
    return [f'<path d="{" ".join(path)}" fill="none" stroke="{series.color}" stroke-width="1.8" '
            f'stroke-linejoin="round"{dash}><title>{escape(series.label)}</title></path>']


POINT_SHAPES = ("circle", "square", "triangle", "diamond", "cross")
POINTS_PER_LINE = 8  # enough to follow a line by its shape, few enough not to clutter


def point_glyph(shape: str, x: float, y: float, color: str) -> str:
    """A small hollow-on-white point shape centred on (x, y): tells lines of similar colour
    apart in print, in grey scale and for colour-blind readers."""
    style = f'fill="#fff" stroke="{color}" stroke-width="1.6"'
    if shape == "circle":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="3.2" {style}/>'
    if shape == "square":
        return f'<rect x="{_f(x - 3)}" y="{_f(y - 3)}" width="6" height="6" {style}/>'
    if shape == "triangle":
        return f'<path d="M{_f(x)} {_f(y - 4)} L{_f(x + 4)} {_f(y + 3)} L{_f(x - 4)} {_f(y + 3)} Z" {style}/>'
    if shape == "diamond":
        return (f'<path d="M{_f(x)} {_f(y - 4.2)} L{_f(x + 4.2)} {_f(y)} L{_f(x)} {_f(y + 4.2)} '
                f'L{_f(x - 4.2)} {_f(y)} Z" {style}/>')
    return (f'<path d="M{_f(x - 3.5)} {_f(y - 3.5)} L{_f(x + 3.5)} {_f(y + 3.5)} M{_f(x - 3.5)} '
            f'{_f(y + 3.5)} L{_f(x + 3.5)} {_f(y - 3.5)}" fill="none" stroke="{color}" '
            'stroke-width="1.8"/>')


def _points(frame: _Frame, series: Series, offset: int) -> list[str]:
    """Every n-th point of a line drawn as its shape; ``offset`` staggers the lines."""
    drawn = [(x, y) for x, y in series.points if y is not None]
    if not series.point or not drawn:
        return []
    step = max(1, len(drawn) // POINTS_PER_LINE)
    return [point_glyph(series.point, frame.x(x), frame.y(y), series.color)
            for x, y in drawn[offset % step::step]]


def _marker_glyph(kind: str, x: float, y: float) -> str:
    color = MARKER_STYLES.get(kind, ("#444", kind))[0]
    if kind == "detection":  # ▼
        shape = f"M{_f(x - 5)} {_f(y - 6)} L{_f(x + 5)} {_f(y - 6)} L{_f(x)} {_f(y + 2)} Z"
    elif kind == "restore":  # ▲
        shape = f"M{_f(x - 5)} {_f(y + 2)} L{_f(x + 5)} {_f(y + 2)} L{_f(x)} {_f(y - 6)} Z"
    elif kind == "degrade":  # ◆
        shape = (f"M{_f(x)} {_f(y - 7)} L{_f(x + 5)} {_f(y - 2)} L{_f(x)} {_f(y + 3)} "
                 f"L{_f(x - 5)} {_f(y - 2)} Z")
    else:  # ■ drain
        shape = f"M{_f(x - 4)} {_f(y - 6)} h8 v8 h-8 Z"
    return f'<path d="{shape}" fill="{color}"/>'


def _markers(frame: _Frame) -> list[str]:
    out = []
    for marker in frame.chart.markers:
        x = frame.x(marker.at)
        color = MARKER_STYLES.get(marker.kind, ("#444", marker.kind))[0]
        out.append(f'<g><title>{escape(marker.tooltip or marker.kind)}</title>'
                   f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{frame.top}" y2="{frame.bottom}" '
                   f'stroke="{color}" stroke-width="1.2" stroke-dasharray="3 3"/>'
                   f'{_marker_glyph(marker.kind, x, frame.top)}</g>')
    return out


LEGEND_ROW_H = 18


def _legend_items(chart: Chart) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []  # (swatch svg at 0,0, label)
    for s in chart.series:
        if s.kind == "bars":
            swatch = f'<rect x="0" y="-5" width="16" height="9" fill="{s.color}"/>'
        else:
            dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            swatch = (f'<line x1="-2" x2="18" y1="0" y2="0" stroke="{s.color}" '
                      f'stroke-width="2.2"{dash}/>'
                      + (point_glyph(s.point, 8, 0, s.color) if s.point else ""))
        items.append((swatch, s.label))
    for h in chart.hlines:
        items.append((f'<line x1="0" x2="16" y1="0" y2="0" stroke="{h.color}" '
                      f'stroke-width="1.2" stroke-dasharray="6 3"/>', h.label))
    if chart.bands:
        items.append(('<rect x="0" y="-5" width="16" height="10" fill="#e4606d" '
                      'fill-opacity="0.25"/>', "fault active"))
    for kind in dict.fromkeys(m.kind for m in chart.markers):
        label = MARKER_STYLES.get(kind, ("#444", kind))[1]
        items.append((_marker_glyph(kind, 8, 2), label))
    return items


def _legend_layout(items: Sequence[tuple[str, str]], y: float = 16) -> tuple[list[str], int]:
    """Legend entries left to right, wrapping onto more rows at the right edge (ten providers
    do not fit on one); the parts and the number of rows."""
    out, x, row = [], float(MARGIN_LEFT), 0
    for swatch, label in items:
        width = 34 + 6.6 * len(label)
        if x > MARGIN_LEFT and x + width - 12 > WIDTH - MARGIN_RIGHT:
            x, row = float(MARGIN_LEFT), row + 1
        out.append(f'<g transform="translate({_f(x)} {_f(y + row * LEGEND_ROW_H)})">{swatch}'
                   f'<text class="legend" x="22" y="4">{escape(label)}</text></g>')
        x += width
    return out, row + 1


def render_chart(chart: Chart) -> str:
    """The whole ``<svg>`` for ``chart``."""
    legend, rows = _legend_layout(_legend_items(chart))
    frame = _Frame(chart, extra_top=(rows - 1) * LEGEND_ROW_H)
    parts = [*_bands(frame), *_axes(frame)]
    for h in chart.hlines:
        y = frame.y(h.y)
        parts.append(f'<line x1="{frame.left}" x2="{frame.right}" y1="{_f(y)}" y2="{_f(y)}" '
                     f'stroke="{h.color}" stroke-width="1.2" stroke-dasharray="6 3">'
                     f'<title>{escape(h.label)}</title></line>')
    for index, series in enumerate(chart.series):
        parts.extend(_series(frame, series))
        parts.extend(_points(frame, series, index))
    parts.extend(_markers(frame))
    parts.extend(legend)
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {_f(frame.height)}" role="img">'
            + "".join(parts) + "</svg>")


@dataclass(frozen=True)
class Lane:
    label: str
    segments: Sequence[tuple[float, float, str, str]]  # (start, end, colour, tooltip)
    markers: Sequence[Marker] = ()


def render_lanes(lanes: Sequence[Lane], x_max: float, legend: Sequence[tuple[str, str]],
                 bands: Sequence[Band] = (),
                 x_label: str = "seconds since the drill started") -> str:
    """One row per lane: coloured segments over time, with event markers on the row;
    ``bands`` (fault windows) are shaded across all rows."""
    items = [(f'<rect x="0" y="-5" width="16" height="10" rx="2" fill="{color}"/>', label)
             for color, label in legend]
    items += [(_marker_glyph(kind, 8, 2), MARKER_STYLES.get(kind, ("#444", kind))[1])
              for kind in dict.fromkeys(m.kind for lane in lanes for m in lane.markers)]
    legend_parts, rows = _legend_layout(items)
    row_h = 28
    top = MARGIN_TOP + 20 + (rows - 1) * LEGEND_ROW_H  # room for the band labels and legend
    height = top + row_h * len(lanes) + MARGIN_BOTTOM
    chart = Chart(y_label="", x_max=x_max, height=height, x_label=x_label, bands=list(bands))
    frame = _Frame(chart)
    frame.top += (rows - 1) * LEGEND_ROW_H  # bands start below the legend
    parts = _bands(frame)  # behind the lanes, seen in the gaps between them, as on the charts
    for tick in nice_ticks(0.0, x_max, 12):
        x = frame.x(tick)
        parts.append(f'<line class="grid" x1="{_f(x)}" x2="{_f(x)}" y1="{top}" '
                     f'y2="{frame.bottom}"/>')
        parts.append(f'<text class="tick" x="{_f(x)}" y="{frame.bottom + 17}" '
                     f'text-anchor="middle">{tick:g}</text>')
    for index, lane in enumerate(lanes):
        y = top + index * row_h
        parts.append(f'<text class="tick" x="{frame.left - 6}" y="{y + 17}" '
                     f'text-anchor="end">{escape(lane.label)}</text>')
        for start, end, color, tip in lane.segments:
            x0, x1 = frame.x(start), frame.x(end)
            parts.append(f'<rect x="{_f(x0)}" y="{y + 7}" width="{_f(max(x1 - x0, 1))}" '
                         f'height="{row_h - 14}" rx="3" fill="{color}"><title>{escape(tip)}'
                         f'</title></rect>')
        for marker in lane.markers:
            parts.append(f'<g><title>{escape(marker.tooltip)}</title>'
                         f'{_marker_glyph(marker.kind, frame.x(marker.at), y + 15)}</g>')
    parts.append(f'<text class="label" x="{_f((frame.left + frame.right) / 2)}" '
                 f'y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    parts.extend(legend_parts)
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img">'
            + "".join(parts) + "</svg>")
