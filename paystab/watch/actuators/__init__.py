"""Actuators of ``paystab watch``: what "drain this provider" means for the watched stack.

The contract (:class:`Actuator`), stated once:

* ``name`` and ``actions`` — as in the config; an actuator is only asked for the actions it
  lists (``drain``, ``restore``).
* ``act(request)`` — do one action now, synchronously, within the actuator's timeout;
  answer a short human-readable result ("HTTP 200"); raise :class:`ActuatorError` when it
  did not happen (the caller retries with backoff and reports). Must be safe to repeat:
  draining a drained provider again is a no-op for the stack.

Templates (URL, headers, body, argv) take ``{provider}``, ``{action}``, ``{enabled}``
(``false`` on drain, ``true`` on restore), ``{reason}``, ``{detector}``, ``{time}`` (ISO 8601),
``{time_unix}``; :func:`render` escapes values for where they go. :func:`build_actuator` maps
a config entry to its implementation by ``kind``.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.watch.config import (
    AlertmanagerActuator,
    CommandActuator,
    GatewayActuator,
    WebhookActuator,
)


class ActuatorError(EnvironmentProblem):
    """An action did not happen (refused, timed out, unreachable)."""


@dataclass(frozen=True)
class ActionRequest:
    provider: str
    action: Literal["drain", "restore"]
    reason: str
    detector: str
    at: float

    def values(self) -> dict[str, str]:
        return {
            "provider": self.provider,
            "action": self.action,
            "enabled": "false" if self.action == "drain" else "true",
            "reason": self.reason,
            "detector": self.detector,
            "time": datetime.fromtimestamp(self.at, UTC).isoformat(),
            "time_unix": f"{self.at:.3f}",
        }


class Actuator(Protocol):
    name: str
    actions: list[str]

    def act(self, request: ActionRequest) -> str: ...


def render(template: str, request: ActionRequest, escape: Literal["none", "url", "json"]) -> str:
    """``template`` with ``{name}`` placeholders filled; ``{{``/``}}`` are literal braces."""
    values = request.values()
    if escape == "url":
        values = {k: urllib.parse.quote(v, safe="") for k, v in values.items()}
    elif escape == "json":
        values = {k: json.dumps(v)[1:-1] for k, v in values.items()}
    try:
        return template.format_map(values)
    except (KeyError, ValueError, IndexError) as exc:
        raise InvalidInput(f"bad template {template!r}: {exc}",
                           expected="placeholders among " + ", ".join(sorted(values))) from None


def build_actuator(config: GatewayActuator | WebhookActuator | CommandActuator
                   | AlertmanagerActuator) -> Actuator:
    if isinstance(config, GatewayActuator):
        from paystab.watch.actuators.gateway import GatewayAdminActuator

        return GatewayAdminActuator(config)
    if isinstance(config, WebhookActuator):
        from paystab.watch.actuators.webhook import WebhookCaller

        return WebhookCaller(config)
    if isinstance(config, CommandActuator):
        from paystab.watch.actuators.command import CommandRunner

        return CommandRunner(config)
    from paystab.watch.actuators.alertmanager import AlertmanagerPusher

    return AlertmanagerPusher(config)
