"""watch's own HTTP API: ``GET /metrics``, ``GET /healthz``, ``GET /state``, the pins
``PUT /pins/{provider}`` with ``{"pin": "in"|"out"}`` and ``DELETE /pins/{provider}``, and
``POST /alerts``: Alertmanager's webhook (payload version 4, parsed by
:func:`paystab.anomaly.webhook.parse_payload`). A firing alert with a ``provider`` label
drains it through the controller — and so through safety and the actuators, detector
``alertmanager`` — until the alert resolves; a resolved one lets the controller probe it.

It listens on loopback unless a token is configured (``admin.token_env``); with a token,
every request but /healthz and /metrics must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import generate_latest

from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.net import is_loopback_host

if TYPE_CHECKING:
    from paystab.watch.service import WatchService


class AdminServer:
    def __init__(self, service: WatchService) -> None:
        self.service = service
        cfg = service.config.admin
        host, _, port = cfg.listen.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.token = os.environ.get(cfg.token_env) if cfg.token_env else None
        if not is_loopback_host(self.host) and not self.token:
            raise InvalidInput(f"admin.listen {cfg.listen} is not loopback and "
                               f"${cfg.token_env} is empty", field="admin.token_env")
        self.url = ""
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        try:
            server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        except OSError as exc:
            raise EnvironmentProblem(f"watch admin API cannot listen on "
                                     f"{self.host}:{self.port}: {exc}") from None
        server.daemon_threads = True
        self._server = server
        host = self.host if ":" not in self.host else f"[{self.host}]"
        self.url = f"http://{host}:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="watch-admin", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _handler(admin: AdminServer) -> type[BaseHTTPRequestHandler]:
    service = admin.service

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: Any, content_type: str = "application/json"
                  ) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorised(self) -> bool:
            if admin.token is None:
                return True
            given = self.headers.get("Authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {admin.token}".encode())

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, generate_latest(service.registry),
                           "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                bad = {k: v for k, v in service.source_status.items() if v != "ok"}
                self._send(200 if not bad else 503, {"ok": not bad, "sources": service.source_status})
            elif path == "/state":
                if not self._authorised():
                    self._send(401, {"error": "bearer token required"})
                    return
                self._send(200, service.snapshot())
            else:
                self._send(404, {"error": "not found"})

        def _pin(self, pin: str | None) -> None:
            if not self._authorised():
                self._send(401, {"error": "bearer token required"})
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "pins" or not parts[1]:
                self._send(404, {"error": "use /pins/{provider}"})
                return
            provider = urllib.parse.unquote(parts[1])
            if pin is None:
                service.admin.pin(provider, None)
            else:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(min(length, 65536)) or b"{}")
                except ValueError:
                    body = {}
                value = body.get("pin") if isinstance(body, dict) else None
                if value not in ("in", "out"):
                    self._send(422, {"error": 'body must be {"pin": "in"} or {"pin": "out"}'})
                    return
                service.admin.pin(provider, value)
            self._send(200, {"provider": provider, "pin": service.admin.pins.get(provider)})

        def _alerts(self) -> None:
            from paystab.anomaly.webhook import MAX_BODY, parse_payload

            if not self._authorised():
                self._send(401, {"error": "bearer token required"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._send(400 if length <= 0 else 413, {"error": "body size"})
                return
            try:
                actions, ignored = parse_payload(self.rfile.read(length))
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            drained, resolved = [], []
            for action in actions:
                if action.firing:
                    event = service.controller.drain(action.provider, "alertmanager",
                                                     action.reason, wait_for_resolve=True)
                    if event is not None:
                        drained.append({"provider": action.provider, "action": event.action})
                else:
                    service.controller.resolve(action.provider)
                    resolved.append(action.provider)
            service.record({"event": "alerts", "drained": drained, "resolved": resolved,
                            "ignored": ignored})
            self._send(200, {"drained": drained, "resolved": resolved, "ignored": ignored})

        def do_PUT(self) -> None:
            self._pin("set")

        def do_POST(self) -> None:
            if self.path.split("?")[0] == "/alerts":
                self._alerts()
            else:
                self._pin("set")

        def do_DELETE(self) -> None:
            self._pin(None)

    return Handler
