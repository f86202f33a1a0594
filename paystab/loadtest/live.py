"""The live view of a running load: rate, failures, p95/p99, users, dropped arrivals.

A greenlet redraws a rich table on stderr once a second from the sink (recent records by
start time, so a stalled target shows as a falling rate, not a frozen one). It computes
nothing the result does not: the figures are :func:`stats.summarize` over the last seconds.
When stderr is not a terminal (a pipe, a CI log) it prints the same figures as one
``key=value`` line every few seconds instead: no table, nothing cut at 80 columns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import gevent
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from paystab.loadtest.records import RecordSink
from paystab.loadtest.stats import summarize

RECENT_S = 5.0  # the rate and percentiles shown cover checkouts started this long ago…
SETTLE_S = 1.0  # …up to this long ago (the newest are still in flight)


def _fmt(value: float, spec: str = ".1f") -> str:
    return "-" if math.isnan(value) else format(value, spec)


PLAIN_EVERY_S = 5.0  # progress lines when not on a terminal


class LiveView:
    def __init__(
        self, sink: RecordSink, *, title: str, target_rate: Callable[[], float],
        users: Callable[[], int], run_start: Callable[[], float | None],
        duration_s: float, console: Console | None = None,
    ) -> None:
        self.sink = sink
        self.title = title
        self.target_rate = target_rate
        self.users = users
        self.run_start = run_start
        self.duration_s = duration_s
        self.console = console or Console(stderr=True)
        self._greenlet: gevent.Greenlet | None = None
        self._live: Live | None = None

    def render(self) -> Table:
        now = time.time()
        recent = [r for r in self.sink.recent(RECENT_S + SETTLE_S, now)
                  if r.started_at < now - SETTLE_S]
        start = self.run_start()
        elapsed = max(now - start, 0.0) if start else 0.0
        # early on the window is shorter than RECENT_S: divide by what it really covers
        span = min(RECENT_S, max(elapsed - SETTLE_S, 1e-3))
        s = summarize(recent, 0, 0.0, span)
        all_records = self.sink.records
        failed = sum(1 for r in all_records if r.outcome == "failed")
        dropped = self.sink.dropped_total
        table = Table(title=self.title, show_header=True, header_style="bold",
                      box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True)
        for col in ("elapsed", "target/s", "rate/s", "fail%", "p95 ms", "p99 ms", "users",
                    "busy", "total", "failed", "dropped"):
            table.add_column(col, justify="right")
        total = len(all_records)
        table.add_row(
            f"{min(elapsed, self.duration_s):.0f}/{self.duration_s:.0f}s",
            f"{self.target_rate():.0f}", f"{s.rps:.0f}",
            _fmt(s.failure_rate * 100 if s.requests else math.nan, ".2f"),
            _fmt(s.p95_ms, ".0f"), _fmt(s.p99_ms, ".0f"), str(self.users()),
            str(self.sink.inflight), str(total), str(failed),
            f"{dropped} ({100 * dropped / (total + dropped):.1f}%)" if total + dropped else "0",
        )
        return table

    def line(self) -> str:
        """The view as one ``key=value`` line (no table): what a pipe or CI log gets."""
        table = self.render()
        cells = [next(iter(c.cells), "") for c in table.columns]
        return " ".join(f"{str(c.header).replace(' ', '_')}={v}"
                        for c, v in zip(table.columns, cells, strict=True))

    def start(self) -> None:
        if not self.console.is_terminal:  # piped: a progress line every PLAIN_EVERY_S
            self._greenlet = gevent.spawn(self._plain_loop)
            return
        self._live = Live(self.render(), console=self.console, auto_refresh=False,
                          transient=False)
        self._live.start()
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(1.0)
            if self._live is not None:
                self._live.update(self.render(), refresh=True)

    def _plain_loop(self) -> None:
        while True:
            gevent.sleep(PLAIN_EVERY_S)
            self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
        if self._live is None:
            self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()
