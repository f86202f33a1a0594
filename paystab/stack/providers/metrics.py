"""Prometheus metrics of a providers process, on its own registry.

``paystab_sim_requests_total{provider, operation, result}`` counts every request a
simulator answered (or chose not to): ``result`` is the unified code of the answer
(approved, pending, declined.*, voided, refunded), ``found`` / ``not_found`` for look-ups,
``injected.<error>``, ``hang``, ``dropped``, ``bad_request``. ``paystab_sim_active_faults
{provider, type}`` is the number of active faults of each type (0 included, so a dashboard
can plot the absence of faults). Label children are cached: the hot path does one dict
look-up and one increment.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from paystab.collector.names import SIM_ACTIVE_FAULTS, SIM_REQUESTS_TOTAL


class SimMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            SIM_REQUESTS_TOTAL, "Requests answered by the provider simulators.",
            ("provider", "operation", "result"), registry=self.registry)
        self._faults = Gauge(
            SIM_ACTIVE_FAULTS, "Active runtime faults of the provider simulators.",
            ("provider", "type"), registry=self.registry)
        self._children: dict[tuple[str, str, str], Counter] = {}

    def count(self, provider: str, operation: str, result: str) -> None:
        key = (provider, operation, result)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._requests.labels(provider, operation, result)
        child.inc()

    def set_faults(self, provider: str, counts: dict[str, int]) -> None:
        for kind, count in counts.items():
            self._faults.labels(provider, kind).set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
