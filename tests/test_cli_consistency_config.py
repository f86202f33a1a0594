"""The fault proxy's ``--config`` and the detector ensemble policy as typed models (issue 17,
item 2): hostile files get every problem at once as ``FILE:LINE: field: problem``, YAML 1.2
scalars stay what was written (``NO`` is a name, ``1:30`` is not ninety, ``yes`` is not
true), the shipped JSON Schemas say the same as the loaders, and no configuration loader
needs a ``type: ignore``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from paystab.anomaly.ensemble import load_policy, policy_from_text
from paystab.anomaly.hang import HangDetector
from paystab.chaos.proxy_server.config_file import load_proxy_config
from paystab.config.problems import ConfigInvalid
from paystab.config.schemas import json_schema, schema_path
from paystab.config.yaml12 import load_with_lines

ROOT = Path(__file__).resolve().parent.parent


def problems_of(exc: ConfigInvalid) -> list[tuple[int | None, str | None, str]]:
    return [(p.line, p.field, p.problem) for p in exc.problems]


# -- the fault proxy's --config ----------------------------------------------------------------
HOSTILE_PROXIES = """\
[
  {"name": "a", "upstream": "127.0.0.1:1"},
  {"name": "b", "upstream": "127.0.0.1:1", "lisen": "127.0.0.1:0"},
  {"name": "a", "upstream": "nohost", "listen": "10.0.0.1:80", "enabled": "yes"},
  {"upstream": "127.0.0.1:99999"},
  "card-alpha"
]
"""


def test_every_problem_of_a_proxy_config_at_once(tmp_path: Path) -> None:
    path = tmp_path / "toxiproxy.json"
    path.write_text(HOSTILE_PROXIES)
    with pytest.raises(ConfigInvalid) as info:
        load_proxy_config(path, allow_public=False)
    found = problems_of(info.value)
    assert all(p.source == str(path) for p in info.value.problems)
    assert (3, "[1].lisen", "unknown field 'lisen' (did you mean 'listen'?)") in found
    assert (4, "[2].name", "duplicate proxy name 'a'") in found
    assert (4, "[2].listen", "'10.0.0.1:80' is not a loopback address") in found
    assert (4, "[2].enabled", "got a string ('yes')") in found  # YAML 1.2: not true
    assert any(line == 4 and field == "[2].upstream" and "'nohost' is not host:port" in text
               for line, field, text in found)
    assert (5, "[3].name", "missing required field 'name'") in found
    assert any(line == 5 and field == "[3].upstream" and "port must be a number" in text
               for line, field, text in found)
    assert any(line == 6 and field == "[4]" for line, field, _ in found)
    assert [p.line for p in info.value.problems] == sorted(p.line or 0 for p in info.value.problems)
    message = str(info.value)
    assert message.startswith(f"{path}:3: [1].lisen: unknown field 'lisen'")
    assert f"and {len(found) - 1} more problems" in message


def test_a_proxy_config_in_yaml_keeps_yaml_12_scalars(tmp_path: Path) -> None:
    path = tmp_path / "proxies.yaml"
    path.write_text("- {name: NO, upstream: '127.0.0.1:9001', listen: '127.0.0.1:0'}\n"
                    "- name: yes\n  upstream: 1:30\n  enabled: false\n")
    proxies = load_proxy_config(path, allow_public=False)
    assert proxies == [  # Norway stays a name, 1:30 stays host "1" port 30 (not 90)
        {"name": "NO", "upstream": "127.0.0.1:9001", "listen": "127.0.0.1:0", "enabled": True},
        {"name": "yes", "upstream": "1:30", "enabled": False}]
    path.write_text("- {name: p, upstream: '127.0.0.1:1', enabled: on}\n")
    with pytest.raises(ConfigInvalid, match=r"proxies.yaml:1: \[0\]\.enabled: got a string"):
        load_proxy_config(path, allow_public=False)


def test_a_public_listen_address_is_fine_with_a_token(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('[{"name": "a", "upstream": "127.0.0.1:1", "listen": "10.0.0.1:80"}]')
    assert load_proxy_config(path, allow_public=True)[0]["listen"] == "10.0.0.1:80"
    path.write_text('{"name": "a"}')  # not a list
    with pytest.raises(ConfigInvalid, match="expected a list"):
        load_proxy_config(path, allow_public=True)


# -- the ensemble policy -----------------------------------------------------------------------
HOSTILE_POLICY = """\
detectors:
  failure_rate: {false_alarm_every_h: 1:30, shifts: [0.1, 2]}
  hang:
    gateway_timeout_s: soon
    colour: red
  latncy: {}
  ecod: 5
failover:
  when:
    - [failure_rate]
    - []
    - [hang, NO]
  within_s: 5
  extra: yes
