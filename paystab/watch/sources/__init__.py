"""Telemetry sources of ``paystab watch``: per-provider :class:`Sample` rounds from anywhere.

The contract (:class:`WatchSource`), stated once:

* ``name`` — as in the config; it labels the source's errors and lag in watch's /metrics.
* ``start()`` / ``stop()`` — open and close whatever the source holds (a listening socket);
  pull sources do nothing. ``start`` raises :class:`~paystab.exceptions.EnvironmentProblem`
  when it cannot (a port taken).
* ``poll(now)`` — one :class:`~paystab.collector.series.Sample` per provider for the interval
  since the previous poll: attempts, failures (customer declines excluded), timeouts, latency
  quantiles, in-flight count and age of the oldest in-flight attempt. A source that cannot
  see what it was told to look at — the server does not answer, a query matches no series,
  a page carries none of the expected metrics, a receiver got nothing for ``stale_after`` —
  raises :class:`SourceError`: never an empty round that reads as "all quiet". An empty list
  is only right when the source is still taking its first base reading.
* ``lag_s`` — how old the newest data of the last poll was when watch got it.

:func:`build_source` maps a config entry to its implementation by ``kind``.
"""

from __future__ import annotations

from typing import Protocol

from paystab.collector.series import Sample
from paystab.exceptions import EnvironmentProblem
from paystab.watch.config import MetricsUrlSource, OtlpSource, PrometheusSource


class SourceError(EnvironmentProblem):
    """A source saw nothing where it was told to look (or could not look at all)."""


class WatchSource(Protocol):
    name: str
    lag_s: float

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def poll(self, now: float) -> list[Sample]: ...


def build_source(config: PrometheusSource | OtlpSource | MetricsUrlSource) -> WatchSource:
    if isinstance(config, PrometheusSource):
        from paystab.watch.sources.prometheus import PromqlSource

        return PromqlSource(config)
    if isinstance(config, OtlpSource):
        from paystab.watch.sources.otlp import OtlpReceiver

        return OtlpReceiver(config)
    from paystab.watch.sources.scrape import ScrapeSource

    return ScrapeSource(config)
