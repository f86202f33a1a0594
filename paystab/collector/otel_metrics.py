"""OTLP metrics for the gateway, read from the same in-process stats as /metrics.

Observable instruments (callbacks at export time) cost nothing per request. Only set up
when an OTLP endpoint is configured (see ``collector/telemetry.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from paystab.collector.stats import GatewayStats


def register_gateway_instruments(meter: Meter, stats: GatewayStats, router: Any) -> None:
    def payments(_options: CallbackOptions) -> Iterable[Observation]:
        for (method, outcome), value in list(stats.payments.items()):
            yield Observation(value, {"method": method, "outcome": outcome})

    def attempts(_options: CallbackOptions) -> Iterable[Observation]:
        for name, p in list(stats.providers.items()):
            for (outcome, error_type), value in list(p.attempts.items()):
                yield Observation(value, {"provider": name, "outcome": outcome,
                                          "error_type": error_type})

    def health(_options: CallbackOptions) -> Iterable[Observation]:
        router.refresh_gauges()
        for name, p in list(stats.providers.items()):
            yield Observation(p.health_score, {"provider": name})

    def oldest(_options: CallbackOptions) -> Iterable[Observation]:
        for name, p in list(stats.providers.items()):
            yield Observation(p.oldest_inflight_age_s(), {"provider": name})

    def inflight(_options: CallbackOptions) -> Iterable[Observation]:
        for name, p in list(stats.providers.items()):
            yield Observation(len(p.inflight), {"provider": name})

    meter.create_observable_counter("paystab.payments", [payments], unit="{payment}",
                                    description="Payments answered, by method and outcome")
    meter.create_observable_counter("paystab.provider.attempts", [attempts], unit="{attempt}",
                                    description="Provider attempts by outcome and error type")
    meter.create_observable_gauge("paystab.provider.health_score", [health], unit="1",
                                  description="Routing health score")
    meter.create_observable_gauge("paystab.provider.oldest_inflight_age", [oldest], unit="s",
                                  description="Age of the oldest attempt in flight")
    meter.create_observable_gauge("paystab.provider.inflight", [inflight], unit="{attempt}",
                                  description="Attempts in flight")
