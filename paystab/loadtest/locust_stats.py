"""Locust's request statistics, fed in batches by the event-driven engine.

Locust counts a request with ``environment.events.request.fire(...)``: every listener is
called, and Locust's own updates two ``StatsEntry`` objects (the request name and the
total). At tens of thousands of requests per second per core that bookkeeping would cost
more than the HTTP. :class:`StatsBatch` keeps the same figures per request name and per
second — count, response-time histogram (Locust's own bucketing), sum, min, max, bytes —
and applies them to Locust's entries every ``FLUSH_S``, exactly as the per-request calls
would have (``tests/test_load_engine.py`` checks the two give identical statistics,
including the per-second response-time cache behind Locust's "current" percentiles).
Failures are rare and go to ``RequestStats.log_error`` one by one.

When anything else listens to Locust's request event (a plugin, Locust's OpenTelemetry
hook), per-request events are what it expects: the engine then fires them instead.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from locust import stats as locust_stats
from locust.stats import RequestStats

FLUSH_S = 0.1


class _Second:
    __slots__ = ("count", "first", "last", "length", "max_ms", "min_ms", "rt_counts", "sum_ms")

    def __init__(self, now: float) -> None:
        self.count = 0
        self.first = now
        self.last = now
        self.sum_ms = 0.0
        self.min_ms: float | None = None
        self.max_ms = 0.0
        self.length = 0
        self.rt_counts: defaultdict[int, int] = defaultdict(int)


class StatsBatch:
    """Per-request counting for one process's Locust ``RequestStats``."""

    def __init__(self, stats: RequestStats, method: str = "POST") -> None:
        self.stats = stats
        self.method = method
        self._pending: dict[str, dict[int, _Second]] = {}
        self._last_flush = time.monotonic()

    def add(self, name: str, response_time_ms: float, length: int, now: float) -> None:
        """One request: ``now`` is the wall clock (epoch s) when it ended."""
        seconds = self._pending.get(name)
        if seconds is None:
            seconds = self._pending[name] = {}
        t = int(now)
        sec = seconds.get(t)
        if sec is None:
            sec = seconds[t] = _Second(now)
        sec.count += 1
        if now > sec.last:
            sec.last = now
        elif now < sec.first:
            sec.first = now
        sec.sum_ms += response_time_ms
        if sec.min_ms is None or response_time_ms < sec.min_ms:
            sec.min_ms = response_time_ms
        if response_time_ms > sec.max_ms:
            sec.max_ms = response_time_ms
        sec.length += length
        sec.rt_counts[locust_stats.bucket_response_time(response_time_ms)] += 1

    def error(self, name: str, error: Exception) -> None:
        self.stats.log_error(self.method, name, error)

    def maybe_flush(self, now_mono: float) -> None:
        if now_mono - self._last_flush >= FLUSH_S:
            self.flush()
            self._last_flush = now_mono

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        # Second by second across names, as the requests happened: the total's per-second
        # response-time cache must see every name's earlier seconds before a new one.
        work = sorted((t, name, sec) for name, seconds in pending.items() for t, sec in seconds.items())
        for t, name, sec in work:
            _apply(self.stats.total, t, sec)
            _apply(self._entry(name, sec), t, sec)

    def _entry(self, name: str, first: _Second) -> Any:
        """Locust's entry for ``name``; a new one dated as if made by its first request."""
        key = (name, self.method)
        if key in self.stats.entries:
            return self.stats.entries[key]
        entry: Any = self.stats.get(name, self.method)
        entry.start_time = first.first
        if entry.use_response_times_cache:
            entry.response_times_cache = None
            entry._cache_response_times(int(first.first))
        return entry


def _apply(entry: Any, t: int, sec: _Second) -> None:  # a locust StatsEntry (typed int ms; floats in practice)
    """What ``sec.count`` calls of ``entry.log`` within second ``t`` would have done."""
    last: Any = entry.last_request_timestamp
    if entry.use_response_times_cache and last and t > int(last):
        entry._cache_response_times(t - 1)
    entry.num_requests += sec.count
    entry.num_reqs_per_sec[t] += sec.count
    if not last or sec.last > last:
        entry.last_request_timestamp = sec.last
    entry.total_response_time += sec.sum_ms
    assert sec.min_ms is not None
    entry.min_response_time = sec.min_ms if entry.min_response_time is None else min(
        entry.min_response_time, sec.min_ms)
    entry.max_response_time = max(entry.max_response_time, sec.max_ms)
    for bucket, count in sec.rt_counts.items():
        entry.response_times[bucket] += count
    entry.total_content_length += sec.length
