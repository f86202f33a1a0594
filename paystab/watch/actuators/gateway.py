"""paystab's gateway admin API (``POST /admin/providers/{name}/drain|restore``) through
:class:`~paystab.anomaly.admin_client.GatewayAdmin`'s public methods."""

from __future__ import annotations

import os

from paystab.anomaly.admin_client import GatewayAdmin
from paystab.exceptions import EnvironmentProblem
from paystab.watch.actuators import ActionRequest, ActuatorError
from paystab.watch.config import GatewayActuator


class GatewayAdminActuator:
    def __init__(self, config: GatewayActuator) -> None:
        token = os.environ.get(config.token_env) if config.token_env else None
        self.admin = GatewayAdmin(config.url, token)
        self.name = config.name
        self.actions: list[str] = list(config.actions)

    def act(self, request: ActionRequest) -> str:
        call = self.admin.drain if request.action == "drain" else self.admin.restore
        try:
            call(request.provider, f"{request.detector}: {request.reason}", source="paystab-watch")
        except EnvironmentProblem as exc:
            raise ActuatorError(exc.message) from None
        return f"gateway {request.action}ed {request.provider}"
