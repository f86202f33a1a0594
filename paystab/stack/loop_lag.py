"""Event-loop lag of an asyncio service, measured by a periodic timer and exposed as a gauge.

When the gateway's event loop is blocked (a CPU-starved host, a long synchronous call),
every in-flight provider attempt looks older and every completion comes late — for all
providers at once. The detectors must not read that as a provider hang, so the gateway
measures it: a timer asks to wake every ``interval_s`` and records how late it woke. The
gauge ``paystab_gateway_event_loop_lag_seconds`` answers the largest lateness seen over the
last ``window_s`` — including the tick that is overdue right now, because the scrape that
reads it may be served before the late timer callback runs — so a sampler polling every
100 ms–1 s sees every stall that aged the attempts it is looking at.

Cost: one timer callback every 50 ms, a deque of ~20 entries; nothing per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from paystab.collector import names


class LoopLagMonitor:
    """Start it on the loop it measures (``start()`` inside a coroutine); ``lag_s()`` is safe
    to call from that loop at any time (the /metrics handler does)."""

    def __init__(self, interval_s: float = 0.05, window_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self.clock = clock
        self._recent: deque[tuple[float, float]] = deque()  # (woke at, lateness s)
        self._expected: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._expected = self.clock() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = self.clock()
            self.record(now, max(0.0, now - self._expected))

    def record(self, now: float, lateness_s: float) -> None:
        self._recent.append((now, lateness_s))
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()

    def lag_s(self, now: float | None = None) -> float:
        """Largest lateness over the last ``window_s``, the overdue tick included."""
        now = self.clock() if now is None else now
        worst = max((late for t, late in self._recent if t >= now - self.window_s), default=0.0)
        if self._expected is not None and now > self._expected:
            worst = max(worst, now - self._expected)
        return worst

    def collector(self) -> Collector:
        return _LoopLagCollector(self)


class _LoopLagCollector(Collector):
    def __init__(self, monitor: LoopLagMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            names.GATEWAY_LOOP_LAG,
            f"Largest event-loop lag over the last {self.monitor.window_s:g} s (a periodic "
            f"timer's lateness)", value=self.monitor.lag_s(),
        )
