"""Prometheus HTTP API source: PromQL templates per series, any metric names.

Each series is one instant query answering one value per provider (the ``provider_label``
of the result). ``attempts``, ``failures`` and ``timeouts`` are **cumulative** counters:
watch keeps the previous values and answers the deltas (a counter that went down restarts
from zero), so polling every second never counts an attempt twice whatever the scrape
interval — ``increase(x[w])`` polled more often than ``w`` would. Latency quantiles and the
gauges are instant values; ``$window`` in a template is the source's ``window_s`` range and
``$provider_label`` the label. ``loop_lag`` is stack-wide: the largest value of whatever
series it matches, carried into every provider's sample (the hang and latency detectors
take a stalled host's lateness off the ages and latencies they judge, and the controller
holds slowness-only failovers while it is high).

``attempts`` and ``failures`` must match at least one series on every poll: no series means
the names or labels are wrong (or nothing is scraped), which is a :class:`SourceError`,
never a quiet zero. The presets write ``failures`` with an ``or ... * 0`` arm so a stack with
no failure yet still answers 0 per provider. Optional series that match nothing are noted
once in ``notes``.
"""

from __future__ import annotations

import math
import time

from paystab.collector.sampler import query_instant
from paystab.collector.series import Sample, counter_delta
from paystab.watch.config import PrometheusSource, PromQueries
from paystab.watch.sources import SourceError

_COUNTERS = ("attempts", "failures", "timeouts")
_REQUIRED = ("attempts", "failures")
_STACK_WIDE = ("loop_lag",)  # one value for every provider: no provider label needed


def _paystab_preset() -> tuple[str, PromQueries]:
    att, lat = "paystab_provider_attempts_total", "paystab_provider_latency_seconds"
    by = "sum by (provider)"
    return "provider", PromQueries(
        attempts=f"{by} ({att})",
        failures=f'{by} ({att}{{outcome="error"}}) or {by} ({att}) * 0',
        timeouts=f'{by} ({att}{{error_type="timeout"}}) or {by} ({att}) * 0',
        p50=f"histogram_quantile(0.5, sum by (provider, le) (rate({lat}_bucket[$window])))",
        p95=f"histogram_quantile(0.95, sum by (provider, le) (rate({lat}_bucket[$window])))",
        p99=f"histogram_quantile(0.99, sum by (provider, le) (rate({lat}_bucket[$window])))",
        inflight="max by (provider) (paystab_provider_inflight)",
        oldest_inflight_age="max by (provider) (paystab_provider_oldest_inflight_age_seconds)",
        loop_lag="max(paystab_gateway_event_loop_lag_seconds)",
    )


def _otel_http_client_preset() -> tuple[str, PromQueries]:
    # http.client.request.duration (s) as Prometheus names it; server.address -> server_address.
    # A 4xx answer (a decline: 402, 422) sets error.type to its status code but is the
    # customer's, not the provider's, failure.
    dur = "http_client_request_duration_seconds"
    by = "sum by (server_address)"
    failed = 'error_type!="", error_type!~"4[0-9][0-9]"'
    q = "histogram_quantile({q}, sum by (server_address, le) (rate(" + dur + "_bucket[$window])))"
    return "server_address", PromQueries(
        attempts=f"{by} ({dur}_count)",
        failures=f"{by} ({dur}_count{{{failed}}}) or {by} ({dur}_count) * 0",
        timeouts=f'{by} ({dur}_count{{error_type=~"(?i).*timeout.*"}}) or {by} ({dur}_count) * 0',
        p50=q.format(q=0.5), p95=q.format(q=0.95), p99=q.format(q=0.99),
        inflight=f"{by} (http_client_active_requests)",
    )


PRESETS = {"paystab": _paystab_preset, "otel_http_client": _otel_http_client_preset}


