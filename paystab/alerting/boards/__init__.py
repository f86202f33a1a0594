"""The Grafana dashboards paystab ships, one module each, registered by file name.

Each module has ``build(config) -> Dashboard``. :data:`BOARDS` maps the exported file stem
(``payments-overview`` → ``payments-overview.json``) to it; :mod:`..export` writes them all.
"""

from __future__ import annotations

from collections.abc import Callable

from paystab.alerting.boards import failover_chaos, load_run, payments_overview, provider_health
from paystab.alerting.grafana import Dashboard
from paystab.alerting.spec import AlertingConfig

BOARDS: dict[str, Callable[[AlertingConfig], Dashboard]] = {
    "payments-overview": payments_overview.build,
    "provider-health": provider_health.build,
    "failover-chaos": failover_chaos.build,
    "load-run": load_run.build,
}

__all__ = ["BOARDS"]
