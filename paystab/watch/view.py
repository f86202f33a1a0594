"""The live terminal view of ``paystab watch`` (rich), or plain lines when not a TTY.

A renderer only: it reads :meth:`WatchService.snapshot` and the decision log entries and
computes nothing. The plain view prints each new log entry as one JSON line, which is also
what a supervisor (systemd, a container runtime) collects.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.live import Live

    from paystab.watch.service import View, WatchService


class PlainView:
    def __init__(self, service: WatchService) -> None:
        self.service = service
        self._printed = 0

    def update(self) -> None:
        entries = list(self.service.recent)
        new = min(len(entries), self.service.recorded - self._printed)
        self._printed = self.service.recorded
        for entry in entries[len(entries) - new:] if new > 0 else []:
            sys.stdout.write(json.dumps(entry) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        self.update()


class LiveView:
    def __init__(self, service: WatchService) -> None:
        from rich.live import Live

        self.service = service
        self.live: Live = Live(self._render(), refresh_per_second=4, transient=False)
        self.live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        snap = self.service.snapshot()
        title = "paystab watch" + (" (dry run)" if snap["dry_run"] else "")
        table = Table(title=title)
        for column in ("provider", "phase", "pin", "attempts", "failures", "p95 ms",
                       "oldest in flight s"):
            table.add_column(column)
        for name, p in snap["providers"].items():
            last = p["last"] or {}
            p95 = last.get("p95_ms")
            table.add_row(name, p["phase"] + (" (out)" if p["out"] else ""), p["pin"] or "",
                          str(last.get("attempts", "")), str(last.get("failures", "")),
                          "" if p95 is None else f"{p95:.0f}",
                          f"{last.get('oldest_inflight_age_s', 0.0):.1f}")
        sources = Table(title="sources")
        sources.add_column("source")
        sources.add_column("status")
        for name, status in snap["sources"].items():
            sources.add_row(name, status if status == "ok" else f"[red]{status}[/red]")
        log = Table(title="decisions")
        log.add_column("entry", overflow="fold")
        for entry in snap["recent"][-8:]:
            log.add_row(json.dumps(entry)[:200])
        return Group(table, sources, log)

    def update(self) -> None:
        self.live.update(self._render())

    def close(self) -> None:
        self.live.stop()


def make_view(service: WatchService, live: bool) -> View:
    return LiveView(service) if live else PlainView(service)
