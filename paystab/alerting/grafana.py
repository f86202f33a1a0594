"""A small Grafana dashboard model: panels, rows, variables, annotations → dashboard JSON.

Targets Grafana 10.x and 11.x (``schemaVersion`` 39; Grafana migrates older models up on
load and reads 39 without changes). Every panel and target reads the Prometheus data source
through a ``${datasource}`` template variable, so the JSON imports as is — through the UI,
the HTTP API or file provisioning — into any Grafana that has a Prometheus data source.
Layout is automatic: panels flow left to right in a 24-column grid, a :class:`Row` starts a
new band. The dashboards themselves live in :mod:`paystab.alerting.boards`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
GRID_WIDTH = 24
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}

# (value or None for the base step, colour)
Thresholds = list[tuple[float | None, str]]


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    expr: str
    legend: str = "__auto"
    exemplar: bool = False
    heatmap: bool = False  # format=heatmap: buckets as a heatmap, legend {{le}}
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries | stat | gauge | heatmap | state-timeline
    targets: tuple[Target, ...]
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    thresholds: Thresholds = field(default_factory=lambda: [(None, "green")])
    threshold_lines: bool = False  # draw the thresholds on a time series
    value_text: dict[str, tuple[str, str]] = field(default_factory=dict)  # value → text, colour
    stacked: bool = False
    bars: bool = False
    # which paystab process exposes what this panel reads: gateway, providers, chaos, proxy,
    # detector or load (tests check a panel has data only where that process is scraped)
    source: str = "gateway"


@dataclass(frozen=True)
class Row:
    title: str


@dataclass(frozen=True)
class Variable:
    """A query variable over a label (multi-select, with All)."""

    name: str
    label: str
    query: str  # e.g. label_values(paystab_provider_attempts_total, provider)


@dataclass(frozen=True)
class Annotation:
    """A Prometheus-backed annotation: every sample of ``expr`` marks the time axis."""

    name: str
    expr: str
    title: str  # legend-style template, e.g. "{{action}} {{provider}}"
    tags: tuple[str, ...]
    color: str = "red"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel | Row, ...]
    tags: tuple[str, ...] = ("paystab",)
    variables: tuple[Variable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    time_from: str = "now-1h"
    refresh: str = "10s"

    def to_json(self) -> dict[str, Any]:
        return {
            "annotations": {"list": [_builtin_annotation(), *map(_annotation, self.annotations)]},
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [],
            "panels": _layout(self.panels),
            "refresh": self.refresh,
            "schemaVersion": SCHEMA_VERSION,
            "tags": list(self.tags),
            "templating": {"list": [_datasource_variable(), *map(_variable, self.variables)]},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }


def _layout(items: tuple[Panel | Row, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    x = y = band_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += band_height
            x, band_height = 0, 0
            out.append({
                "collapsed": False, "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "id": panel_id, "panels": [], "title": item.title, "type": "row",
            })
            y += 1
            continue
        if x + item.width > GRID_WIDTH:
            y += band_height
            x, band_height = 0, 0
        out.append(_panel(item, panel_id, {"h": item.height, "w": item.width, "x": x, "y": y}))
        x += item.width
        band_height = max(band_height, item.height)
    return out


def _panel(panel: Panel, panel_id: int, grid: dict[str, int]) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds" if panel.kind in ("stat", "gauge") else "palette-classic"},
        "mappings": _mappings(panel.value_text),
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": colour, "value": value} for value, colour in panel.thresholds],
        },
        "unit": panel.unit,
    }
    for key in ("min", "max", "decimals"):
        if getattr(panel, key) is not None:
            defaults[key] = getattr(panel, key)
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 60 if panel.bars or panel.stacked else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stacked else "none"},
            "thresholdsStyle": {"mode": "line+area" if panel.threshold_lines else "off"},
        }
    elif panel.kind == "state-timeline":
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
        defaults["color"] = {"mode": "thresholds"}
    return {
        "datasource": dict(DATASOURCE),
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": grid,
        "id": panel_id,
        "options": _options(panel),
        "targets": [_target(t, i) for i, t in enumerate(panel.targets)],
        "title": panel.title,
        "type": panel.kind,
    }


def _target(target: Target, index: int) -> dict[str, Any]:
    return {
        "datasource": dict(DATASOURCE),
        "editorMode": "code",
        "exemplar": target.exemplar,
        "expr": target.expr,
        "format": "heatmap" if target.heatmap else "time_series",
        "instant": target.instant,
        "legendFormat": "{{le}}" if target.heatmap else target.legend,
        "range": not target.instant,
        "refId": chr(ord("A") + index),
    }


def _options(panel: Panel) -> dict[str, Any]:
    legend = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}
    tooltip = {"mode": "multi", "sort": "desc"}
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "timeseries":
        return {"legend": legend, "tooltip": tooltip}
    if panel.kind == "stat":
        return {
            "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
            "orientation": "auto", "reduceOptions": reduce, "textMode": "auto",
        }
    if panel.kind == "gauge":
        return {"orientation": "auto", "reduceOptions": reduce, "showThresholdLabels": False,
                "showThresholdMarkers": True}
    if panel.kind == "state-timeline":
        return {"alignValue": "left", "legend": legend, "mergeValues": True, "rowHeight": 0.9,
                "showValue": "auto", "tooltip": {"mode": "single", "sort": "none"}}
    if panel.kind == "heatmap":
        return {
            "calculate": False,
            "cellGap": 1,
            "color": {"exponent": 0.5, "fill": "dark-orange", "mode": "scheme",
                      "reverse": False, "scale": "exponential", "scheme": "Oranges", "steps": 64},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-09},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": panel.unit},
        }
    raise ValueError(f"unknown panel kind {panel.kind!r}")


def _mappings(value_text: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    if not value_text:
        return []
    options = {
        value: {"color": colour, "index": i, "text": text}
        for i, (value, (text, colour)) in enumerate(value_text.items())
    }
    return [{"options": options, "type": "value"}]


def _builtin_annotation() -> dict[str, Any]:
    return {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


def _annotation(annotation: Annotation) -> dict[str, Any]:
    return {
        "datasource": dict(DATASOURCE),
        "enable": True,
        "expr": annotation.expr,
        "hide": False,
        "iconColor": annotation.color,
        "name": annotation.name,
        "step": "10s",
        "tagKeys": ",".join(annotation.tags),
        "textFormat": "",
        "titleFormat": annotation.title,
        "useValueForTime": False,
    }


def _datasource_variable() -> dict[str, Any]:
    return {
        "current": {}, "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
        "name": "datasource", "options": [], "query": "prometheus", "refresh": 1, "regex": "",
        "skipUrlSync": False, "type": "datasource",
    }


def _variable(variable: Variable) -> dict[str, Any]:
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": dict(DATASOURCE),
        "definition": variable.query,
        "hide": 0,
        "includeAll": True,
        "label": variable.label,
        "multi": True,
        "name": variable.name,
        "options": [],
        "query": {"query": variable.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