"""


def test_every_problem_of_an_ensemble_policy_at_once(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(HOSTILE_POLICY)
    with pytest.raises(ConfigInvalid) as info:
        load_policy(path)
    found = {(line, field): text for line, field, text in problems_of(info.value)}
    assert found[(2, "detectors.failure_rate.false_alarm_every_h")] == (
        "cannot read '1:30' as a duration")  # YAML 1.2: not 90
    assert found[(2, "detectors.failure_rate.shifts")] == "2 is out of range"
    assert found[(4, "detectors.hang.gateway_timeout_s")] == "cannot read 'soon' as a duration"
    assert found[(5, "detectors.hang.colour")] == "unknown option 'colour'"
    assert found[(6, "detectors.latncy")] == "unknown detector 'latncy' (did you mean 'latency'?)"
    assert found[(7, "detectors.ecod")] == "got a number (5)"
    assert found[(11, "failover.when[1]")] == "an empty list"
    assert found[(12, "failover.when[2][1]")] == "detector 'NO' is not configured"
    assert found[(13, "failover.within_s")].startswith("5 has no unit")
    assert found[(14, "failover.extra")] == "unknown field 'extra'"
    assert len(found) == 10
    assert str(info.value).startswith(f"{path}:2: detectors.failure_rate.false_alarm_every_h: ")


def test_a_valid_policy_builds_the_detectors_with_their_options() -> None:
    policy = policy_from_text("detectors:\n  failure_rate: {false_alarm_every_h: 12h}\n"
                              "  hang: {gateway_timeout_s: 1500ms}\n"
                              "failover:\n  when: [[hang], [failure_rate, alertmanager]]\n"
                              "  within_s: 1m30s\n", "p.yaml")
    assert sorted(policy.detectors) == ["failure_rate", "hang"]
    assert policy.rules == [("hang",), ("failure_rate", "alertmanager")]
    assert policy.within_s == 90.0
    hang = policy.detectors["hang"]
    assert isinstance(hang, HangDetector) and hang.config.gateway_timeout_s == 1.5
    defaults = policy_from_text("failover: {within_s: 2s}\n", "p.yaml")
    assert sorted(defaults.detectors) == ["failure_rate", "hang", "latency"]
    assert defaults.rules == [("failure_rate",), ("hang",), ("latency",)]


# -- the shipped schemas -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["proxy-config", "ensemble"])
def test_the_schemas_are_shipped_and_catch_what_the_loaders_catch(kind: str) -> None:
    shipped = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    assert shipped == json_schema(kind)
    validator = jsonschema.Draft202012Validator(shipped)
    hostile = HOSTILE_PROXIES if kind == "proxy-config" else HOSTILE_POLICY
    value, _ = load_with_lines(hostile, "x")
    assert list(validator.iter_errors(value))
    good = (ROOT / "deploy/proxy/proxies.json").read_text() if kind == "proxy-config" else (
        "detectors:\n  hang: {gateway_timeout_s: 2s}\n  ecod: {baseline_samples: 300}\n"
        "failover: {when: [[hang], [ecod, alertmanager]], within_s: 10s}\n")
    value, _ = load_with_lines(good, "x")
    assert [e.message for e in validator.iter_errors(value)] == []


def test_schema_export_writes_the_new_kinds(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from paystab.cli import cli

    done = CliRunner().invoke(cli, ["schema", "export", str(tmp_path)])
    assert done.exit_code == 0, done.output
    for kind in ("proxy-config", "ensemble"):
        written = json.loads((tmp_path / f"{kind}.schema.json").read_text())
        assert written == json_schema(kind)


# -- no type: ignore in configuration loading --------------------------------------------------
CONFIG_LOADERS = [
    "paystab/config", "paystab/chaos/runbook_model.py", "paystab/chaos/runbook_load.py",
    "paystab/chaos/runbook.py", "paystab/stack/config.py", "paystab/loadtest/mix.py",
    "paystab/alerting/spec_file.py", "paystab/alerting/spec.py", "paystab/watch/config.py",
    "paystab/anomaly/options.py", "paystab/anomaly/ensemble_config.py",
    "paystab/anomaly/ensemble.py", "paystab/chaos/proxy_server/config_file.py",
    "paystab/cli/proxy_cmd.py", "paystab/stack/http_guard.py",
]


def test_no_type_ignore_in_configuration_loading() -> None:
    files = [f for entry in CONFIG_LOADERS for f in (
        sorted((ROOT / entry).rglob("*.py")) if (ROOT / entry).is_dir() else [ROOT / entry])]
    assert len(files) >= len(CONFIG_LOADERS)
    offenders = [f"{f.relative_to(ROOT)}:{n}" for f in files
                 for n, line in enumerate(f.read_text().splitlines(), 1)
                 if re.search(r"#\s*type:\s*ignore", line)]
    assert offenders == []


def test_the_proxy_and_ensemble_loaders_no_longer_use_the_node_reader() -> None:
    for module in ("paystab/anomaly/ensemble.py", "paystab/anomaly/ensemble_config.py",
                   "paystab/anomaly/options.py", "paystab/anomaly/base.py",
                   "paystab/cli/proxy_cmd.py", "paystab/chaos/proxy_server/config_file.py"):
        assert "yamlsrc" not in (ROOT / module).read_text(), module
