"""A real Prometheus and Alertmanager watching a real reference stack under load and fault.

The path users rely on, end to end: ``paystab up`` (gateway + provider simulators), a
bounded payment loop, Prometheus (Debian) scraping both processes every second with the
generated rules (fast profile: production expressions, zero ``for:``), Alertmanager sending
to paystab's webhook receiver process (:func:`runtime.start_receiver`, the same program the
compose stack runs), which drives the failover controller. An ``error_burst`` on
every card provider must make the provider and burn-rate alerts fire, Alertmanager must
deliver them, and the controller must drain a card provider through the gateway admin API.
Along the way every dashboard panel query and every rule's series must return data.
Also here: ``promtool check metrics`` on the live gateway's and providers' ``/metrics``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.alerting import runtime
from paystab.alerting.alerts import all_alerts, all_recording_rules
from paystab.alerting.boards import BOARDS
from paystab.alerting.serverconfig import scrape_targets_for
from paystab.alerting.spec import AlertingConfig
from paystab.stack.endpoints import StackEndpoints
from tests.conftest import RunningStack
from tests.conftest_alerting import BoundedLoad, grafana_to_promql, need_binary, prom_query, wait_for
from tests.payments import run_payments

CONFIG = AlertingConfig.fast()
# Sources of panels whose process this test does not run (the load harness, the chaos
# engine's journal, the fault proxy, a detector exporting its own metrics).
NOT_SCRAPED_HERE = {"load", "chaos", "proxy"}
ALERT_DEADLINE_S = 30.0  # from injection to firing, with 1 s scrape and evaluation


def _http_json(url: str, body: dict[str, Any] | None = None, method: str = "GET",
               token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _firing(prometheus_url: str, alertname: str) -> list[dict[str, Any]]:
    return prom_query(prometheus_url, f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh stack, Prometheus, Alertmanager and paystab's receiver process."""
    need_binary("prometheus", "prometheus")
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    (tmp_path / "stack").mkdir()
    stack = RunningStack(tmp_path / "stack")
    handles: list[Any] = []
    try:
        endpoints = stack.endpoints
        # detect=False: only Alertmanager may drain here, so a drain proves that path
        receiver = runtime.start_receiver(endpoints.gateway_url, tmp_path / "receiver",
                                          token=endpoints.admin_token, detect=False)
        handles.append(receiver)
        alertmanager = runtime.start_alertmanager(receiver.url + "/alerts", tmp_path / "am")
        handles.append(alertmanager)
        prometheus = runtime.start_prometheus(
            scrape_targets_for(endpoints, CONFIG, failover_url=receiver.url), tmp_path / "prom",
            config=CONFIG,
            alertmanager_url=alertmanager.url, scrape_interval_s=1, evaluation_interval_s=1)
        handles.append(prometheus)
        yield {"stack": stack, "endpoints": endpoints, "receiver": receiver,
               "prometheus": prometheus, "alertmanager": alertmanager}
    finally:
        for handle in reversed(handles):
            handle.stop()
        stack.stop()


def _inject_error_burst(endpoints: StackEndpoints, providers: list[str]) -> None:
    assert endpoints.provider_admin_url, "the ready file names no provider admin API"
    base = endpoints.provider_admin_url.rstrip("/")
    for name in providers:
        fault = _http_json(f"{base}/admin/providers/{name}/faults",
                           {"type": "error_burst", "ratio": 1.0, "error": "server_error"},
                           method="POST", token=endpoints.admin_token)
        assert fault["id"]


def _rule_series(expr: str) -> set[str]:
    """The metric and recording-rule names an expression reads."""
    return set(re.findall(r"\b(paystab[:_][a-zA-Z0-9_:]+|up)\b(?=\s*[{\[)\s])", expr + " "))


