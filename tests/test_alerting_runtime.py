"""Prometheus and Alertmanager started by paystab on loopback: ready, alerting, stopped.

Real Debian binaries. The flow checked end to end: Prometheus loads the generated rules,
scrapes a target that is down, fires ``PaystabScrapeDown`` at once (fast profile), hands it
to a real Alertmanager, which POSTs the webhook to a receiver in this test.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from paystab.alerting import runtime
from paystab.alerting.serverconfig import ScrapeTarget
from paystab.alerting.spec import AlertingConfig
from paystab.exceptions import EnvironmentProblem, ExitCode
from tests.conftest_alerting import need_binary, prom_query, wait_for


class WebhookSink:
    """An Alertmanager webhook receiver on 127.0.0.1 that keeps what it got."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                sink.payloads.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for p in self.payloads for a in p.get("alerts", [])
                if a["labels"].get("alertname") == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    receiver = WebhookSink()
    yield receiver
    receiver.close()


def test_missing_binary_is_an_environment_problem(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(runtime, "PROMETHEUS_BINARIES", ("paystab-no-such-prometheus",))
    with pytest.raises(EnvironmentProblem) as info:
        runtime.start_prometheus(["127.0.0.1:9"], tmp_path)
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert "apt-get install prometheus" in (info.value.hint or "")
    monkeypatch.setattr(runtime, "ALERTMANAGER_BINARIES", ("paystab-no-such-alertmanager",))
    with pytest.raises(EnvironmentProblem) as info:
        runtime.start_alertmanager("http://127.0.0.1:9/", tmp_path)
    assert "apt-get install prometheus-alertmanager" in (info.value.hint or "")


def test_scrape_targets_accept_urls_jobs_and_bare_addresses() -> None:
    config = AlertingConfig()
    given: list[str | ScrapeTarget] = [
        "127.0.0.1:8080", "127.0.0.1:9100", "x=http://127.0.0.1:1/m",
        ScrapeTarget("y", "http://h:2/metrics")]
    got = [runtime._target(t, i, config) for i, t in enumerate(given)]
    assert got == [
        ScrapeTarget("paystab-gateway", "http://127.0.0.1:8080/metrics"),
        ScrapeTarget("paystab-providers", "http://127.0.0.1:9100/metrics"),
        ScrapeTarget("x", "http://127.0.0.1:1/m"),
        ScrapeTarget("y", "http://h:2/metrics"),
    ]


@pytest.mark.slow
@pytest.mark.prometheus
@pytest.mark.alertmanager
def test_alert_flows_from_prometheus_through_alertmanager_to_a_webhook(
        tmp_path: Path, sink: WebhookSink) -> None:
    need_binary("prometheus", "prometheus")
    need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    alertmanager = runtime.start_alertmanager(sink.url, tmp_path / "am")
    prometheus = None
    try:
        assert alertmanager.url.startswith("http://127.0.0.1:")
        down = f"http://127.0.0.1:{runtime.free_port()}/metrics"  # nothing listens there
        prometheus = runtime.start_prometheus(
            [f"paystab-gateway={down}"], tmp_path / "prom", alertmanager_url=alertmanager.url)
        assert prometheus.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:
            groups = json.loads(response.read())["data"]["groups"]
        assert {g["name"] for g in groups} == {"paystab-slo", "paystab-providers",
                                               "paystab-telemetry"}
        assert all(r["health"] != "err" for g in groups for r in g["rules"])
        wait_for(lambda: prom_query(prometheus.url, 'ALERTS{alertname="PaystabScrapeDown",'
                                                    'alertstate="firing"}'),
                 20, "PaystabScrapeDown to fire in Prometheus")
        delivered = wait_for(lambda: sink.alerts("PaystabScrapeDown"), 30,
                             "Alertmanager to deliver PaystabScrapeDown to the webhook")
        alert = delivered[0]
        assert alert["status"] == "firing"
        assert alert["labels"]["severity"] == "page"
        assert alert["labels"]["job"] == "paystab-gateway"
        assert alert["annotations"]["runbook_url"].endswith("/scrape-down.md")
    finally:
        codes = [p.stop() for p in (prometheus, alertmanager) if p is not None]
    assert codes == [0, 0] or codes == [0]  # SIGTERM: both shut down cleanly
    assert not alertmanager.alive()


def test_receiver_rejects_a_bad_listen_address() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "paystab.alerting.receiver", "--gateway", "http://127.0.0.1:9",
         "--listen", "nowhere"], capture_output=True, text=True, timeout=60)
    assert result.returncode == int(ExitCode.INVALID_INPUT), result.stderr
    assert "--listen" in result.stderr and "Traceback" not in result.stderr
