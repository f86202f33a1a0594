"""Alerts pushed to Alertmanager's API v2 (``POST /api/v2/alerts``): a drain fires the alert
for the provider (``endsAt`` one hour out, re-sent on repeats), a restore resolves it
(``endsAt`` now) — Alertmanager routes it to whoever must know."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from paystab.watch.actuators import ActionRequest
from paystab.watch.actuators.http import send
from paystab.watch.config import AlertmanagerActuator


class AlertmanagerPusher:
    def __init__(self, config: AlertmanagerActuator) -> None:
        self.config = config
        self.name = config.name
        self.actions: list[str] = list(config.actions)

    def act(self, request: ActionRequest) -> str:
        at = datetime.fromtimestamp(request.at, UTC)
        ends = at + timedelta(hours=1) if request.action == "drain" else at
        alert = {
            "labels": {"alertname": self.config.alertname, "provider": request.provider,
                       "source": "paystab-watch", **self.config.labels},
            "annotations": {"summary": f"{request.provider} drained by paystab watch",
                            "description": f"{request.detector}: {request.reason}"[:1000]},
            "startsAt": at.isoformat(),
            "endsAt": ends.isoformat(),
        }
        url = self.config.url.rstrip("/") + "/api/v2/alerts"
        return send("POST", url, {"Content-Type": "application/json"},
                    json.dumps([alert]).encode(), self.config.timeout_s)
