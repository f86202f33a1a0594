"""Terminal renderings of load results, the profile catalogue and capacity searches.

Renderers only format data the result objects already hold (rich tables); they compute
nothing, so what the terminal shows is what ``--json`` says.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from paystab.loadtest.capacity_result import CapacityResult
from paystab.loadtest.result import format_ms

if TYPE_CHECKING:
    from paystab.loadtest.result import LoadResult


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.3f}%"


def profiles_table(catalogue: list[dict[str, Any]]) -> RenderableType:
    table = Table(title="load profiles (paystab load --profile NAME --param KEY=VALUE)",
                  show_lines=True)
    for col in ("profile", "what it does", "--rps is", "default duration", "parameters"):
        table.add_column(col)
    for p in catalogue:
        params = "\n".join(f"{q['name']} = {q['default']} ({q['unit']}): {q['help']}"
                           for q in p["params"]) or "—"
        table.add_row(p["name"], p["summary"], p["rps_means"],
                      f"{p['default_duration_s']:g} s", params)
    return table


def result_view(result: LoadResult, plain: bool = False) -> RenderableType:
    """The run as tables on a terminal; with ``plain`` (piped, CI logs) as one line per fact,
    ``key=value`` pairs with units, which grep and diff read and no width cuts."""
    if plain:
        return Text("\n".join(result_lines(result)))
    s = result.summary
    head = Table(title=f"paystab load — {result.plan.profile} → {result.target_url}",
                 show_header=True, header_style="bold")
    for col in ("requests", "approved", "declined", "pending", "failed", "dropped",
                "retries", "rps", "failure", "availability", "p50 ms", "p95 ms", "p99 ms"):
        head.add_column(col, justify="right")
    head.add_row(str(s.requests), str(s.approved), str(s.declined), str(s.pending),
                 str(s.failed), f"{s.dropped} ({_pct(s.dropped_rate)})", str(s.retries),
                 f"{s.rps:.1f}", _pct(s.failure_rate), _pct(s.availability),
                 format_ms(s.p50_ms), format_ms(s.p95_ms), format_ms(s.p99_ms))
    win = Table(title=f"windows of {result.window_s:g} s", header_style="bold")
    for col in ("#", "from", "to", "requests", "rps", "failure", "dropped", "p95 ms", "p99 ms"):
        win.add_column(col, justify="right")
    breached = {b.window for t in result.thresholds for b in t.breaches}
    for w in result.windows:
        ws = w.summary
        style = "red" if w.index in breached else None
        win.add_row(str(w.index), f"{ws.start_s:g}s", f"{ws.end_s:g}s", str(ws.requests),
                    f"{ws.rps:.1f}", _pct(ws.failure_rate), str(ws.dropped),
                    format_ms(ws.p95_ms), format_ms(ws.p99_ms), style=style)
    parts: list[RenderableType] = [head, win]
    for t in result.thresholds:
        parts.append(Text(("✓ " if t.ok else "✗ ") + t.describe(),
                          style="green" if t.ok else "bold red"))
    g = result.generator
    parts.append(Text(f"generator: {g.get('issued', 0)} arrivals, max lag "
                      f"{g.get('max_lag_ms', 0)} ms, {g.get('cpu_s', 0)} CPU s "
                      f"({g.get('requests_per_cpu_s')} checkouts per CPU s), "
                      f"{result.processes} process(es), {result.plan.users} users",
                      style="dim"))
    return Group(*parts)


def result_lines(result: LoadResult) -> list[str]:
    """Line-oriented form of :func:`result_view`."""
    s = result.summary
    lines = [f"load: {result.plan.profile} -> {result.target_url}",
             f"total: requests={s.requests} approved={s.approved} declined={s.declined} "
             f"pending={s.pending} failed={s.failed} dropped={s.dropped} "
             f"dropped_share={_pct(s.dropped_rate)} retries={s.retries} rps={s.rps:.1f}/s "
             f"failure={_pct(s.failure_rate)} availability={_pct(s.availability)} "
             f"p50={format_ms(s.p50_ms)}ms p95={format_ms(s.p95_ms)}ms "
             f"p99={format_ms(s.p99_ms)}ms"]
    breached = {b.window for t in result.thresholds for b in t.breaches}
    for w in result.windows:
        ws = w.summary
        lines.append(f"window {w.index}: from={ws.start_s:g}s to={ws.end_s:g}s "
                     f"requests={ws.requests} rps={ws.rps:.1f}/s failure={_pct(ws.failure_rate)} "
                     f"dropped={ws.dropped} p95={format_ms(ws.p95_ms)}ms "
                     f"p99={format_ms(ws.p99_ms)}ms" + (" BREACHED" if w.index in breached else ""))
    for t in result.thresholds:
        lines.append(f"threshold {'ok' if t.ok else 'FAIL'}: {t.describe()}")
    g = result.generator
    lines.append(f"generator: arrivals={g.get('issued', 0)} max_lag={g.get('max_lag_ms', 0)}ms "
                 f"cpu={g.get('cpu_s', 0)}s checkouts_per_cpu_s={g.get('requests_per_cpu_s')} "
                 f"processes={result.processes} users={result.plan.users}")
    return lines


def capacity_view(result: CapacityResult) -> RenderableType:
    table = Table(title="capacity search — latency curve", header_style="bold")
    for col in ("rate/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "failure", "dropped",
                "verdict"):
        table.add_column(col, justify="right")
    for step in result.curve():
        s = step.summary
        table.add_row(f"{step.rate:.0f}", f"{s.rps:.1f}", format_ms(s.p50_ms),
                      format_ms(s.p95_ms), format_ms(s.p99_ms), _pct(s.failure_rate),
                      _pct(s.dropped_rate),
                      "ok" if step.ok else "✗ " + ", ".join(step.breached),
                      style=None if step.ok else "red")
    if result.first_failing_rps is None:
        line = (f"capacity ≥ {result.capacity_rps:.0f}/s (no step failed up to "
                f"--max-rps {result.max_rps:g})")
    else:
        line = (f"capacity {result.capacity_rps:.0f}/s (first failure at "
                f"{result.first_failing_rps:.0f}/s) for " + ", ".join(result.thresholds))
    parts: list[RenderableType] = [table, Text(line, style="bold")]
    if result.headroom is not None:
        ok = result.headroom >= 1.0
        parts.append(Text(
            f"headroom vs expected peak {result.expected_peak:g}/s: ×{result.headroom:.2f} "
            f"({(result.headroom - 1) * 100:+.0f}%)", style="green" if ok else "bold red"))
    return Group(*parts)