def resolve_queries(config: PrometheusSource) -> tuple[str, dict[str, str]]:
    """The provider label and the PromQL of every series (preset, then the user's own)."""
    label, queries = PRESETS[config.preset]() if config.preset in PRESETS else ("", PromQueries())
    label = config.provider_label or label
    merged = queries.model_dump() | {k: v for k, v in config.queries.model_dump().items()
                                     if v is not None}
    window = f"{max(1, round(config.window_s * 1000))}ms"
    return label, {key: expr.replace("$window", window).replace("$provider_label", label)
                   for key, expr in merged.items() if expr}


class PromqlSource:
    """See the module docstring."""

    def __init__(self, config: PrometheusSource) -> None:
        self.config = config
        self.name = config.name
        self.label, self.queries = resolve_queries(config)
        self.lag_s = 0.0
        self.notes: list[str] = []
        self._before: dict[str, dict[str, float]] = {}
        self._before_t: float | None = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def _stack_wide(self, key: str, expr: str, now: float) -> float:
        """The largest value of a stack-wide series (any labels); 0 when it matched nothing."""
        rows = query_instant(self.config.url, expr, now, self.config.timeout_s)
        values = [value for _labels, value in rows if math.isfinite(value)]
        if not values and f"{key} matched nothing" not in self.notes:
            self.notes.append(f"{key} matched nothing")
        return max(values, default=0.0)

    def _query(self, key: str, expr: str, now: float) -> dict[str, float]:
        rows = query_instant(self.config.url, expr, now, self.config.timeout_s)
        out: dict[str, float] = {}
        unlabelled = 0
        for labels, value in rows:
            provider = labels.get(self.label)
            if provider is None:
                unlabelled += 1
                continue
            out[provider] = out.get(provider, 0.0) + value
        if not out and key in _REQUIRED:
            detail = (f"{unlabelled} series without label '{self.label}'" if unlabelled
                      else "no series")
            raise SourceError(f"source {self.name}: query '{key}' matched {detail}: {expr}",
                              hint="check the metric names, provider_label and that Prometheus "
                              "scrapes the stack (try the query in its web UI)")
        if not out and f"{key} matched nothing" not in self.notes:
            self.notes.append(f"{key} matched nothing")
        return out

    def poll(self, now: float) -> list[Sample]:
        started = time.time()
        values = {key: self._query(key, expr, now) for key, expr in self.queries.items()
                  if key not in _STACK_WIDE}
        lag = self.queries.get("loop_lag")
        loop_lag_s = 0.0 if lag is None else max(0.0, self._stack_wide("loop_lag", lag, now))
        self.lag_s = time.time() - started
        interval = 0.0 if self._before_t is None else max(0.0, now - self._before_t)
        first = self._before_t is None
        current: dict[str, dict[str, float]] = {}
        for key in _COUNTERS:
            for provider, value in values.get(key, {}).items():
                current.setdefault(provider, {})[key] = value
        samples = []
        for provider in sorted(current):
            before = self._before.get(provider)
            if first or before is None:
                continue  # the first reading of a counter is its base
            now_c = current[provider]

            def delta(key: str, now_c: dict[str, float] = now_c,
                      before: dict[str, float] = before) -> int:
                if key not in now_c:
                    return 0
                return max(0, round(counter_delta(now_c[key], before.get(key, 0.0))))

            samples.append(Sample(
                time=now, provider=provider, attempts=delta("attempts"),
                failures=delta("failures"), timeouts=delta("timeouts"),
                p50_ms=_ms(values.get("p50", {}).get(provider)),
                p95_ms=_ms(values.get("p95", {}).get(provider)),
                p99_ms=_ms(values.get("p99", {}).get(provider)),
                inflight=values.get("inflight", {}).get(provider, 0.0),
                oldest_inflight_age_s=values.get("oldest_inflight_age", {}).get(provider, 0.0),
                interval_s=interval, loop_lag_s=loop_lag_s,
            ))
        self._before = current
        self._before_t = now
        return samples


def _ms(seconds: float | None) -> float | None:
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return seconds * 1000.0
