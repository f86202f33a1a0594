"""Real parts for the detection/failover tests: an exporter, a gateway admin API, Prometheus.

* :class:`Exporter` — a real ``prometheus_client`` registry with the gateway's provider
  metrics (names from ``collector/names.py``), served over HTTP on 127.0.0.1.
* :class:`StackGateway` and the ``stack``/``gateway`` fixtures — the real reference gateway
  (``paystab up``, one per test module) and its admin API; import the fixtures by name.
* :func:`start_prometheus` / :func:`start_alertmanager` — the Debian binaries on free
  loopback ports (scrape and evaluate every second; route every alert to a webhook).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from paystab.anomaly.admin_client import GatewayAdmin
from paystab.collector import names
from paystab.stack.endpoints import StackEndpoints
from tests.conftest import RunningStack, require


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, every_s: float = 0.05) -> Any:
    """Poll ``condition`` until truthy (answers it) or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(every_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Exporter:
    """The gateway's per-provider metrics in a registry of its own, served over HTTP."""

    def __init__(self, serve: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(names.ATTEMPTS_TOTAL.removesuffix("_total"), "attempts",
                                ["provider", "outcome", "error_type"], registry=self.registry)
        self.latency = Histogram(names.PROVIDER_LATENCY, "latency", ["provider"],
                                 buckets=names.LATENCY_BUCKETS_S, registry=self.registry)
        self.inflight = Gauge(names.PROVIDER_INFLIGHT, "inflight", ["provider"],
                              registry=self.registry)
        self.oldest = Gauge(names.PROVIDER_OLDEST_INFLIGHT_AGE, "age", ["provider"],
                            registry=self.registry)
        self.server: Any = None
        self.url = ""
        if serve:
            self.server, self._thread = start_http_server(0, addr="127.0.0.1",
                                                          registry=self.registry)
            self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"

    def record(self, provider: str, approved: int = 0, declined: int = 0, errors: int = 0,
               timeouts: int = 0, latency_s: float = 0.1) -> None:
        if approved:
            self.attempts.labels(provider, "approved", "none").inc(approved)
        if declined:
            self.attempts.labels(provider, "declined", "none").inc(declined)
        if errors:
            self.attempts.labels(provider, "error", "provider_5xx").inc(errors)
        if timeouts:
            self.attempts.labels(provider, "error", "timeout").inc(timeouts)
        for _ in range(approved + declined + errors + timeouts):
            self.latency.labels(provider).observe(latency_s)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class StackGateway:
    """The real reference gateway's admin API, as the controller tests see it."""

    def __init__(self, endpoints: StackEndpoints) -> None:
        self.endpoints = endpoints
        self.url = endpoints.gateway_url
        self.token = endpoints.admin_token
        self.admin = GatewayAdmin(self.url, self.token)

    @property
    def providers(self) -> dict[str, dict[str, Any]]:
        return {str(p["name"]): p for p in self.admin.providers()}

    def state(self, name: str) -> str:
        return str(self.providers[name]["state"])

    def restore_all(self) -> None:
        for name, provider in self.providers.items():
            if provider["state"] != "active":
                self.admin.restore(name, "test cleanup", "tests")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEndpoints]:
    """One reference stack (``paystab up``) per test module; tests restore what they drain."""
    running = RunningStack(tmp_path_factory.mktemp("stack"))
    try:
        yield running.endpoints
    finally:
        running.stop()


@pytest.fixture
def gateway(stack: StackEndpoints) -> Iterator[StackGateway]:
    gw = StackGateway(stack)
    gw.restore_all()
    yield gw
    gw.restore_all()


def start_prometheus(tmp: Path, targets: list[str], rules: str | None = None,
                     alertmanager: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start the real Prometheus scraping ``targets`` (host:port) every second, with an
    optional rule file text and Alertmanager (host:port)."""
    binary = shutil.which("prometheus")
    require("prometheus", binary is not None, "apt-get install prometheus")
    assert binary is not None
    port = free_port()
    config = tmp / "prometheus.yml"
    text = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: gateway\n"
        f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n"
    )
    if rules:
        (tmp / "rules.yml").write_text(rules)
        text += f"rule_files: [{json.dumps(str(tmp / 'rules.yml'))}]\n"
    if alertmanager:
        text += ("alerting:\n  alertmanagers:\n"
                 f"    - static_configs: [{{targets: [{json.dumps(alertmanager)}]}}]\n")
    config.write_text(text)
    return _start(tmp, "prometheus", [binary, f"--config.file={config}",
                                      f"--storage.tsdb.path={tmp / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{port}"], port)


def start_alertmanager(tmp: Path, webhook_url: str, token: str
                       ) -> tuple[subprocess.Popen[bytes], str]:
    """Start the real Alertmanager routing every alert to ``webhook_url`` at once."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    require("alertmanager", binary is not None, "apt-get install prometheus-alertmanager")
    assert binary is not None
    port = free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(
        "route: {receiver: paystab, group_by: [alertname, provider], group_wait: 0s,"
        " group_interval: 1s, repeat_interval: 1h}\n"
        "receivers:\n  - name: paystab\n    webhook_configs:\n"
        f"      - url: {json.dumps(webhook_url)}\n        send_resolved: true\n"
        f"        http_config: {{authorization: {{credentials: {json.dumps(token)}}}}}\n"
    )
    return _start(tmp, "alertmanager", [binary, f"--config.file={config}",
                                        f"--storage.path={tmp / 'am'}",
                                        f"--web.listen-address=127.0.0.1:{port}",
                                        "--cluster.listen-address="], port)


def _start(tmp: Path, name: str, args: list[str], port: int
           ) -> tuple[subprocess.Popen[bytes], str]:
    log_path = tmp / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    wait_for(ready, timeout_s=30)
    return proc, url
