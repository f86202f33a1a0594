"""Rules and their promtool tests: valid, reproducible, documented, and able to catch bugs.

promtool (Debian ``prometheus``) checks the committed rule files, runs the generated unit
tests (every alert shown firing and not firing), and — to prove those tests have teeth —
fails them on deliberately broken rules. Every alert links a runbook that exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from paystab.alerting.alerts import all_alerts
from paystab.alerting.export import RULE_FILE, committed_files, render_rules, write_files
from paystab.alerting.promtests import render_template
from paystab.alerting.spec import DEFAULT_RUNBOOK_URL_BASE, AlertingConfig
from tests.conftest_alerting import REPO, need_binary

PROM_DIR = REPO / "dashboards" / "prometheus"
RUNBOOK_SECTIONS = ("## Symptoms", "## Likely causes", "## What paystab does automatically",
                    "## What a human checks", "## Queries")


def _promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    promtool = need_binary("promtool", "prometheus")
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def _promtool_test(directory: Path) -> subprocess.CompletedProcess[str]:
    return _promtool("test", "rules", *sorted((directory / "tests").glob("*.test.yml")))


def test_committed_files_are_reproducible() -> None:
    for relative, text in committed_files().items():
        path = REPO / relative
        assert path.exists(), f"{relative} missing: run `python -m paystab.alerting.export`"
        assert path.read_text() == text, f"{relative} is stale: run `python -m paystab.alerting.export`"


def test_every_alert_is_documented_and_links_an_existing_runbook() -> None:
    alerts = [rule for group in yaml.safe_load((PROM_DIR / RULE_FILE).read_text())["groups"]
              for rule in group["rules"] if "alert" in rule]
    names = {a["alert"] for a in alerts}
    assert {"PaystabErrorBudgetBurnFast", "PaystabErrorBudgetBurnSlow",
            "PaystabErrorBudgetBurnTicket", "PaystabProviderFailureRateHigh",
            "PaystabProviderFailureRateCritical", "PaystabProviderHang", "PaystabDetectorFired",
            "PaystabScrapeDown", "PaystabMetricsAbsent"} <= names
    for alert in alerts:
        assert alert["labels"]["severity"] in ("page", "ticket", "warning"), alert["alert"]
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["description"], alert["alert"]
        url = annotations["runbook_url"]
        assert url.startswith(DEFAULT_RUNBOOK_URL_BASE) and url.endswith(".md")
        runbook = REPO / "runbooks" / "alerts" / url.removeprefix(DEFAULT_RUNBOOK_URL_BASE)
        assert runbook.exists(), f"{alert['alert']}: {runbook} does not exist"
        text = runbook.read_text()
        assert alert["alert"] in text.splitlines()[0], f"{runbook} is not about {alert['alert']}"
        for section in RUNBOOK_SECTIONS:
            assert section in text, f"{runbook} lacks {section!r}"


def test_thresholds_follow_the_sre_workbook_and_the_seeds() -> None:
    rules = {a.alert: a for a in all_alerts(AlertingConfig())}
    fast, slow, ticket = (rules[f"PaystabErrorBudgetBurn{n}"] for n in ("Fast", "Slow", "Ticket"))
    assert "rate1h > (14.4 * 0.0001)" in fast.expr and "rate5m > (14.4 * 0.0001)" in fast.expr
    assert "rate6h > (6 * 0.0001)" in slow.expr and "rate30m > (6 * 0.0001)" in slow.expr
    assert "rate3d > (1 * 0.0001)" in ticket.expr and "rate6h > (1 * 0.0001)" in ticket.expr
    assert (fast.severity, slow.severity, ticket.severity) == ("page", "page", "ticket")
    assert "> 0.01" in rules["PaystabProviderFailureRateHigh"].expr
    assert "> 0.05" in rules["PaystabProviderFailureRateCritical"].expr
    assert ">= 100" in rules["PaystabProviderFailureRateCritical"].expr  # traffic guard


def test_template_rendering_matches_prometheus_formatting() -> None:
    text = 'p {{ $labels.provider }} at {{ $value | humanizePercentage }}, {{ $value | printf "%.1f" }}'
    assert render_template(text, {"provider": "acme"}, 0.0288) == "p acme at 2.88%, 0.0"
    assert render_template("{{ $value | humanizePercentage }}", {}, 0.1) == "10%"
    with pytest.raises(ValueError):
        render_template("{{ $value | humanize1024 }}", {}, 1.0)


@pytest.mark.prometheus
def test_promtool_check_rules_on_committed_files() -> None:
    result = _promtool("check", "rules", *sorted(PROM_DIR.glob("*.rules.yml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 19 rules found" in result.stdout  # 10 recording rules, 9 alerts


@pytest.mark.slow
@pytest.mark.prometheus
def test_promtool_unit_tests_pass_on_committed_files() -> None:
    result = _promtool_test(PROM_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(list((PROM_DIR / "tests").glob("*.test.yml")))


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in (PROM_DIR / "tests").glob("*.test.yml"):
        for group in yaml.safe_load(path.read_text())["tests"]:
            for check in group["alert_rule_test"]:
                (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    every = {a.alert for a in all_alerts(AlertingConfig())}
    assert fired == every, f"never shown firing: {every - fired}"
    assert quiet == every, f"never shown quiet: {every - quiet}"


@pytest.mark.prometheus
@pytest.mark.parametrize("before, after, test_file", [
    # declines counted as provider failures: the 'healthy' provider would page
    ('{outcome!="declined"}', '{outcome=~".+"}', "providers-and-telemetry"),
    # the burn threshold ten times lower: the 'half the burn rate' test must catch it
    ("(14.4 * 0.0001)", "(1.44 * 0.0001)", "error-budget-burn-fast"),
    # the traffic guard dropped: the 'quiet' provider with 50 % errors would page
    (">= 100", ">= 0", "providers-and-telemetry"),
    # the short window ignored: the 'short window is clean' test must catch it
    ("and\n      paystab:payments_error_ratio:rate5m", "or\n      paystab:payments_error_ratio:rate5m",
     "error-budget-burn-fast"),
], ids=["declines-counted", "threshold-lowered", "guard-dropped", "short-window-ignored"])
def test_promtool_tests_catch_broken_rules(tmp_path: Path, before: str, after: str,
                                           test_file: str) -> None:
    rules = (PROM_DIR / RULE_FILE).read_text()
    assert before in rules, f"mutation {before!r} matches nothing"
    (tmp_path / RULE_FILE).write_text(rules.replace(before, after))
    (tmp_path / "tests").mkdir()
    shutil.copy(PROM_DIR / "tests" / f"{test_file}.test.yml", tmp_path / "tests")
    result = _promtool_test(tmp_path)
    assert result.returncode != 0, f"promtool tests missed the mutation {before!r} -> {after!r}"
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.prometheus
@pytest.mark.parametrize("config", [
    AlertingConfig.fast(),
    AlertingConfig(slo_target=0.999, provider_window="10m", provider_min_attempts=50,
                   runbook_url_base="https://wiki.example.com/runbooks/"),
], ids=["fast-profile", "slo-99.9"])
def test_other_configs_generate_valid_tested_rules(tmp_path: Path, config: AlertingConfig) -> None:
    write_files(tmp_path, render_rules(config))
    checked = _promtool("check", "rules", *sorted(tmp_path.glob("*.rules.yml")))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool_test(tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = (tmp_path / RULE_FILE).read_text()
    if config.slo_target == 0.999:
        assert "(14.4 * 0.001)" in alerts and "https://wiki.example.com/runbooks/" in alerts
    else:
        assert not re.search(r"^\s+for:", alerts, re.M)  # fast profile: no for: at all
