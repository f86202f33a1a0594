"""The sampler: gateway counters in, per-provider :class:`Sample` series out.

Contract (:class:`SeriesSource`): ``poll(now)`` answers one :class:`Sample` per provider for
the interval since the previous poll. Three sources honour it:

* :class:`CounterSource` over a :class:`RegistryReader` (a ``prometheus_client``
  ``CollectorRegistry`` in this process) or a :class:`MetricsUrlReader` (a ``/metrics`` URL,
  parsed with ``prometheus_client.parser``): it keeps the previous cumulative values and
  answers deltas; a counter that went down (the process restarted) counts from zero again.
  Latency quantiles come from the delta of the histogram buckets, interpolated like
  Prometheus' ``histogram_quantile``. The first poll only sets the base and answers nothing.
  The gateway's event-loop lag gauge (no provider label) is carried into every sample.
* :class:`PrometheusApiSource`: instant queries on a Prometheus server (a user's own stack)
  with ``increase``/``histogram_quantile`` over a window equal to the polling interval, so
  successive samples do not count the same attempts twice.

Both answer each round through :func:`~paystab.collector.series.with_peer_context`, so every
sample knows how its peers fared in the same interval.

Everything is synchronous (``paystab.httpclient``, ``threading.Event``): it runs unchanged in a plain
process and in a gevent-patched drill process. :func:`run_sampler` is the bounded loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from paystab import httpclient
from paystab.collector import names
from paystab.collector.series import (
    Sample,
    bucket_deltas,
    counter_delta,
    histogram_quantile,
    with_peer_context,
)
from paystab.exceptions import EnvironmentProblem, InvalidInput

QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class ProviderCounters:
    """Cumulative counters and gauges of one provider at one instant."""

    attempts: float = 0.0
    failures: float = 0.0
    timeouts: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le (s) -> cumulative count
    inflight: float = 0.0
    oldest_inflight_age_s: float = 0.0
    loop_lag_s: float = 0.0  # the gateway's, the same for every provider
    breaker_state: float = 0.0  # 0 closed, 1 half-open, 2 open


def counters_from_families(families: Iterable[Metric]) -> dict[str, ProviderCounters]:
    """Pick paystab's provider metrics out of parsed metric families (any other is ignored)."""
    out: dict[str, ProviderCounters] = {}
    loop_lag_s = 0.0
    for family in families:
        for sample in family.samples:
            provider = sample.labels.get("provider")
            if provider is None:
                if sample.name == names.GATEWAY_LOOP_LAG:
                    loop_lag_s = max(loop_lag_s, float(sample.value))
                continue
            name, value = sample.name, float(sample.value)
            if name == names.ATTEMPTS_TOTAL:
                c = out.setdefault(provider, ProviderCounters())
                c.attempts += value
                if sample.labels.get("outcome") == "error":
                    c.failures += value
                    if sample.labels.get("error_type") == "timeout":
                        c.timeouts += value
            elif name == names.PROVIDER_LATENCY + "_bucket":
                le = float(sample.labels.get("le", "+Inf"))
                c = out.setdefault(provider, ProviderCounters())
                c.buckets[le] = c.buckets.get(le, 0.0) + value
            elif name == names.PROVIDER_INFLIGHT:
                out.setdefault(provider, ProviderCounters()).inflight = value
            elif name == names.PROVIDER_BREAKER_STATE:
                out.setdefault(provider, ProviderCounters()).breaker_state = value
            elif name == names.PROVIDER_OLDEST_INFLIGHT_AGE:
                out.setdefault(provider, ProviderCounters()).oldest_inflight_age_s = value
    for counters in out.values():
        counters.loop_lag_s = loop_lag_s if math.isfinite(loop_lag_s) else 0.0
    return out


class CounterReader(Protocol):
    """Reads the cumulative counters of every provider, now."""

    def read(self) -> dict[str, ProviderCounters]: ...


