"""The alert spec file (``rules export --spec``): a typed model over AlertingConfig,
YAML 1.2, every error with its line, the profile's values for what is not given."""

from __future__ import annotations

from pathlib import Path

import pytest

from paystab.alerting.spec import AlertingConfig
from paystab.alerting.spec_file import load_alert_spec
from paystab.config.problems import ConfigInvalid
from tests.conftest_chaos import paystab, state

__all__ = ["state"]


def test_a_spec_overrides_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("profile: fast\nslo_target: 0.999\nslo_period: 28d\nhang_threshold: 1500ms\n"
                    "burn_alerts:\n  - {name: Fast, runbook: fast-burn, severity: page, "
                    "factor: 14.4, long_window: 1h, short_window: 5m, for: 2m}\n"
                    "runbook_url_base: https://wiki.example/alerts\n")
    config = load_alert_spec(path)
    fast = AlertingConfig.fast()
    assert (config.slo_target, config.slo_period, config.hang_threshold_s) == (0.999, "28d", 1.5)
    assert config.provider_min_attempts == fast.provider_min_attempts  # the profile's
    [burn] = config.burn_alerts
    assert (burn.name, burn.for_, burn.long_window) == ("Fast", "2m", "1h")
    assert config.runbook_url("x") == "https://wiki.example/alerts/x.md"
    assert load_alert_spec(_write(tmp_path, "{}\n")) == AlertingConfig()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_every_error_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "slo_target: 1.5\nprovider_window: 5 minutes\nhang_treshold: 2s\n"
                            "burn_alerts:\n  - {name: X, runbook: x, severity: pager, factor: 2,"
                            " long_window: 1h, short_window: 5m}\n")
    with pytest.raises(ConfigInvalid) as info:
        load_alert_spec(path)
    got = [(p.line, p.field) for p in info.value.problems]
    assert got == [(1, "slo_target"), (2, "provider_window"), (3, "hang_treshold"),
                   (5, "burn_alerts[0].severity")], info.value.message
    assert "not a Prometheus duration" in info.value.message
    assert "did you mean 'hang_threshold'?" in info.value.message
    crossed = _write(tmp_path, "burn_alerts:\n  - {name: X, runbook: x, severity: page, "
                               "factor: 2, long_window: 5m, short_window: 1h}\n")
    with pytest.raises(ConfigInvalid, match="is not shorter than"):
        load_alert_spec(crossed)


def test_rules_export_reads_the_spec(state: Path, tmp_path: Path) -> None:
    spec = _write(tmp_path, "slo_target: 0.995\n")
    proc = paystab("rules", "export", str(tmp_path / "rules"), "--spec", str(spec), state=state)
    assert proc.returncode == 0, proc.stderr
    text = "".join(p.read_text() for p in (tmp_path / "rules").glob("*.rules.yml"))
    assert "0.995" in text or "0.005" in text
    bad = paystab("rules", "export", str(tmp_path / "r2"), "--spec",
                  str(_write(tmp_path, "slo_target: yes\n")), state=state)
    assert bad.returncode == 2 and "spec.yaml:1: slo_target: got a string ('yes')" in bad.stderr
