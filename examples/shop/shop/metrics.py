"""The shop's own Prometheus metrics (prometheus-client), served at ``GET /metrics``.

=====================================  =====================================================
shop_psp_requests_total{psp,outcome}   PSP calls by outcome: approved, declined, error,
                                       timeout (declines are the customer's, not the PSP's)
shop_psp_request_seconds{psp}          histogram of PSP call durations
shop_psp_inflight_requests{psp}        PSP calls waiting for an answer now
shop_psp_oldest_inflight_seconds{psp}  age of the oldest of them (0 when none): a PSP that
                                       stopped answering shows here at once, long before a
                                       timeout completes a call
shop_psp_enabled{psp}                  1 when routing may use the PSP (the failover switch)
shop_psp_in_doubt_payments{psp}        payments whose charge at the PSP is still unknown
shop_orders_total{state}               orders by the state payment left them in
shop_checkout_seconds                  histogram of the time to answer a pay request
shop_event_loop_lag_seconds            how late the event loop runs its timers (the largest
                                       lateness of the last second, an overdue tick
                                       included): a stalled, CPU-starved host makes every
                                       PSP call look slow at once; this says it was the host
=====================================  =====================================================

Every PSP's label set exists from the start (at 0), so a query never misses a quiet PSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

OUTCOMES = ("approved", "declined", "error", "timeout")
ORDER_STATES = ("paid", "declined", "failed")
# Few buckets: every scrape renders each of them (a Python exposition is not free).
PSP_BUCKETS_S = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0)


class InflightCalls(Collector):
    """PSP calls in progress, from any thread; read at scrape time."""

    def __init__(self, psps: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._started: dict[str, dict[int, float]] = {name: {} for name in psps}

    @contextmanager
    def track(self, psp: str) -> Iterator[None]:
        call_id = next(self._ids)
        with self._lock:
            self._started[psp][call_id] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                del self._started[psp][call_id]

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        count = GaugeMetricFamily("shop_psp_inflight_requests",
                                  "PSP calls waiting for an answer", labels=["psp"])
        oldest = GaugeMetricFamily("shop_psp_oldest_inflight_seconds",
                                   "Age of the oldest PSP call waiting for an answer",
                                   labels=["psp"])
        with self._lock:
            for psp, started in self._started.items():
                count.add_metric([psp], len(started))
                oldest.add_metric([psp], now - min(started.values()) if started else 0.0)
        yield count
        yield oldest


class LoopLag(Collector):
    """A timer on the event loop asks to wake every ``interval_s``; how late it woke is the
    lag. Read at scrape time from the metrics thread, which keeps answering while the loop is
    stalled: the tick that is overdue right now counts too."""

    def __init__(self, interval_s: float = 0.05, window_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, float]] = deque()  # (woke at, lateness s)
        self._due: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Call on the loop it measures."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._due = time.monotonic() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            with self._lock:
                self._recent.append((now, max(0.0, now - self._due)))
                while self._recent and self._recent[0][0] < now - self.window_s:
                    self._recent.popleft()

    def lag_s(self) -> float:
        now = time.monotonic()
        due = self._due
        with self._lock:
            seen = max((lag for at, lag in self._recent if at >= now - self.window_s), default=0.0)
        return max(seen, 0.0 if due is None else now - due)

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("shop_event_loop_lag_seconds",
                                  "How late the event loop ran its timers over the last second")
        gauge.add_metric([], self.lag_s())
        yield gauge


class ShopMetrics:
    def __init__(self, psps: list[str]) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.registry = CollectorRegistry()
        self.psp_requests = Counter("shop_psp_requests", "PSP calls by outcome",
                                    ["psp", "outcome"], registry=self.registry)
        self.psp_seconds = Histogram("shop_psp_request_seconds", "PSP call duration", ["psp"],
                                     buckets=PSP_BUCKETS_S, registry=self.registry)
        self.psp_enabled = Gauge("shop_psp_enabled", "1 when routing may use the PSP", ["psp"],
                                 registry=self.registry)
        self.in_doubt = Gauge("shop_psp_in_doubt_payments",
                              "Payments whose charge at the PSP is still unknown", ["psp"],
                              registry=self.registry)
        self.orders = Counter("shop_orders", "Orders by the state payment left them in",
                              ["state"], registry=self.registry)
        self.checkout_seconds = Histogram("shop_checkout_seconds", "Time to answer a pay request",
                                          buckets=PSP_BUCKETS_S, registry=self.registry)
        self.inflight = InflightCalls(psps)
        self.registry.register(self.inflight)
        self.loop_lag = LoopLag()
        self.registry.register(self.loop_lag)
        for psp in psps:
            for outcome in OUTCOMES:
                self.psp_requests.labels(psp, outcome)
            self.psp_seconds.labels(psp)
            self.psp_enabled.labels(psp).set(1)
            self.in_doubt.labels(psp)
        for state in ORDER_STATES:
            self.orders.labels(state)
