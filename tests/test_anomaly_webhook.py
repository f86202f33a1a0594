"""The Alertmanager webhook receiver (payload version 4) over real HTTP, draining on the real
reference gateway."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from paystab.anomaly.admin_client import GatewayAdmin
from paystab.anomaly.controller import ControllerConfig, FailoverController
from paystab.anomaly.webhook import WebhookServer, parse_payload
from paystab.exceptions import InvalidInput
from tests.conftest_anomaly import StackGateway, gateway, stack

__all__ = ["gateway", "stack"]  # fixtures


def _payload(status: str, provider: str | None = "card-alpha", version: str = "4"
             ) -> dict[str, Any]:
    labels = {"alertname": "ProviderFailureRateHigh", "severity": "page"}
    if provider:
        labels["provider"] = provider
    return {
        "version": version, "groupKey": "{}:{alertname=\"ProviderFailureRateHigh\"}",
        "truncatedAlerts": 0, "status": status, "receiver": "paystab",
        "groupLabels": {"alertname": "ProviderFailureRateHigh"}, "commonLabels": labels,
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
        "alerts": [{"status": status, "labels": labels,
                    "annotations": {"summary": "failure rate 7 % > 5 %"},
                    "startsAt": "2026-11-23T12:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "abc"}],
    }


def _post(url: str, body: bytes, token: str | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + "/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def setup(gateway: StackGateway) -> Iterator[tuple[StackGateway, FailoverController,
                                                  WebhookServer]]:
    controller = FailoverController(GatewayAdmin(gateway.url, gateway.token),
                                    config=ControllerConfig(cooldown_s=0.0, probation_s=0.0,
                                                            min_probe_attempts=0))
    server = WebhookServer(controller, token="s3cret").start()
    yield gateway, controller, server
    server.stop()


def test_firing_drains_and_resolved_allows_the_probe(setup: Any) -> None:
    gateway, controller, server = setup
    code, body = _post(server.url, json.dumps(_payload("firing")).encode(), "s3cret")
    assert code == 200 and body["drained"] == [{"provider": "card-alpha", "action": "drain"}]
    assert gateway.state("card-alpha") == "drained"
    event = controller.events[0]
    assert event.detector == "alertmanager" and "ProviderFailureRateHigh" in event.reason
    controller.tick(event.time + 60)  # cool-down over, but the alert still fires
    assert gateway.state("card-alpha") == "drained"
    code, body = _post(server.url, json.dumps(_payload("resolved")).encode(), "s3cret")
    assert code == 200 and body["resolved"] == ["card-alpha"]
    assert gateway.state("card-alpha") == "active"  # half-open restore
    assert [e.action for e in controller.events] == ["drain", "restore"]


@pytest.mark.parametrize("body", [
    b"not json", b"[]", json.dumps(_payload("firing", version="3")).encode(),
    json.dumps({**_payload("firing"), "alerts": {"a": 1}}).encode(),
    json.dumps({**_payload("firing"), "status": "burning"}).encode(),
    json.dumps({**_payload("firing"), "alerts": [
        _payload("firing")["alerts"][0], {"status": "firing", "labels": {"provider": 7}}]}).encode(),
])
def test_malformed_payload_is_400_and_moves_nothing(setup: Any, body: bytes) -> None:
    gateway, controller, server = setup
    code, answer = _post(server.url, body, "s3cret")
    assert code == 400 and answer["error"]
    assert controller.events == []
    assert all(p["state"] == "active" for p in gateway.providers.values())


def test_token_and_alerts_without_provider(setup: Any) -> None:
    gateway, _, server = setup
    assert _post(server.url, json.dumps(_payload("firing")).encode())[0] == 401
    assert _post(server.url, json.dumps(_payload("firing")).encode(), "wrong")[0] == 401
    code, body = _post(server.url, json.dumps(_payload("firing", None)).encode(), "s3cret")
    assert code == 200 and body["ignored"] == 1
    assert all(p["state"] == "active" for p in gateway.providers.values())


def test_non_loopback_bind_needs_a_token() -> None:
    with pytest.raises(InvalidInput):
        WebhookServer(FailoverController(GatewayAdmin("http://127.0.0.1:1")), host="0.0.0.0")
    actions, ignored = parse_payload(json.dumps(_payload("resolved")).encode())
    assert ignored == 0 and actions[0].provider == "card-alpha" and not actions[0].firing


def test_metrics_count_the_alarm_and_the_decision(gateway: StackGateway) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    controller = FailoverController(GatewayAdmin(gateway.url, gateway.token), registry=registry)
    server = WebhookServer(controller, registry=registry).start()
    try:
        code, _ = _post(server.url, json.dumps(_payload("firing")).encode())
        assert code == 200
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
    finally:
        server.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("paystab_detections_total",
                    (("detector", "alertmanager"), ("provider", "card-alpha")))] == 1
    assert samples[("paystab_controller_actions_total",
                    (("action", "drain"), ("provider", "card-alpha")))] == 1
    assert samples[("paystab_detector_score",
                    (("detector", "alertmanager"), ("provider", "card-alpha")))] == 1.0
