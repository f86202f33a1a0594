"""The stack file: hostile files get every problem at once as FILE:LINE: field (exit 2),
templates, relative paths, `paystab init` -> `paystab stack validate`, the shipped schema,
and the reference stack's ready file read as a stack file."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest

from paystab.cli import main
from paystab.config.problems import ConfigInvalid
from paystab.config.schemas import json_schema, schema_path
from paystab.config.yaml12 import load_with_lines
from paystab.exceptions import InvalidInput
from paystab.stack.endpoints import ProviderEndpoint, StackEndpoints
from paystab.stackfile import load_stack, parse_stack
from paystab.stackfile.reference import from_ready_file, write_beside
from paystab.stackfile.starter import STARTER
from paystab.stackfile.templates import fill_simulators

MINIMAL = """\
version: 1
name: shop
checkout:
  base_url: http://127.0.0.1:8080
"""


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["paystab", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def problems_of(text: str, tmp_path: Path, **env: str) -> list[str]:
    with pytest.raises(ConfigInvalid) as info:
        parse_stack(text, "stack.yaml", tmp_path, environ=env)
    return [p.message for p in info.value.problems]


# -- hostile files --------------------------------------------------------------------------
HOSTILE = """\
version: 1
name: shop
servce: {}
service:
  command: [python3, app.py]
  env:
    DB: "${env:SHOP_DB}"
    BASE: "${simulators.card-alfa.url}"
    KEY: "${simulators.card-alpha.apikey}"
    ODD: "${nonsense}"
  start_timeout: 30
checkout:
  base_url: http://127.0.0.1:8080
  flow:
    steps:
      - {name: pay, path: /pay, json: {amount: "{{ amonut }}"}}
simulators:
  - {name: card-alpha, dialect: strip, methods: [card]}
  - {name: card-alpha, dialect: adyen, methods: [cash]}
telemetry:
  sources: [{kind: prometeus, url: "http://127.0.0.1:9090"}]
failover:
  actuators: [{kind: webhook, url: "http://127.0.0.1:1/{provder}"}]
faults:
  allow: [nonsense]
