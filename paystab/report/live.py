"""The live view of a running drill: a snapshot dataclass and the rich renderable for it.

The drill runner owns the numbers; this module only shows them. Several times a second
the runner builds a :class:`LiveSnapshot` (cheap: counts it keeps anyway) and hands it to
a :class:`LiveView`, which ``rich.live.Live`` redraws::

    view = LiveView(runbook="provider-timeout", duration_s=60)
    with Live(view, refresh_per_second=4, console=console):
        while running:
            view.update(LiveSnapshot(elapsed_s=..., ...))

Snapshot fields (``None`` = not known yet; times in seconds from the drill start):

* ``elapsed_s``, ``duration_s`` — progress; ``phase`` — e.g. ``steady-state``, ``load``,
  ``recovery``, ``reconciling``;
* ``target_rps`` (what the runbook asks) and ``current_rps`` (started last second);
* ``requests``, ``failed`` — so far; ``availability`` — so far, ``availability_10s`` —
  over the last 10 s (both answered / requests: declines count as answers);
* ``p95_ms`` — customer latency over the last 10 s; ``latency_slo_ms`` and
  ``availability_target`` colour the numbers;
* ``active_faults`` — :class:`ActiveFault` (id, kind, target, since, planned end);
* ``providers`` — :class:`ProviderState` (name, ``active``/``drained``/``degraded``,
  breaker ``closed``/``open``/``half_open``, recent attempts/s and success);
* ``detections`` — the latest :class:`~paystab.report.model.DetectionRecord` (newest last);
  the view shows the last five.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from paystab.report import fmt
from paystab.report.model import DetectionRecord


@dataclass(frozen=True)
class ActiveFault:
    id: str
    kind: str
    target: str
    since_s: float
    until_s: float | None = None  # planned clear time; None = until cleared by hand


@dataclass(frozen=True)
class ProviderState:
    name: str
    state: str = "active"  # active | drained | degraded
    breaker: str = "closed"  # closed | open | half_open
    attempts_per_s: float | None = None
    success: float | None = None  # 1 − failures / attempts over the last seconds


@dataclass(frozen=True)
class LiveSnapshot:
    elapsed_s: float
    duration_s: float | None = None
    phase: str = "load"
    target_rps: float | None = None
    current_rps: float | None = None
    requests: int = 0
    failed: int = 0
    availability: float | None = None
    availability_10s: float | None = None
    p95_ms: float | None = None
    availability_target: float = 0.9999
    latency_slo_ms: float = 500.0
    active_faults: Sequence[ActiveFault] = ()
    providers: Sequence[ProviderState] = ()
    detections: Sequence[DetectionRecord] = field(default_factory=tuple)


STATE_STYLE = {"active": "green", "drained": "bold red", "degraded": "yellow"}
BREAKER_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def _ratio(value: float | None, target: float) -> Text:
    style = "dim" if value is None else ("green" if value >= target else "bold red")
    return Text(fmt.pct(value), style=style)


def _header(s: LiveSnapshot, runbook: str) -> RenderableType:
    total = s.duration_s or 0.0
    bar = ProgressBar(total=total or 1.0, completed=min(s.elapsed_s, total or 1.0), width=40)
    left = f"{fmt.secs(total, 0)}" if total else "?"
    title = Text.assemble((f"{runbook} ", "bold"), (f"[{s.phase}] ", "cyan"),
                          f"{s.elapsed_s:5.1f} s / {left}  ")
    grid = Table.grid(padding=(0, 1))
    grid.add_row(title, bar)
    return grid


def _numbers(s: LiveSnapshot) -> Table:
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column()
    rate = (f"{fmt.number(s.current_rps, 0)}/s of {fmt.number(s.target_rps, 0)}/s"
            if s.target_rps else f"{fmt.number(s.current_rps, 0)}/s")
    slow = s.p95_ms is not None and s.p95_ms > s.latency_slo_ms
    grid.add_row(Text("rate", style="bold"), rate, Text("requests", style="bold"),
                 f"{s.requests:,} ({s.failed:,} failed)")
    grid.add_row(Text("availability", style="bold"), _ratio(s.availability, s.availability_target),
                 Text("last 10 s", style="bold"), _ratio(s.availability_10s, s.availability_target))
    grid.add_row(Text("p95 (10 s)", style="bold"),
                 Text(fmt.ms(s.p95_ms), style="bold red" if slow else ""),
                 Text("SLO", style="bold"),
                 f"{fmt.pct(s.availability_target, 2)}, p95 ≤ {fmt.ms(s.latency_slo_ms)}")
    return grid


def _faults(s: LiveSnapshot) -> RenderableType:
    if not s.active_faults:
        return Text("no fault active", style="dim")
    table = Table(title="Active faults", title_justify="left", box=None)
    for name in ("id", "kind", "target", "since", "until"):
        table.add_column(name)
    for f in s.active_faults:
        table.add_row(Text(f.id, style="bold magenta"), Text(f.kind), Text(f.target),
                      fmt.secs(f.since_s), fmt.secs(f.until_s))
    return table


def _providers(s: LiveSnapshot) -> RenderableType:
    table = Table(title="Providers", title_justify="left", box=None)
    for name in ("provider", "state", "breaker", "attempts/s", "success"):
        table.add_column(name, justify="right" if name in ("attempts/s", "success") else "left")
    for p in s.providers:
        table.add_row(Text(p.name), Text(p.state, style=STATE_STYLE.get(p.state, "")),
                      Text(p.breaker, style=BREAKER_STYLE.get(p.breaker, "")),
                      fmt.number(p.attempts_per_s, 1), fmt.pct(p.success, 2))
    return table


def _detections(s: LiveSnapshot) -> RenderableType:
    if not s.detections:
        return Text("no detection yet", style="dim")
    table = Table(title="Recent detections", title_justify="left", box=None)
    for name in ("at", "provider", "detector", "reason"):
        table.add_column(name)
    for d in list(s.detections)[-5:]:
        table.add_row(fmt.secs(d.at_s), Text(d.provider), Text(d.detector), Text(d.reason))
    return table


def render_live(snapshot: LiveSnapshot, runbook: str = "drill") -> RenderableType:
    """The whole live view for one snapshot (a pure function of its arguments)."""
    body = Group(_header(snapshot, runbook), Text(""), _numbers(snapshot), Text(""),
                 _faults(snapshot), Text(""), _providers(snapshot), Text(""),
                 _detections(snapshot))
    return Panel(body, title="paystab drill", border_style="blue")


class LiveView:
    """Holds the latest snapshot; ``rich.live.Live(view)`` redraws it on its own refresh."""

    def __init__(self, runbook: str = "drill", duration_s: float | None = None) -> None:
        self.runbook = runbook
        self.snapshot = LiveSnapshot(elapsed_s=0.0, duration_s=duration_s, phase="starting")

    def update(self, snapshot: LiveSnapshot) -> None:
        self.snapshot = snapshot  # one reference swap: safe to call from another thread

    def __rich__(self) -> RenderableType:
        return render_live(self.snapshot, self.runbook)