class RegistryReader:
    """Reads a ``prometheus_client`` registry in this process (no HTTP)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def read(self) -> dict[str, ProviderCounters]:
        return counters_from_families(self.registry.collect())


class MetricsUrlReader:
    """Reads a Prometheus text exposition over HTTP (the gateway's ``/metrics``)."""

    def __init__(self, url: str, timeout_s: float = 2.0, token: str | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.token = token

    def read(self) -> dict[str, ProviderCounters]:
        text = http_get_text(self.url, self.timeout_s, self.token)
        try:
            return counters_from_families(text_string_to_metric_families(text))
        except ValueError as exc:
            raise InvalidInput(f"not a Prometheus text exposition: {exc}", source=self.url) from None


class SeriesSource(Protocol):
    """Anything that answers per-provider samples for the interval ending ``now``."""

    def poll(self, now: float) -> list[Sample]: ...


class CounterSource:
    """Deltas of cumulative counters between successive polls of a :class:`CounterReader`."""

    def __init__(self, reader: CounterReader) -> None:
        self.reader = reader
        self._before: dict[str, ProviderCounters] = {}
        self._before_t: float | None = None

    def poll(self, now: float) -> list[Sample]:
        current = self.reader.read()
        interval = 0.0 if self._before_t is None else max(0.0, now - self._before_t)
        samples = []
        for provider, c in sorted(current.items()):
            prev = self._before.get(provider)
            if prev is None:
                continue  # first sight of this provider: this read is its base
            buckets = bucket_deltas(c.buckets, prev.buckets)
            q = [histogram_quantile(x, buckets) if buckets else None for x in QUANTILES]
            samples.append(
                Sample(
                    time=now,
                    provider=provider,
                    attempts=round(counter_delta(c.attempts, prev.attempts)),
                    failures=round(counter_delta(c.failures, prev.failures)),
                    timeouts=round(counter_delta(c.timeouts, prev.timeouts)),
                    p50_ms=_ms(q[0]),
                    p95_ms=_ms(q[1]),
                    p99_ms=_ms(q[2]),
                    inflight=c.inflight,
                    oldest_inflight_age_s=c.oldest_inflight_age_s,
                    interval_s=interval,
                    loop_lag_s=c.loop_lag_s,
                    breaker_open=c.breaker_state > 0,
                )
            )
        self._before = current
        self._before_t = now
        return with_peer_context(samples)


def registry_source(registry: CollectorRegistry) -> CounterSource:
    return CounterSource(RegistryReader(registry))


def metrics_url_source(url: str, timeout_s: float = 2.0, token: str | None = None) -> CounterSource:
    return CounterSource(MetricsUrlReader(url, timeout_s, token))


class PrometheusApiSource:
    """Samples from a Prometheus server's HTTP API (``/api/v1/query``), window = interval.

    ``window_s`` should be at least twice the server's scrape interval, or ``increase``
    has fewer than two points to work with and answers nothing.
    """

    def __init__(self, base_url: str, window_s: float, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.window_s = window_s
        self.timeout_s = timeout_s

    def _queries(self) -> dict[str, str]:
        w = f"{max(1, round(self.window_s * 1000))}ms"
        att, lat = names.ATTEMPTS_TOTAL, names.PROVIDER_LATENCY
        out = {
            "attempts": f"sum by (provider) (increase({att}[{w}]))",
            "failures": f'sum by (provider) (increase({att}{{outcome="error"}}[{w}]))',
            "timeouts": f'sum by (provider) (increase({att}{{error_type="timeout"}}[{w}]))',
            "inflight": f"max by (provider) ({names.PROVIDER_INFLIGHT})",
            "age": f"max by (provider) ({names.PROVIDER_OLDEST_INFLIGHT_AGE})",
            "loop_lag": f"max({names.GATEWAY_LOOP_LAG})",
        }
        for q in QUANTILES:
            out[f"q{q}"] = (
                f"histogram_quantile({q}, sum by (provider, le) (rate({lat}_bucket[{w}])))"
            )
        return out

    def poll(self, now: float) -> list[Sample]:
        values: dict[str, dict[str, float]] = {}
        loop_lag_s = 0.0
        for key, expr in self._queries().items():
            for labels, value in query_instant(self.base_url, expr, now, self.timeout_s):
                provider = labels.get("provider")
                if provider:
                    values.setdefault(provider, {})[key] = value
                elif key == "loop_lag":
                    loop_lag_s = _finite(value)
        samples = []
        for provider, v in sorted(values.items()):
            samples.append(
                Sample(
                    time=now,
                    provider=provider,
                    attempts=_count(v.get("attempts")),
                    failures=_count(v.get("failures")),
                    timeouts=_count(v.get("timeouts")),
                    p50_ms=_ms(v.get("q0.5")),
                    p95_ms=_ms(v.get("q0.95")),
                    p99_ms=_ms(v.get("q0.99")),
                    inflight=_finite(v.get("inflight")),
                    oldest_inflight_age_s=_finite(v.get("age")),
                    interval_s=self.window_s,
                    loop_lag_s=loop_lag_s,
                )
            )
        return with_peer_context(samples)


def run_sampler(
    source: SeriesSource,
    interval_s: float,
    on_samples: Callable[[list[Sample]], None],
    stop: threading.Event,
    max_duration_s: float = 24 * 3600.0,
    on_error: Callable[[Exception], None] | None = None,
) -> int:
    """Poll ``source`` every ``interval_s`` until ``stop`` is set; answers the poll count.

    Bounded by ``max_duration_s``. A poll that fails (the target restarting) is reported to
    ``on_error`` and skipped rather than ending the loop: detection must outlive a blip.
    """
    if not 0.05 <= interval_s <= 60.0:
        raise InvalidInput(f"{interval_s}s", field="interval", expected="50ms..60s")
    start = time.monotonic()
    polls = 0
    while not stop.is_set() and time.monotonic() - start < max_duration_s:
        polls += 1
        try:
            samples = source.poll(time.time())
        except (EnvironmentProblem, InvalidInput) as exc:
            if on_error is not None:
                on_error(exc)
        else:
            on_samples(samples)
        next_at = start + polls * interval_s
        stop.wait(max(0.0, next_at - time.monotonic()))
    return polls


# -- HTTP helpers (also used by `paystab detect --prometheus`) -----------------------------


def http_get_text(url: str, timeout_s: float, token: str | None = None) -> str:
    """A ``/metrics`` page through the one control-call client (``paystab.httpclient``)."""
    reply = httpclient.request("GET", url, token=token, timeout_s=timeout_s, accept="text/plain")
    if not reply.ok:
        reply.expect_ok("metrics scrape")
    return reply.text


def _prom_api(base_url: str, path: str, params: dict[str, str], timeout_s: float) -> Any:
    url = f"{base_url.rstrip('/')}{path}"
    where = f"Prometheus at {httpclient.safe_url(base_url)}"
    try:
        reply = httpclient.request("GET", url, params=params, timeout_s=timeout_s)
    except httpclient.Unreachable as exc:
        raise EnvironmentProblem(
            f"{where} does not answer: {exc.message}",
            hint="check --prometheus (e.g. http://127.0.0.1:9090) and that the server runs",
        ) from None
    payload = reply.body
    if not reply.ok:
        if reply.status in (400, 422) and isinstance(payload, dict):
            raise InvalidInput(
                f"Prometheus rejected the query: {payload.get('error', reply.status)}",
                source="--query",
            ) from None
        raise EnvironmentProblem(f"{where} answered HTTP {reply.status}") from None
    if not isinstance(payload, dict) or payload.get("status") != "success":
        raise EnvironmentProblem(f"{where} answered an error: {payload!r:.200}")
    return payload.get("data", {})


def query_instant(
    base_url: str, expr: str, at: float, timeout_s: float = 5.0
) -> list[tuple[dict[str, str], float]]:
    """``/api/v1/query``: one ``(labels, value)`` per series; NaN values are dropped."""
    data = _prom_api(base_url, "/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, timeout_s)
    out = []
    for item in data.get("result", []) if isinstance(data, dict) else []:
        value = float(item["value"][1])
        if not math.isnan(value):
            out.append((dict(item.get("metric", {})), value))
    return out


def query_range(
    base_url: str, expr: str, start: float, end: float, step_s: float, timeout_s: float = 30.0
) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    """``/api/v1/query_range``: ``(labels, [(t, value), ...])`` per series, NaN dropped."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
    data = _prom_api(base_url, "/api/v1/query_range", params, timeout_s)
    out = []
    for item in data.get("result", []) if isinstance(data, dict) else []:
        points = [(float(t), float(v)) for t, v in item.get("values", [])]
        out.append((dict(item.get("metric", {})), [p for p in points if not math.isnan(p[1])]))
    return out


def _ms(seconds: float | None) -> float | None:
    if seconds is None or math.isnan(seconds) or math.isinf(seconds):
        return None
    return seconds * 1000.0


def _count(value: float | None) -> int:
    return 0 if value is None or not math.isfinite(value) else max(0, round(value))


def _finite(value: float | None) -> float:
    return 0.0 if value is None or not math.isfinite(value) else value
