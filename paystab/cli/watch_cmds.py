"""``paystab watch``: live detection and failover for any stack, as a long-running service.

``paystab watch --config FILE [--dry-run]`` runs :class:`paystab.watch.service.WatchService`
until SIGINT/SIGTERM; ``watch validate FILE`` checks a config (exit 2 listing every problem);
``watch schema`` prints the JSON Schema of the config; ``watch receiver`` is the Alertmanager
webhook receiver in front of a failover controller. Parse, call, render: nothing else.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import click


@click.group("watch", invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Watch config (YAML); see docs/watch.md.")
@click.option("--dry-run", is_flag=True, help="Decide and log, never act.")
@click.option("--no-live", is_flag=True, help="Plain log lines instead of the live view.")
@click.option("--max-duration", default="0s", show_default=True,
              help="Stop after this long (0: run until interrupted).")
@click.pass_context
def watch(ctx: click.Context, config_path: str | None, dry_run: bool, no_live: bool,
          max_duration: str) -> None:
    """Sources -> detectors -> actuators, with dry-run, safety caps, /metrics and a decision log."""
    if ctx.invoked_subcommand is not None:
        return
    from paystab.exceptions import InvalidInput
    from paystab.units import parse_duration_s

    if config_path is None:
        raise InvalidInput("give --config FILE (or a subcommand: validate, schema, receiver)",
                           source="command line")
    try:
        limit_s = parse_duration_s(max_duration) if max_duration not in ("0", "0s") else 0.0
    except ValueError as exc:
        raise InvalidInput(str(exc), source="--max-duration") from None
    from paystab.watch.config import load_config
    from paystab.watch.service import WatchService
    from paystab.watch.view import make_view

    config = load_config(config_path)
    if dry_run:
        config = config.model_copy(update={"dry_run": True})
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    service = WatchService(config)
    view = make_view(service, live=not no_live and sys.stdout.isatty())
    service.run(stop, max_duration_s=limit_s or None, view=view)


@watch.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check watch configs; exit 2 listing every problem with file:line:field."""
    from paystab.exceptions import InvalidInput
    from paystab.watch.config import load_config

    problems: list[InvalidInput] = []
    for path in files:
        try:
            config = load_config(path)
        except InvalidInput as exc:
            problems.append(exc)
            continue
        click.echo(f"{path}: ok ({len(config.sources)} source(s), "
                   f"{len(config.actuators)} actuator(s), detectors: "
                   f"{', '.join(config.detectors)})")
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InvalidInput("\n".join(p.message for p in problems))


@watch.command("schema")
def schema() -> None:
    """Print the JSON Schema of the watch config (also shipped as watch.schema.json)."""
    from paystab.watch.config import schema_text

    click.echo(schema_text(), nl=False)


@watch.command("receiver")
@click.option("--gateway", required=True, help="Gateway base URL (admin API).")
@click.option("--listen", default="127.0.0.1:9095", show_default=True, help="Webhook HOST:PORT.")
@click.option("--no-detect", is_flag=True, help="Only act on Alertmanager alerts.")
@click.option("--interval", default=0.5, show_default=True, help="Sampling interval, s.")
def receiver(gateway: str, listen: str, no_detect: bool, interval: float) -> None:
    """Alertmanager webhook in, drains through the gateway out (token: PAYSTAB_TOKEN)."""
    from paystab.alerting.receiver import serve

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve(gateway, listen, os.environ.get("PAYSTAB_TOKEN") or None, not no_detect, interval, stop)


def register(group: click.Group) -> None:
    group.add_command(watch)

