"""The Alertmanager actuator against Debian's Alertmanager: a drain fires the alert (API v2),
a restore resolves it, and Alertmanager delivers it to its receiver."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from paystab.alerting import runtime
from paystab.watch.actuators import ActionRequest, build_actuator
from paystab.watch.config import config_from_text
from tests.conftest_alerting import need_binary, wait_for
from tests.watch_support import Recorder


def _alerts(url: str) -> list[dict[str, Any]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url + "/api/v2/alerts?active=true&silenced=false&inhibited=false",
                     timeout=5) as response:
        return list(json.loads(response.read()))


@pytest.mark.alertmanager
@pytest.mark.slow
def test_drain_fires_and_restore_resolves_in_alertmanager(tmp_path: Path) -> None:
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    webhook = Recorder()
    alertmanager = runtime.start_alertmanager(webhook.url + "/hook", tmp_path / "am")
    try:
        config = config_from_text(f"""\
sources: [{{kind: otlp}}]
actuators: [{{kind: alertmanager, url: '{alertmanager.url}', labels: {{team: payments}}}}]
""")
        actuator = build_actuator(config.actuators[0])
        assert actuator.act(ActionRequest("psp-a", "drain", "40% errors", "failure_rate",
                                          time.time())) == "HTTP 200"
        (alert,) = wait_for(lambda: _alerts(alertmanager.url), 20, "the alert in Alertmanager")
        assert alert["labels"]["provider"] == "psp-a"
        assert alert["labels"]["team"] == "payments"
        assert "failure_rate: 40% errors" in alert["annotations"]["description"]
        wait_for(lambda: any("PaystabProviderDrained" in body for _, _, body in webhook.calls),
                 30, "Alertmanager to deliver the alert")
        actuator.act(ActionRequest("psp-a", "restore", "probe passed", "controller", time.time()))
        wait_for(lambda: not _alerts(alertmanager.url), 20, "the alert to resolve")
    finally:
        alertmanager.stop()
        webhook.stop()