@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.slow
def test_alerts_fire_deliver_and_drain_under_a_provider_fault(monitored: dict[str, Any]) -> None:
    endpoints: StackEndpoints = monitored["endpoints"]
    prometheus = monitored["prometheus"]
    receiver: runtime.RunningProcess = monitored["receiver"]
    card_providers = sorted(n for n, p in endpoints.providers.items() if "card" in p.methods)
    assert len(card_providers) >= 3

    load = BoundedLoad(endpoints.gateway_url, rate_per_s=40, max_s=100).start()
    try:
        # steady state first: Prometheus has scraped traffic and no SLO alert fires
        wait_for(lambda: prom_query(prometheus.url, "paystab:payments_error_ratio:rate5m"),
                 30, "the error-ratio recording rule to have a value")
        for name in ("PaystabErrorBudgetBurnFast", "PaystabProviderFailureRateCritical"):
            assert not _firing(prometheus.url, name), f"{name} fires before any fault"

        injected = time.monotonic()
        _inject_error_burst(endpoints, card_providers)
        fired_after: dict[str, float] = {}
        for name in ("PaystabProviderFailureRateCritical", "PaystabProviderFailureRateHigh",
                     "PaystabErrorBudgetBurnFast", "PaystabErrorBudgetBurnSlow",
                     "PaystabErrorBudgetBurnTicket"):
            alerts = wait_for(lambda n=name: _firing(prometheus.url, n),  # type: ignore[misc]
                              ALERT_DEADLINE_S - (time.monotonic() - injected) + 1,
                              f"{name} to fire")
            fired_after[name] = time.monotonic() - injected
            if "Provider" in name:
                assert {a["metric"]["provider"] for a in alerts} & set(card_providers)
        print("\nalerts firing after injection (s): "
              + ", ".join(f"{k}={v:.1f}" for k, v in fired_after.items()))

        # Alertmanager → paystab webhook → controller → gateway admin API: a card provider drained
        def drained() -> list[str]:
            states = _http_json(f"{endpoints.gateway_url}/admin/providers",
                                token=endpoints.admin_token)["providers"]
            return [p["name"] for p in states if p["state"] == "drained"
                    and p["name"] in card_providers]

        drained_names = wait_for(drained, 30, "the controller to drain a card provider")

        # The receiver prints a decision once the gateway has acknowledged the drain, so
        # the line can follow the state change by a moment on a busy host: wait for it.
        def drain_events() -> list[dict[str, Any]]:
            lines = receiver.log_path.read_text().split("\n")[:-1]  # whole lines only
            events = [json.loads(line) for line in lines if line.startswith('{"time"')]
            logged = [e for e in events
                      if e["action"] == "drain" and e["detector"] == "alertmanager"]
            return logged if {e["provider"] for e in logged} >= set(drained_names) else []

        logged = wait_for(drain_events, 10, "the receiver to log its drain decisions")
        assert any("PaystabProviderFailureRate" in e["reason"] for e in logged)
        print(f"drained by the controller after {time.monotonic() - injected:.1f} s: "
              f"{sorted(drained_names)}")

        # the receiver's own /metrics counts that alarm and that decision
        # (a rate needs two scrapes of it)
        wait_for(lambda: prom_query(prometheus.url, "increase(paystab_detections_total[15s])")
                 and prom_query(prometheus.url, "increase(paystab_controller_actions_total[15s])"),
                 15, "Prometheus to scrape the receiver's alarm and decision twice")
        _every_rule_reads_live_series(prometheus.url)
        _every_dashboard_panel_returns_data(prometheus.url)
    finally:
        load.stop()
    assert load.sent > 0 and load.statuses.get(200, 0) > 0, load.statuses


def _every_rule_reads_live_series(prometheus_url: str) -> None:
    for rule in all_recording_rules(CONFIG):
        assert prom_query(prometheus_url, rule.expr), f"recording rule {rule.record} is empty"
    for alert in all_alerts(CONFIG):
        for series in _rule_series(alert.expr):
            assert prom_query(prometheus_url, series), f"{alert.alert} reads {series}: no data"


def _every_dashboard_panel_returns_data(prometheus_url: str) -> None:
    empty: list[str] = []
    skipped: list[str] = []
    for board_name, build in BOARDS.items():
        model = build(AlertingConfig())  # the committed dashboards, as users import them
        for panel in model.panels:
            targets = getattr(panel, "targets", ())
            source = getattr(panel, "source", "gateway")
            for target in targets:
                expr = grafana_to_promql(target.expr, rate_interval="15s")
                result = prom_query(prometheus_url, expr)
                if result:
                    continue
                where = f"{board_name} / {panel.title}: {expr}"
                (skipped if source in NOT_SCRAPED_HERE else empty).append(where)
        for annotation in model.annotations:
            prom_query(prometheus_url, grafana_to_promql(annotation.expr))  # valid PromQL
    print(f"{len(skipped)} panel queries without data, their process is not run here:\n  "
          + "\n  ".join(skipped))
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


@pytest.mark.prometheus
def test_promtool_check_metrics_on_live_endpoints(reference_stack: StackEndpoints) -> None:
    promtool = need_binary("promtool", "prometheus")
    answers = run_payments(reference_stack.gateway_url, 30, seed=3, concurrency=8)
    assert any(a.status == 200 for a in answers)
    urls = [reference_stack.metrics_url or reference_stack.gateway_url + "/metrics"]
    if reference_stack.provider_metrics_url:
        url = reference_stack.provider_metrics_url.rstrip("/")
        urls.append(url if url.endswith("/metrics") else url + "/metrics")
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read()
        assert b"paystab_" in text, url
        result = subprocess.run([promtool, "check", "metrics"], input=text,
                                capture_output=True, timeout=30)
        problems = (result.stdout + result.stderr).decode(errors="replace")
        assert result.returncode == 0 and not problems.strip(), f"{url}:\n{problems}"
