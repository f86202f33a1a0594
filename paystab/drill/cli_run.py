"""Running drills for the CLI: live view, reports on disk, the exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.live import Live

from paystab.drill.runner import Drill, DrillOptions, exit_for
from paystab.report.base import renderer
from paystab.report.live import LiveView
from paystab.report.model import Report
from paystab.report.terminal import summary


def write_reports(report: Report, out_dir: Path, junit: Path | None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, path in (("json", out_dir / "report.json"), ("html", out_dir / "report.html")):
        path.write_text(renderer(name).render(report), encoding="utf-8")
        written.append(path)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(renderer("junit").render(report), encoding="utf-8")
        written.append(junit)
    return written


def run_drills(runbooks: list[str], target_url: str | None, duration_s: float | None,
               rps: float | None, seed: int | None, out_dir: Path, junit: Path | None,
               live: bool, ready_file: str | None = None) -> int:
    console = Console(stderr=True)
    worst = 0
    for name in runbooks:
        out = out_dir if len(runbooks) == 1 else out_dir / Path(name).stem
        junit_path = junit
        if junit is not None and len(runbooks) > 1:
            junit_path = junit.with_name(f"{Path(name).stem}-{junit.name}")
        options = DrillOptions(runbook=name, target_url=target_url, ready_file=ready_file,
                               duration_s=duration_s, rps=rps,
                               seed=seed, out_dir=out, live=live and console.is_terminal)
        drill = Drill(options, console,
                      on_phase=None if options.live else lambda p: console.print(f"[dim]drill: {p}[/dim]"))
        if options.live:
            drill.view = LiveView(name, duration_s)
            with Live(drill.view, console=console, refresh_per_second=4, transient=True):
                report = drill.run()
        else:
            drill.view = None
            report = drill.run()
        paths = write_reports(report, out, junit_path)
        Console(file=sys.stdout).print(summary(report))
        console.print("reports: " + ", ".join(str(p) for p in paths))
        worst = max(worst, exit_for(report))  # an aborted drill raises: the rest do not run
    return worst
