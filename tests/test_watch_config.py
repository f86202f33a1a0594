"""The watch config: typed, YAML 1.2 scalars, every error at once with file:line:field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from paystab.cli import cli
from paystab.exceptions import InvalidInput
from paystab.watch.config import SCHEMA_PATH, WatchConfigInvalid, config_from_text, load_config, schema_text

GOOD = """\
interval_s: 1s
providers:
  - name: NO            # YAML 1.2: Norway's code stays a string
    methods: [card]
  - name: stripe
    methods: [card, wallet]
sources:
  - kind: prometheus
    url: http://127.0.0.1:9090
    preset: otel_http_client
  - kind: otlp
    listen: 127.0.0.1:0
actuators:
  - kind: webhook
    url: http://127.0.0.1:8000/flags/{provider}
    body: '{{"enabled": {enabled}}}'
state_file: state.json
"""


def test_good_config_parses_with_yaml12_scalars(tmp_path: Path) -> None:
    path = tmp_path / "watch.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.providers[0].name == "NO"
    assert config.interval_s == 1.0
    assert config.sources[0].kind == "prometheus"
    assert config.state_file == str(tmp_path / "state.json")
    assert set(config.detectors) == {"failure_rate", "hang", "latency"}


def test_every_error_at_once_with_lines() -> None:
    text = """\
interval_s: 1
sources:
  - kind: prometheus
    url: ftp://nowhere
  - kind: carrier-pigeon
detectors:
  failure_rate: {no_such_option: 1}
actuators:
  - kind: webhook
    url: http://127.0.0.1:1/x
    method: YEET
"""
    with pytest.raises(WatchConfigInvalid) as info:
        config_from_text(text, "w.yaml")
    problems = info.value.problems
    assert problems[0].startswith("w.yaml:1: interval_s:")
    assert any(p.startswith("w.yaml:4: sources[0].url:") for p in problems)
    assert any(p.startswith("w.yaml:5: sources[1]:") for p in problems)
    assert any(p.startswith("w.yaml:7: detectors.failure_rate.no_such_option:") for p in problems)
    assert any(p.startswith("w.yaml:11: actuators[0].method:") for p in problems)
    assert isinstance(info.value, InvalidInput)


def test_missing_field_names_field_and_parent_line() -> None:
    with pytest.raises(WatchConfigInvalid) as info:
        config_from_text("sources:\n  - kind: metrics_url\n", "m.yaml")
    assert info.value.problems == ["m.yaml:2: sources[0].url: Field required"]


def test_off_loopback_admin_needs_token() -> None:
    text = "sources: [{kind: otlp}]\nadmin: {listen: '0.0.0.0:9097'}\n"
    with pytest.raises(WatchConfigInvalid, match="token_env"):
        config_from_text(text)


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: []\nsafety: {max_actions: -1}\n")
    runner = CliRunner()
    ok = runner.invoke(cli, ["watch", "validate", str(good)])
    assert ok.exit_code == 0, ok.output
    failed = runner.invoke(cli, ["watch", "validate", str(bad)])
    assert isinstance(failed.exception, InvalidInput)
    assert failed.exception.exit_code == 2
    assert "bad.yaml:1: sources" in failed.exception.message
    assert "bad.yaml:2: safety.max_actions" in failed.exception.message


def test_shipped_schema_is_generated_from_the_model() -> None:
    assert SCHEMA_PATH.read_text() == schema_text()
    schema = json.loads(schema_text())
    assert "sources" in schema["required"]
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_configs_in_the_docs_are_valid() -> None:
    import re

    text = (Path(__file__).resolve().parent.parent / "docs" / "watch.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert len(blocks) == 3
    kinds = set()
    for i, block in enumerate(blocks):
        config = config_from_text(block, f"docs/watch.md block {i}")
        kinds |= {s.kind for s in config.sources}
    assert kinds == {"metrics_url", "prometheus", "otlp"}


def test_bad_templates_are_refused_at_load() -> None:
    with pytest.raises(WatchConfigInvalid) as info:
        config_from_text("""\
sources: [{kind: otlp}]
actuators:
  - {kind: webhook, url: 'http://127.0.0.1:1/{providr}', body: '{"enabled": {enabled}}'}
  - {kind: command, argv: [echo, '{action}', '{nope}']}
""", "t.yaml")
    problems = info.value.problems
    assert problems[0].startswith("t.yaml:3: actuators[0].url: bad template")
    assert problems[1].startswith("t.yaml:3: actuators[0].body: bad template")
    assert problems[2].startswith("t.yaml:4: actuators[1].argv[2]: bad template")


def test_cli_exit_codes_in_a_real_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("interval_s: 1\nsources: []\n")
    done = subprocess.run([sys.executable, "-m", "paystab", "watch", "validate", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"{bad}:1: interval_s" in done.stderr and f"{bad}:2: sources" in done.stderr
    assert "Traceback" not in done.stderr
    missing = subprocess.run([sys.executable, "-m", "paystab", "watch"], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and "--config" in missing.stderr


def test_the_host_guard_is_configured_from_the_failover_section(tmp_path: Path) -> None:
    """The guard that keeps a slow host from draining healthy providers is the user's to
    tune (their loop-lag metric, their number of providers): the values reach the failover
    controller, and an impossible one is refused with its line and field."""
    from paystab.anomaly.controller import ControllerConfig
    from paystab.watch.service import WatchService

    text = ("sources: [{kind: otlp, listen: '127.0.0.1:0'}]\n"
            "admin: {listen: '127.0.0.1:0'}\n"
            "failover:\n  host_lag_s: 500ms\n  host_share: 0.75\n"
            "  host_window_s: 3s\n  host_confirm_s: 0\n")
    config = config_from_text(text, "w.yaml")
    service = WatchService(config)
    try:
        got = service.controller.config
        assert (got.host_lag_s, got.host_share, got.host_window_s, got.host_confirm_s) \
            == (0.5, 0.75, 3.0, 0.0)
        # the rest as before
        assert got.cooldown_s == config.failover.cooldown_s == ControllerConfig().cooldown_s
    finally:
        service.stop()
    defaults = config_from_text("sources: [{kind: otlp}]\n", "d.yaml").failover
    base = ControllerConfig()
    assert (defaults.host_lag_s, defaults.host_share, defaults.host_window_s,
            defaults.host_confirm_s) == (base.host_lag_s, base.host_share, base.host_window_s,
                                         base.host_confirm_s)
    with pytest.raises(WatchConfigInvalid) as info:
        config_from_text("sources: [{kind: otlp}]\nfailover:\n  host_share: 1.5\n"
                         "  host_lag_s: -1s\n", "bad.yaml")
    problems = info.value.problems
    assert any(p.startswith("bad.yaml:3: failover.host_share:") for p in problems), problems
    assert any(p.startswith("bad.yaml:4: failover.host_lag_s:") for p in problems), problems