"""


def test_every_problem_of_a_hostile_file_is_listed_with_its_line_and_field(tmp_path: Path) -> None:
    found = problems_of(HOSTILE, tmp_path)
    expected = [
        (3, "servce", "unknown field 'servce' (did you mean 'service'?)"),
        (7, "service.env.DB", "environment variable SHOP_DB is not set"),
        (8, "service.env.BASE", "no simulator named 'card-alfa' (did you mean 'card-alpha'?)"),
        (9, "service.env.KEY", "a simulator has no 'apikey' (did you mean 'api_key'?)"),
        (10, "service.env.ODD", "'${nonsense}' is not a template this file knows"),
        (11, "service.start_timeout", "has no unit"),
        (16, "checkout.flow.steps[0].json", "unknown template value '{{ amonut }}'"),
        (18, "simulators[0].dialect", "unknown dialect 'strip' (did you mean 'stripe'?)"),
        (19, "simulators[1].name", "simulator 'card-alpha' is listed twice"),
        (19, "simulators[1].methods[0]", "got a string ('cash')"),
        (21, "telemetry.sources[0]", "unknown kind 'prometeus' (did you mean 'prometheus'?)"),
        (23, "failover.actuators[0].url", "bad template"),
        (25, "faults.allow", "cannot read 'nonsense'"),
    ]
    assert len(found) == len(expected), "\n".join(found)
    for line, field, words in expected:
        prefix = f"stack.yaml:{line}: {field}: "
        assert any(f.startswith(prefix) and words in f for f in found), (prefix, words, found)
    assert [int(f.split(":")[1]) for f in found] == sorted(int(f.split(":")[1]) for f in found)


def test_the_cli_lists_them_all_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "stack.yaml"
    bad.write_text(HOSTILE)
    before = sorted(tmp_path.iterdir())
    code, out, err = run_main(monkeypatch, capsys, "stack", "validate", str(bad))
    assert code == 2 and out == ""
    assert len(re.findall(rf"{re.escape(str(bad))}:\d+: ", err)) == 13, err
    assert "(expected " in err
    assert sorted(tmp_path.iterdir()) == before  # nothing written


@pytest.mark.parametrize(("text", "where", "words"), [
    ("name: [unclosed\n", "stack.yaml:2", "not valid YAML"),
    ("", "stack.yaml", "the file is empty"),
    ("- a list\n", "stack.yaml:1", "a stack file is a mapping"),
    ("version: 2\nname: s\ncheckout: {base_url: 'http://h:1'}\n", "stack.yaml:1: version",
     "got a number (2)"),
    ("name: s\n", "stack.yaml:1: checkout", "missing required field 'checkout'"),
    (MINIMAL + "  flow_file: f.yaml\n  locustfile: l.py\n", "stack.yaml:3: checkout",
     "at most one of flow, flow_file, locustfile"),
    (MINIMAL + "  flow: {steps: [{name: pay, path: /pay, jsn: {}}]}\n",
     "stack.yaml:5: checkout.flow.steps[0].jsn", "unknown field 'jsn' (did you mean 'json'?)"),
    (MINIMAL + "  locustfile: missing.py\n", "stack.yaml:5: checkout.locustfile",
     "file not found"),
    (MINIMAL + "telemetry: {sources: [{kind: metrics_url, url: 'http://h:1/metrics'}], "
     "detectors: {failur_rate: {}}}\n", "stack.yaml:5: telemetry.detectors.failur_rate",
     "did you mean 'failure_rate'?"),
    (MINIMAL + "failover: {actuators: [{kind: command, argv: ['true']}]}\n",
     "stack.yaml:5: failover.actuators", "nothing detects"),
    (MINIMAL + "telemetry: {sources: [{kind: metrics_url, url: 'http://h:1/metrics'}]}\n"
     "failover: {when: [[hnag]], actuators: [{kind: command, argv: ['true']}]}\n",
     "stack.yaml:6: failover.when[0]", "detector 'hnag' is not configured (did you mean 'hang'?)"),
    (MINIMAL + "description: '${simulators.card-alpha.url}'\n", "stack.yaml:5: description",
     "only filled in service.env"),
    (MINIMAL + "ledgers: {merchant: {kind: csv, path: o.csv}, psp: [{kind: simulators}]}\n",
     "stack.yaml:5: ledgers.psp[0]", "declares no simulators"),
    (MINIMAL + "load: {max_rps: 0}\n", "stack.yaml:5: load.max_rps", "is too small (expected > 0)"),
    (MINIMAL + "load: {max_rsp: 50}\n", "stack.yaml:5: load.max_rsp", "did you mean 'max_rps'?"),
])
def test_one_hostile_part(tmp_path: Path, text: str, where: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_stack(text, "stack.yaml", tmp_path, environ={})
    message = info.value.message
    assert message.startswith(where) and words in message, message


def test_an_unset_variable_is_one_problem_not_one_per_check(tmp_path: Path) -> None:
    text = MINIMAL.replace("http://127.0.0.1:8080", "${env:SHOP_URL}")
    assert problems_of(text, tmp_path) == [
        "stack.yaml:4: checkout.base_url: environment variable SHOP_URL is not set "
        "(expected SHOP_URL set in the environment of paystab)"]


def test_env_templates_are_filled_and_simulator_ones_wait(tmp_path: Path) -> None:
    text = MINIMAL.replace("8080", "${env:SHOP_PORT}") + """\
service:
  command: [app, --psp, "${simulators.card-alpha.url}"]
  env: {KEY: "${simulators.card-alpha.api_key}", PRICE: "$$5 ${env:SHOP_PORT}"}
