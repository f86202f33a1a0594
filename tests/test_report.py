"""Report schema, the renderer contract, JSON, JUnit, terminal, live view and the CLI."""

from __future__ import annotations

import copy
import io
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.live import Live

from paystab.cli.report_cmds import report_command
from paystab.exceptions import Aborted, InvalidInput, VerdictFailed
from paystab.report.base import renderer, renderer_names, write_report
from paystab.report.live import ActiveFault, LiveSnapshot, LiveView, ProviderState, render_live
from paystab.report.model import DetectionRecord, Report
from paystab.report.schema import SCHEMA_V1, load_report, schema_problems
from tests.report_demo import demo_variants

DESIGN_SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "design" / "report.schema.json"
VARIANTS = demo_variants()


@pytest.fixture(params=sorted(VARIANTS))
def report(request: pytest.FixtureRequest) -> Report:
    return copy.deepcopy(VARIANTS[request.param])


# -- schema ------------------------------------------------------------------------------


def test_packaged_schema_is_the_design_schema() -> None:
    from tests.conftest import require

    require(str(DESIGN_SCHEMA), DESIGN_SCHEMA.exists(), "shared/ sits beside the checkout in CI")
    assert json.loads(DESIGN_SCHEMA.read_text()) == SCHEMA_V1


def test_json_output_validates_against_schema(report: Report) -> None:
    data = json.loads(renderer("json").render(report))
    jsonschema.validate(data, SCHEMA_V1)
    assert schema_problems(data) == []
    assert data["schema"] == "paystab.report/v1" and data["verdict"] == report.verdict


def test_json_round_trip_renders_the_same(report: Report) -> None:
    text = renderer("json").render(report)
    again = Report.from_json(json.loads(text))
    assert renderer("json").render(again) == text
    assert renderer("html").render(again) == renderer("html").render(report)


def test_nan_becomes_null_in_strict_json() -> None:
    report = copy.deepcopy(VARIANTS["pass"])
    report.traffic.p99_ms = math.nan
    data = json.loads(renderer("json").render(report))
    assert data["traffic"]["p99_ms"] is None


def test_invalid_report_is_a_bug_at_render_time() -> None:
    report = copy.deepcopy(VARIANTS["pass"])
    report.verdict = "maybe"
    with pytest.raises(ValueError, match="verdict"):
        renderer("json").render(report)


BROKEN: list[tuple[str, Any, str]] = [
    ("missing field", lambda d: d.pop("incidents"), "incidents"),
    ("wrong type", lambda d: d["traffic"].update(availability="high"), "traffic.availability"),
    ("out of range", lambda d: d["traffic"].update(availability=1.5), "traffic.availability"),
    ("bad enum", lambda d: d["failovers"][0].update(action="panic"), "failovers[0].action"),
    ("bool is not int", lambda d: d.update(seed=True), "seed"),
    ("negative count", lambda d: d["reconciliation"].update(orphans=-1),
     "reconciliation.orphans"),
    ("wrong schema", lambda d: d.update(schema="paystab.report/v2"), "schema"),
    ("empty runbook", lambda d: d.update(runbook=""), "runbook"),
    ("missing item field", lambda d: d["faults"][1].pop("cleared_at_s"),
     "faults[1].cleared_at_s"),
]


@pytest.mark.parametrize(("name", "breaks", "field"), BROKEN, ids=[b[0] for b in BROKEN])
def test_validator_agrees_with_jsonschema(name: str, breaks: Any, field: str) -> None:
    data = json.loads(renderer("json").render(VARIANTS["pass"]))
    breaks(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA_V1)
    assert next(f for f, _ in schema_problems(data)) == field


