"""Running drills for the CLI: live view, reports on disk, the exit code.

A drill runs Locust, and Locust gevent-patches the process when it is imported. The patch
must come before any thread, lock or event loop that the drill or the live view uses: a
real OS thread started before it (rich's own refresh thread was one) ends up with a gevent
hub of its own, never sees the drill's greenlets run, and keeps drawing ``[starting] 0.0 s``;
at exit the unpatched thread's bookkeeping raises in ``threading._delete``. So
:func:`run_drills` patches first, and the live view is refreshed by a greenlet of ours
(``Live(auto_refresh=False)``) rather than by rich's thread class, whose base class was
bound when ``rich.live`` was imported — possibly before the patch.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console, RenderableType

from paystab.report.live import LiveView
from paystab.report.model import Report

REFRESH_INTERVAL_S = 0.25


def patch_with_gevent() -> None:
    """Apply Locust's gevent patch now (idempotent): importing the load runner imports Locust."""
    import paystab.loadtest.runner  # noqa: F401


@contextmanager
def live_view(view: RenderableType, console: Console) -> Iterator[None]:
    """Show ``view`` (a rich renderable) on ``console``, redrawn by a greenlet until the block ends.

    The greenlet yields to the hub between redraws, so the view advances whenever the drill's
    greenlets wait on I/O or timers, which they do many times a second.
    """
    import gevent
    import gevent.event
    from rich.live import Live

    done = gevent.event.Event()

    with Live(view, console=console, auto_refresh=False, transient=True) as live:
        def redraw() -> None:
            while not done.wait(REFRESH_INTERVAL_S):
                live.refresh()

        refresher = gevent.spawn(redraw)
        try:
            yield
        finally:
            done.set()
            refresher.join(timeout=REFRESH_INTERVAL_S * 4)
            refresher.kill(block=False)


def _phase_printer(console: Console, view: LiveView | None) -> Callable[[str], None]:
    """Phases as log lines when piped; in the live view's header when it is shown (the
    runner's snapshots carry the phase only while the load runs)."""
    if view is None:
        return lambda phase: console.print(f"drill: {phase}", style="dim", markup=False)

    def show(phase: str) -> None:
        view.update(dataclasses.replace(view.snapshot, phase=phase))
    return show


def write_reports(report: Report, out_dir: Path, junit: Path | None,
                  earlier: list[Report] | None = None) -> list[Path]:
    """report.json and report.html in ``out_dir``; with ``junit``, one JUnit file holding a
    testsuite for every drill of this command so far (``earlier`` + this one)."""
    from paystab.report.base import write_report, write_text
    from paystab.report.junit import render_many

    written = [write_report(report, out_dir / "report.json", "json"),
               write_report(report, out_dir / "report.html", "html")]
    if junit is not None:
        written.append(write_text(render_many([*(earlier or []), report]), junit))
    return written


@contextmanager
def signals_held() -> Iterator[list[str]]:
    """While the reports are written, Ctrl-C or SIGTERM only takes note: a half-written
    report would be worse than a few more milliseconds. The caller checks the list after."""
    import signal

    import gevent

    seen: list[str] = []
    handlers = [gevent.signal_handler(s, seen.append, s.name) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield seen
    finally:
        for handler in handlers:
            handler.cancel()


def check_output_paths(out_dirs: list[Path], junit: Path | None) -> None:
    """Make the output folders now and prove them writable: a drill must not run for a
    minute and then lose its reports to a typo (exit 2, naming the flag)."""
    from paystab.outputs import check_output_dir, check_output_file

    if junit is not None:
        check_output_file(junit, "--junit")
    for folder in out_dirs:
        check_output_dir(folder, "--out")


def run_drills(runbooks: list[str], target_url: str | None, duration_s: float | None,
               rps: float | None, seed: int | None, out_dir: Path, junit: Path | None,
               live: bool, ready_file: str | None = None, watch_config: Path | None = None,
               stack_file: Path | None = None) -> int:
    patch_with_gevent()  # before the console's locks and any thread exist
    from paystab.drill.runner import Drill, DrillOptions, exit_for
    from paystab.report.terminal import plain_summary, summary

    console = Console(stderr=True)
    worst = 0
    outs = {name: out_dir if len(runbooks) == 1 else out_dir / Path(name).stem for name in runbooks}
    check_output_paths(list(outs.values()), junit)
    done: list[Report] = []
    inconclusive: list[Report] = []
    for name in runbooks:
        out = outs[name]
        options = DrillOptions(runbook=name, target_url=target_url, ready_file=ready_file,
                               watch_config=watch_config, stack_file=stack_file,
                               duration_s=duration_s, rps=rps,
                               seed=seed, out_dir=out, live=live and console.is_terminal,
                               command_line=shlex.join(["paystab", *sys.argv[1:]]))
        view = LiveView(name, duration_s) if options.live else None
        drill = Drill(options, console, on_phase=_phase_printer(console, view))
        if view is not None:
            drill.view = view
            with live_view(view, console):
                report = drill.run()
        else:
            drill.view = None
            report = drill.run()
        with signals_held() as interrupted:
            paths = write_reports(report, out, junit, done)
        done.append(report)
        if sys.stdout.isatty():
            Console(file=sys.stdout).print(summary(report))
        else:  # a pipe or a CI log: one fact per line, nothing cut at 80 columns
            sys.stdout.write(plain_summary(report))
        console.print("reports: " + ", ".join(str(p) for p in paths))
        if interrupted:
            from paystab.exceptions import Aborted

            raise Aborted(f"interrupted by {interrupted[0]} while the reports were written; they are complete")
        if report.verdict == "inconclusive":
            inconclusive.append(report)  # the other runbooks still run: their verdicts count
            continue
        worst = max(worst, exit_for(report))  # an aborted drill raises: the rest do not run
    if inconclusive and worst == 0:
        exit_for(inconclusive[0])  # raises Inconclusive: exit 4
    return worst