simulators: [{name: card-alpha, dialect: stripe}]
"""
    spec = parse_stack(text, "stack.yaml", tmp_path, environ={"SHOP_PORT": "9123"})
    assert spec.checkout.base_url == "http://127.0.0.1:9123"
    assert spec.service is not None
    values = {("card-alpha", "url"): "http://127.0.0.1:5555", ("card-alpha", "api_key"): "sk_x"}
    lookup = lambda name, field: values.get((name, field))  # noqa: E731
    assert fill_simulators(spec.service.command[2], lookup) == "http://127.0.0.1:5555"
    assert fill_simulators(spec.service.env["KEY"], lookup) == "sk_x"
    assert fill_simulators(spec.service.env["PRICE"], lookup) == "$5 9123"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "flow.yaml").write_text("flow:\n  steps: [{name: pay, path: /pay}]\n")
    (folder / "stack.yaml").write_text(MINIMAL + "  flow_file: flow.yaml\n")
    loaded = load_stack(folder / "stack.yaml")
    assert loaded.spec.checkout.flow_file == str(folder / "flow.yaml")
    (folder / "flow.yaml").write_text("flow:\n  steps: [{name: pay, path: pay}]\n")
    with pytest.raises(InvalidInput) as info:
        load_stack(folder / "stack.yaml")
    assert str(folder / "flow.yaml") in info.value.message  # the flow file's own line


# -- init -> validate ----------------------------------------------------------------------
def test_init_writes_a_starter_that_validates_and_never_overwrites(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "stack.yaml"
    code, out, _ = run_main(monkeypatch, capsys, "init", str(target))
    assert code == 0 and target.read_text() == STARTER
    code, out, err = run_main(monkeypatch, capsys, "stack", "validate", str(target))
    assert code == 0, err
    assert "valid stack file 'my-shop'" in out and "card-alpha (stripe)" in out
    target.write_text("mine\n")
    code, _, err = run_main(monkeypatch, capsys, "init", str(target))
    assert code == 2 and "--force" in err and target.read_text() == "mine\n"
    code, _, _ = run_main(monkeypatch, capsys, "init", str(target), "--force")
    assert code == 0 and target.read_text() == STARTER


# -- the schema ----------------------------------------------------------------------------
def test_the_shipped_schema_matches_the_model_and_accepts_the_starter() -> None:
    shipped = json.loads(schema_path("stack").read_text(encoding="utf-8"))
    assert shipped == json_schema("stack")
    validator = jsonschema.Draft202012Validator(shipped)
    value, _ = load_with_lines(STARTER, "starter")
    assert not [e.message for e in validator.iter_errors(value)]
    value["servce"] = {}
    assert [e.message for e in validator.iter_errors(value)]


# -- the reference stack: one path ------------------------------------------------------------
def test_a_ready_file_is_read_as_a_stack_file_and_up_writes_one_beside_it(tmp_path: Path) -> None:
    endpoints = StackEndpoints(
        gateway_url="http://127.0.0.1:8080", metrics_url="http://127.0.0.1:8080/metrics",
        gateway_ledger=str(tmp_path / "gateway.db"), provider_admin_url="http://127.0.0.1:9000",
        providers={"card-alpha": ProviderEndpoint("card-alpha", "http://127.0.0.1:9001",
                                                  ["card"], "stripe", str(tmp_path / "a.db"))})
    ready = tmp_path / "ready.json"
    endpoints.write(ready)
    spec = from_ready_file(ready)
    assert spec.ready_file == str(ready.resolve())
    assert [s.name for s in spec.simulators] == ["card-alpha"]
    assert spec.ledgers is not None and spec.ledgers.merchant.kind == "paystab_gateway"
    assert load_stack(ready).spec == spec  # --stack takes the ready file itself
    written = write_beside(ready, endpoints)
    assert written == tmp_path / "stack.yaml"
    assert load_stack(written).spec == spec  # the same stack, either path


@pytest.mark.slow  # starts the session's reference stack when no other test has
def test_paystab_up_writes_the_stack_file_beside_its_ready_file(
        reference_stack: StackEndpoints) -> None:
    assert reference_stack.data_dir is not None
    folder = Path(reference_stack.data_dir).parent
    written = load_stack(folder / "stack.yaml")
    assert written.spec == from_ready_file(folder / "ready.json")
    assert written.spec.checkout.base_url == reference_stack.gateway_url
    assert {s.name for s in written.spec.simulators} == set(reference_stack.providers)
