"""Alertmanager webhook receiver: alerts with a ``provider`` label drive the controller.

Alertmanager POSTs its webhook payload (``"version": "4"``) to any path of this server. The
whole payload is validated before anything happens; a malformed one gets ``400`` and never
moves traffic. Then, per alert carrying a ``provider`` label: ``firing`` drains it through
the :class:`~paystab.anomaly.controller.FailoverController` (detector ``alertmanager``,
reason from the alert name and summary; the controller still refuses to drain the last
healthy provider of a method), ``resolved`` makes it eligible for the half-open probe after
the cool-down. Alerts without the label are counted and ignored. Answers ``200`` with what it
did. With a token, requests need ``Authorization: Bearer <token>`` (Alertmanager's
``http_config.authorization``); without one the server only binds loopback addresses.
Given the controller's registry, ``GET /metrics`` serves its detections, decisions and
scores (``paystab_detections_total``, ``paystab_controller_actions_total``,
``paystab_detector_score``) for Prometheus — bound off loopback, only with the token;
``GET /healthz`` answers ``{"ok": true}``.
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from paystab.anomaly.controller import FailoverController
from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.net import is_loopback_host

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class AlertAction:
    provider: str
    firing: bool
    reason: str


def parse_payload(body: bytes) -> tuple[list[AlertAction], int]:
    """Validate an Alertmanager v4 payload; answers the actions and how many alerts were
    ignored (no ``provider`` label). Raises ValueError naming the first problem."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")
    if data.get("version") != "4":
        raise ValueError(f"version is {data.get('version')!r}, expected \"4\"")
    if data.get("status") not in ("firing", "resolved"):
        raise ValueError("status must be \"firing\" or \"resolved\"")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("alerts must be a list")
    actions, ignored = [], 0
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise ValueError(f"alerts[{i}] is not an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise ValueError(f"alerts[{i}].status must be \"firing\" or \"resolved\"")
        labels = alert.get("labels")
        annotations = alert.get("annotations", {})
        for part, value in (("labels", labels), ("annotations", annotations)):
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError(f"alerts[{i}].{part} must map strings to strings")
        assert isinstance(labels, dict) and isinstance(annotations, dict)
        provider = labels.get("provider")
        if not provider:
            ignored += 1
            continue
        name = labels.get("alertname", "alert")
        summary = annotations.get("summary") or annotations.get("description") or ""
        reason = f"{name} {status}" + (f": {summary}" if summary else "")
        actions.append(AlertAction(provider, status == "firing", reason))
    return actions, ignored


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the controller's events are the record; no access log on stderr

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        registry = self.server.registry
        if path in ("", "/healthz"):
            self._answer(200, {"ok": True})
        elif path == "/metrics" and registry is not None:
            # the controller's detections, decisions and scores, for Prometheus to scrape;
            # off loopback only with the token, like every paystab /metrics
            if self.server.metrics_need_token and not self._authorized():
                self._answer(401, {"error": "missing or wrong bearer token"})
                return
            raw = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        else:
            self._answer(404, {"error": "POST alerts to this server"})

    def _authorized(self) -> bool:
        token = self.server.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def do_POST(self) -> None:
        if not self._authorized():
            self._answer(401, {"error": "missing or wrong bearer token"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._answer(400 if length <= 0 else 413, {"error": "body size"})
            return
        try:
            actions, ignored = parse_payload(self.rfile.read(length))
        except ValueError as exc:
            self._answer(400, {"error": str(exc)})
            return
        drained, resolved = [], []
        for action in actions:
            if action.firing:
                event = self.server.controller.drain(
                    action.provider, "alertmanager", action.reason, wait_for_resolve=True
                )
                if event is not None:
                    drained.append({"provider": action.provider, "action": event.action})
            else:
                self.server.controller.resolve(action.provider)
                resolved.append(action.provider)
        self._answer(200, {"drained": drained, "resolved": resolved, "ignored": ignored})


class WebhookServer(ThreadingHTTPServer):
    """``WebhookServer(controller).start()``; ``url`` once started; ``stop()`` to end."""

    daemon_threads = True

    def __init__(self, controller: FailoverController, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, registry: CollectorRegistry | None = None) -> None:
        if not is_loopback_host(host) and not token:
            raise InvalidInput(f"refusing to listen on {host} without a token",
                               field="--listen", expected="a loopback address, or a token")
        self.controller = controller
        self.token = token
        self.metrics_need_token = not is_loopback_host(host)
        self.registry = registry  # served on GET /metrics when given
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot listen on {host}:{port}: {exc}",
                                     hint="pick a free port (0 = any)") from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> WebhookServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="paystab-webhook", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


