"""An HTTP call per action, with templated URL, headers and body (a feature flag service,
a routing API). The URL's values are URL-quoted, the body's JSON-escaped."""

from __future__ import annotations

from paystab.watch.actuators import ActionRequest, render
from paystab.watch.actuators.http import send
from paystab.watch.config import WebhookActuator


class WebhookCaller:
    def __init__(self, config: WebhookActuator) -> None:
        self.config = config
        self.name = config.name
        self.actions: list[str] = list(config.actions)

    def act(self, request: ActionRequest) -> str:
        c = self.config
        headers = {k: render(v, request, "none") for k, v in c.headers.items()}
        body = None
        if c.body is not None:
            body = render(c.body, request, "json").encode()
            headers.setdefault("Content-Type", "application/json")
        return send(c.method, render(c.url, request, "url"), headers, body, c.timeout_s)
