"""The JSON Schemas shipped for editors: equal to what the models generate, and every
bundled runbook valid against its schema (checked with the ``jsonschema`` package, as an
editor's language server would)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from paystab.chaos.bundled import bundled_runbooks
from paystab.config.schemas import KINDS, export, json_schema, schema_path
from paystab.config.yaml12 import load_file_with_lines, load_with_lines
from paystab.exceptions import InvalidInput
from tests.conftest_chaos import paystab, state

__all__ = ["state"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_shipped_schema_is_what_the_model_generates(kind: str) -> None:
    shipped = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    assert shipped == json_schema(kind), (
        f"{schema_path(kind)} is stale: run `python -m paystab.config.schemas`")
    jsonschema.Draft202012Validator.check_schema(shipped)


def test_every_bundled_runbook_validates_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(json_schema("runbook"))
    bundled = bundled_runbooks()
    assert bundled
    for name, path in bundled.items():
        value, _ = load_file_with_lines(path)
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, (name, errors)


def test_the_schema_catches_what_the_loader_catches() -> None:
    validator = jsonschema.Draft202012Validator(json_schema("runbook"))
    value, _ = load_with_lines("name: x\ndescription: d\nload: {rate: 5/s, duration: 30}\n"
                               "descripton: y\n", "r.yaml")
    messages = " ".join(e.message for e in validator.iter_errors(value))
    assert "'descripton' was unexpected" in messages
    assert "30 is not of type 'string'" in messages  # a duration needs its unit


def test_stack_config_and_mix_examples_validate() -> None:
    stack = jsonschema.Draft202012Validator(json_schema("stack-config"))
    value, _ = load_with_lines("routing: {response_timeout: 2s, breaker: {window: 10s}}\n"
                               "providers:\n  card-alpha: {countries: [JP, NO], fee_bps: 240}\n"
                               "  card-charlie: {enabled: false}\n", "s.yaml")
    assert not list(stack.iter_errors(value))
    mix = jsonschema.Draft202012Validator(json_schema("mix"))
    value, _ = load_with_lines("decline_share: 0.05\nmethods:\n  card:\n    weight: 1\n"
                               "    markets: [{currency: NOK, country: NO, weight: 1, "
                               "median_amount: 900}]\n", "m.yaml")
    assert not list(mix.iter_errors(value))
    with pytest.raises(InvalidInput, match="did you mean 'runbook'"):
        json_schema("runbok")


def test_schema_export_cli_writes_every_kind(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "schemas" / "nested"
    proc = paystab("schema", "export", str(out), state=state)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.schema.json" for k in KINDS)
    assert export(tmp_path / "again") and (out / "runbook.schema.json").read_text() == \
        schema_path("runbook").read_text()
    shown = paystab("schema", "show", "stack-config", state=state)
    assert shown.returncode == 0 and json.loads(shown.stdout)["title"] == "paystab up --config"
    bad = paystab("schema", "show", "runbok", state=state)
    assert bad.returncode == 2 and "did you mean 'runbook'" in bad.stderr


def test_duration_defaults_are_shown_as_written() -> None:
    schema = json_schema("runbook")
    window = schema["$defs"]["AbortModel"]["properties"]["window"]
    assert window["default"] == "30s"
    jsonschema.validate(window["default"], {k: v for k, v in window.items() if k != "default"})
