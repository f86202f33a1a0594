"""``paystab drill``: run a runbook and give a verdict (exit 0 pass, 1 fail, 3 aborted or
interrupted, 4 inconclusive: the measuring apparatus limited the run). With several runbooks
every one runs (an abort stops the rest) and the worst counts: a fail outranks an inconclusive."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("drill")
@click.argument("runbooks", nargs=-1)
@click.option("--target", "target_url", help="Drill your own gateway at this URL instead of the reference stack.")
@click.option("--ready-file", type=click.Path(dir_okay=False), help="A ready file describing your stack "
              "(gateway, provider admin URLs, ledgers): lets provider faults and reconciliation reach it.")
@click.option("--duration", metavar="DURATION", help="Load duration: 30, 30s, 2m, 1h30m (the fault "
              "schedule scales with it; at least the runbook's min_duration).")
@click.option("--rps", metavar="RATE", help="Payments per second: 200 or 200/s (must be positive).")
@click.option("--seed", type=int, help="Seed for the payment mix and fault timing.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("paystab-drill"),
              show_default=True, help="Where report.json and report.html go.")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML here.")
@click.option("--no-live", is_flag=True, help="No live view (CI logs).")
@click.option("--watch", "watch_config", type=click.Path(dir_okay=False, path_type=Path),
              help="Detect and fail over with this `paystab watch` config (its sources, detectors, "
                   "safety and actuators) instead of the built-in /metrics sampler and admin API.")
@click.option("--stack", "stack_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Drill the stack this stack file describes (`paystab init` writes one; a "
                   "ready file of `paystab up` is read as one): its simulators and service are "
                   "started, load goes through its checkout, faults to its simulators.")
def drill_command(runbooks: tuple[str, ...], target_url: str | None, ready_file: str | None,
                  duration: str | None,
                  rps: str | None, seed: int | None, out_dir: Path, junit: Path | None,
                  no_live: bool, watch_config: Path | None, stack_file: Path | None) -> int:
    """Run disaster drills (default: provider-timeout) and judge SLOs and payment invariants."""
    from paystab.cli.conventions import positive_rate
    from paystab.drill.cli_run import run_drills
    from paystab.exceptions import InvalidInput
    from paystab.units import DURATION_EXPECTED, parse_cli_duration_s

    if stack_file is not None and (target_url or ready_file):
        raise InvalidInput("--stack describes the whole stack", source="--stack",
                           expected="--stack alone, or --target/--ready-file without it")
    try:
        duration_s = None if duration is None else parse_cli_duration_s(duration)
    except ValueError as exc:
        raise InvalidInput(str(exc), source="--duration", expected=DURATION_EXPECTED) from None
    return run_drills(list(runbooks) or ["provider-timeout"], target_url, duration_s,
                      positive_rate(rps, "--rps"), seed,
                      out_dir, junit, not no_live, ready_file, watch_config, stack_file)


def register(group: click.Group) -> None:
    group.add_command(drill_command)