def test_load_report_names_file_line_and_field(tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"schema": "paystab.report/v1",\n "runbook": }')
    with pytest.raises(InvalidInput) as caught:
        load_report(bad_json)
    assert caught.value.source == str(bad_json) and caught.value.line == 2
    data = json.loads(renderer("json").render(VARIANTS["pass"]))
    data["traffic"]["p95_ms"] = "fast"
    bad_field = tmp_path / "field.json"
    bad_field.write_text(json.dumps(data))
    with pytest.raises(InvalidInput) as caught:
        load_report(bad_field)
    assert caught.value.field == "traffic.p95_ms"
    assert "field.json: traffic.p95_ms: must be number or null" in str(caught.value)
    with pytest.raises(InvalidInput, match="no such file"):
        load_report(tmp_path / "missing.json")


def test_old_reports_without_extension_fields_load() -> None:
    data = json.loads(renderer("json").render(VARIANTS["pass"]))
    for key in ("timeline", "provider_timeline", "slo", "load", "notes", "description"):
        data.pop(key)
    for incident in data["incidents"]:
        for key in ("provider", "impact_start_s", "recovered_at_s", "note", "impact_requests"):
            incident.pop(key)
    report = Report.from_json(data)
    assert "Drill report" in renderer("html").render(report)


# -- the renderer contract ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["html", "json", "junit", "text"])
def test_renderer_contract(name: str, report: Report) -> None:
    assert name in renderer_names()
    before = json.dumps(report.to_json(), sort_keys=True, default=str)
    first = renderer(name).render(report)
    assert first and first == renderer(name).render(report)  # deterministic
    assert json.dumps(report.to_json(), sort_keys=True, default=str) == before  # read only


def test_unknown_renderer_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="html, json, junit, text"):
        renderer("pdf")


def test_write_report_is_atomic_and_creates_directories(tmp_path: Path) -> None:
    path = write_report(VARIANTS["pass"], tmp_path / "out" / "report.json", "json")
    assert json.loads(path.read_text())["runbook"] == "provider-timeout"
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


# -- JUnit -------------------------------------------------------------------------------


def junit(report: Report) -> ET.Element:
    text = renderer("junit").render(report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text)


def test_junit_pass() -> None:
    suite = junit(VARIANTS["pass"]).find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 6 + 4 and suite.get("tests") == "10" and suite.get("failures") == "0"
    names = [c.get("name") for c in cases if c.get("classname", "").endswith(".hypotheses")]
    assert names[0] == "availability >= 0.9999"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["seed"] == "7" and props["verdict"] == "pass"


def test_junit_failures_carry_observed_and_expected() -> None:
    root = junit(VARIANTS["fail"])
    assert root.get("failures") == "2"
    failures = {c.get("name"): c.find("failure") for c in root.iter("testcase")
                if c.find("failure") is not None}
    assert set(failures) == {"availability >= 0.9999", "max_ttd_s <= 2"}
    message = failures["availability >= 0.9999"].get("message")  # type: ignore[union-attr]
    assert message == "observed 0.998667; expected availability >= 0.9999"


def test_junit_aborted_and_unmeasured() -> None:
    aborted = junit(VARIANTS["aborted"])
    error = aborted.find(".//testcase[@name='drill ran to completion']/error")
    assert error is not None and "fell below the floor" in (error.get("message") or "")
    assert aborted.get("errors") == "1" and aborted.get("failures") == "2"
    unmeasured = junit(VARIANTS["unmeasured"])
    assert unmeasured.get("skipped") == "4"  # the four reconciliation invariants
    assert len(unmeasured.findall(".//testcase/skipped")) == 4


def test_junit_reconciliation_failure_lists_findings() -> None:
    report = copy.deepcopy(VARIANTS["pass"])
    report.reconciliation.double_charges = 1
    report.reconciliation.findings = [{"kind": "double_charge", "payment": "pay_1"}]
    root = junit(report)
    failure = root.find(".//testcase[@name='double_charges == 0'][@classname="
                        "'paystab.drill.provider-timeout.reconciliation']/failure")
    assert failure is not None and "pay_1" in (failure.text or "")
    assert root.get("failures") == "1"


