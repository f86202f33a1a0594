"""Prometheus -> Alertmanager -> webhook -> controller -> the reference gateway's admin API,
all real processes and sockets. The metrics come from a test exporter with the gateway's
metric names (so the failure rate is under the test's control); the alert rule is inlined
here (the shipped rules live with the dashboards)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from paystab.anomaly.admin_client import GatewayAdmin
from paystab.anomaly.controller import ControllerConfig, FailoverController
from paystab.anomaly.webhook import WebhookServer
from tests.conftest_anomaly import (
    Exporter,
    StackGateway,
    gateway,
    stack,
    start_alertmanager,
    start_prometheus,
    wait_for,
)

__all__ = ["gateway", "stack"]  # fixtures

RULES = """\
groups:
  - name: paystab-test
    interval: 1s
    rules:
      - alert: ProviderFailureRateHigh
        expr: >
          sum by (provider) (rate(paystab_provider_attempts_total{outcome="error"}[4s]))
          / sum by (provider) (rate(paystab_provider_attempts_total[4s])) > 0.05
        labels: {severity: page}
        annotations: {summary: "provider failure rate above 5 %"}
"""


@pytest.mark.slow
@pytest.mark.prometheus
@pytest.mark.alertmanager
def test_alert_drains_then_resolve_restores(tmp_path: Path, gateway: StackGateway) -> None:
    controller = FailoverController(GatewayAdmin(gateway.url, gateway.token),
                                    config=ControllerConfig(cooldown_s=0.0, probation_s=0.0,
                                                            min_probe_attempts=0))
    webhook = WebhookServer(controller, token="s3cret").start()
    exporter = Exporter()
    failing = threading.Event()
    failing.set()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            exporter.record("card-alpha", approved=8, errors=2 if failing.is_set() else 0)
            exporter.record("card-bravo", approved=10)
            time.sleep(0.05)

    threading.Thread(target=traffic, daemon=True).start()
    am, am_url = start_alertmanager(tmp_path, webhook.url + "/alerts", "s3cret")
    prom, _ = start_prometheus(tmp_path, [exporter.url.split("/")[2]], RULES,
                               am_url.removeprefix("http://"))
    try:
        wait_for(lambda: gateway.state("card-alpha") == "drained", timeout_s=40, every_s=0.2)
        drain = controller.events[0]
        assert (drain.provider, drain.action, drain.detector) == ("card-alpha", "drain",
                                                                   "alertmanager")
        assert "ProviderFailureRateHigh" in drain.reason
        assert gateway.state("card-bravo") == "active"
        failing.clear()  # the provider recovers: the alert resolves, the probe restores
        wait_for(lambda: gateway.state("card-alpha") == "active", timeout_s=40, every_s=0.2)
        assert [e.action for e in controller.events][:2] == ["drain", "restore"]
    finally:
        stop.set()
        for proc in (prom, am):
            proc.terminate()
            proc.wait(timeout=10)
        webhook.stop()
        exporter.close()
