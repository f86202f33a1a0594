"""The generated Grafana dashboards load in Grafana's model (schemaVersion 39, Grafana 10/11).

No Grafana runs here, so the checks are the ones Grafana's loader and the dashboard schema
enforce: a uid, schemaVersion, panels with unique ids, gridPos inside the 24-column grid and
not overlapping, a Prometheus datasource on every panel and target, every target an expr with
a refId, and every template variable the queries use defined.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from paystab.alerting.boards import BOARDS
from paystab.alerting.export import render_dashboards
from paystab.alerting.grafana import SCHEMA_VERSION
from paystab.alerting.spec import AlertingConfig
from paystab.collector import names
from tests.conftest_alerting import REPO

KNOWN_PANEL_TYPES = {"timeseries", "stat", "gauge", "heatmap", "state-timeline", "row"}
METRIC_NAMES = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}


def _models() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in render_dashboards(AlertingConfig()).items()}


@pytest.mark.parametrize("name", sorted(f"{n}.json" for n in BOARDS))
def test_dashboard_model_is_valid(name: str) -> None:
    model = _models()[name]
    assert model["schemaVersion"] == SCHEMA_VERSION == 39
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", model["uid"]), model["uid"]
    assert model["title"] and model["id"] is None  # id null: Grafana assigns one on import
    variables = {v["name"] for v in model["templating"]["list"]}
    assert "datasource" in variables
    panels = model["panels"]
    assert panels, "a dashboard without panels"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in KNOWN_PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in ("h", "w", "x", "y"))
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, grid
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"panel {panel['title']!r} has no targets"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["datasource"]["type"] == "prometheus"
            assert target["expr"].strip()
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var.startswith("__") or var in variables, f"undefined ${var}"
            assert any(m in target["expr"] for m in METRIC_NAMES | {"paystab:"}), target["expr"]
        assert "defaults" in panel["fieldConfig"] and "overrides" in panel["fieldConfig"]
    for annotation in model["annotations"]["list"]:
        assert annotation["name"] and "datasource" in annotation


def test_provider_health_has_heatmap_with_exemplars() -> None:
    model = _models()["provider-health.json"]
    heatmaps = [p for p in model["panels"] if p["type"] == "heatmap"]
    assert heatmaps
    target = heatmaps[0]["targets"][0]
    assert target["format"] == "heatmap" and target["exemplar"] is True
    assert names.PROVIDER_LATENCY + "_bucket" in target["expr"]
    assert heatmaps[0]["options"]["calculate"] is False  # Prometheus buckets, not Grafana's


def test_failover_dashboard_annotates_from_paystab_metrics() -> None:
    model = _models()["failover-chaos.json"]
    exprs = " ".join(a.get("expr", "") for a in model["annotations"]["list"])
    assert names.FAILOVERS_TOTAL in exprs and names.ACTIVE_FAULTS in exprs


def test_overview_shows_slo_budget_and_burn_rate() -> None:
    model = _models()["payments-overview.json"]
    titles = " ".join(p["title"] for p in model["panels"])
    for word in ("Availability", "Error budget remaining", "Burn rate", "99.99 %"):
        assert word in titles


def test_committed_dashboards_are_the_generated_ones() -> None:
    for name, text in render_dashboards(AlertingConfig()).items():
        committed = REPO / "dashboards" / "grafana" / name
        assert committed.read_text() == text, f"{committed} is stale: run `python -m paystab.alerting.export`"