# -- terminal and live -------------------------------------------------------------------


def test_terminal_summary() -> None:
    text = renderer("text").render(VARIANTS["fail"])
    assert "FAIL" in text and "availability >= 0.9999" in text and "0.998667" in text
    assert "alpha-hang" in text and "4.0 s" in text
    aborted = renderer("text").render(VARIANTS["aborted"])
    assert "ABORTED" in aborted and "not recovered" in aborted


def snapshot() -> LiveSnapshot:
    return LiveSnapshot(
        elapsed_s=17.4, duration_s=60.0, phase="load", target_rps=100, current_rps=98.0,
        requests=1700, failed=2, availability=0.99882, availability_10s=0.998, p95_ms=2040.0,
        active_faults=[ActiveFault("alpha-hang", "provider.hang", "provider:card-alpha", 15.0,
                                   35.0)],
        providers=[ProviderState("card-alpha", "drained", "open", 0.0, None),
                   ProviderState("card-bravo", "active", "closed", 45.2, 1.0)],
        detections=[DetectionRecord("card-alpha", "hang", 15.5, "oldest in flight 0.5 s")],
    )


def test_live_view_renders_a_snapshot() -> None:
    console = Console(file=io.StringIO(), width=110, color_system=None)
    console.print(render_live(snapshot(), "provider-timeout"))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for expected in ("provider-timeout", "17.4 s", "98/s of 100/s", "99.882 %", "2,040 ms",
                     "alpha-hang", "drained", "open", "hang", "oldest in flight"):
        assert expected in text, expected
    empty = Console(file=io.StringIO(), width=110, color_system=None)
    empty.print(render_live(LiveSnapshot(elapsed_s=0.0)))
    assert "no fault active" in empty.file.getvalue()  # type: ignore[attr-defined]


def test_live_view_under_rich_live() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=110, color_system=None, force_terminal=True)
    view = LiveView("provider-timeout", duration_s=60)
    with Live(view, console=console, auto_refresh=False) as live:
        view.update(snapshot())
        live.refresh()
    assert "alpha-hang" in buffer.getvalue()


# -- the CLI -----------------------------------------------------------------------------


def saved(tmp_path: Path, name: str) -> Path:
    return write_report(VARIANTS[name], tmp_path / f"{name}.json", "json")


def test_cli_rerenders_every_format(tmp_path: Path) -> None:
    source = saved(tmp_path, "fail")
    out = tmp_path / "out"
    result = CliRunner().invoke(report_command, [
        str(source), "--html", str(out / "r.html"), "--junit", str(out / "j.xml"),
        "--json", str(out / "r.json")])
    assert result.exit_code == 0, result.output
    assert "FAIL" in result.output and "max_ttd_s <= 2" in result.output
    assert json.loads((out / "r.json").read_text()) == json.loads(source.read_text())
    assert ET.parse(out / "j.xml").getroot().get("failures") == "2"
    assert (out / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_cli_check_follows_the_verdict(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(report_command, [str(saved(tmp_path, "pass")), "--check", "-q"])
    assert ok.exit_code == 0 and ok.output == ""
    failed = runner.invoke(report_command, [str(saved(tmp_path, "fail")), "--check", "-q"],
                           standalone_mode=False)
    assert isinstance(failed.exception, VerdictFailed)
    assert "availability >= 0.9999" in str(failed.exception)
    aborted = runner.invoke(report_command, [str(saved(tmp_path, "aborted")), "--check", "-q"],
                            standalone_mode=False)
    assert isinstance(aborted.exception, Aborted)


def test_cli_bad_input_is_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps({"schema": "paystab.report/v1", "runbook": "x"}))
    result = CliRunner().invoke(report_command, [str(bad)], standalone_mode=False)
    assert isinstance(result.exception, InvalidInput)
    assert result.exception.exit_code == 2
    assert result.exception.field == "verdict" and str(bad) in str(result.exception)
