"""A ``/metrics`` scrape of paystab's gateway (its own metric names), every poll.

Reuses the collector's :class:`~paystab.collector.sampler.CounterSource` (deltas of the
cumulative counters between polls). A page that carries none of paystab's provider metrics
is a :class:`SourceError`: pointed at another stack's /metrics this source used to read
nothing and say nothing; for other metric names use the ``prometheus`` source.
"""

from __future__ import annotations

import os
import time

from paystab.collector.sampler import CounterSource, MetricsUrlReader, ProviderCounters
from paystab.collector.series import Sample
from paystab.watch.config import MetricsUrlSource
from paystab.watch.sources import SourceError


class _CheckedReader:
    def __init__(self, reader: MetricsUrlReader, name: str) -> None:
        self.reader = reader
        self.name = name

    def read(self) -> dict[str, ProviderCounters]:
        counters = self.reader.read()
        if not counters:
            raise SourceError(
                f"source {self.name}: {self.reader.url} carries no paystab_provider_* metrics",
                hint="a stack with other metric names needs a `prometheus` source with queries")
        return counters


class ScrapeSource:
    def __init__(self, config: MetricsUrlSource) -> None:
        token = os.environ.get(config.token_env) if config.token_env else None
        self.name = config.name
        self.lag_s = 0.0
        self._inner = CounterSource(_CheckedReader(
            MetricsUrlReader(config.url, config.timeout_s, token), config.name))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def poll(self, now: float) -> list[Sample]:
        started = time.time()
        samples = self._inner.poll(now)
        self.lag_s = time.time() - started
        return samples
