"""``paystab up``, ``paystab gateway``, ``paystab provider`` (and the registration of
``paystab reconcile``, in :mod:`paystab.cli.reconcile_cmd`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click


def _settings(config: Path | None, seed: int | None) -> Any:
    from dataclasses import replace

    from paystab.stack.catalog import StackSettings
    from paystab.stack.config import load_stack_config

    settings = load_stack_config(config) if config else StackSettings()
    return replace(settings, seed=seed) if seed is not None else settings


def _check_outputs(ready_file: Path | None, trace_jsonl: Path | None) -> None:
    """The files a stack writes, checked (folders made) before anything starts: exit 2."""
    from paystab.outputs import check_output_file

    for flag, path in (("--ready-file", ready_file), ("--trace-jsonl", trace_jsonl)):
        if path is not None:
            check_output_file(path, flag)


@click.command("up")
@click.option("--config", type=click.Path(path_type=Path), help="Stack settings (YAML).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Gateway port; 0 picks a free one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; a non-loopback address needs --token.")
@click.option("--no-telemetry", is_flag=True, help="Turn tracing off (overhead benchmark).")
@click.option("--prometheus", is_flag=True, help="Also start Prometheus scraping the stack.")
@click.option("--alertmanager", is_flag=True, help="Also start Alertmanager (implies --prometheus).")
@click.option("--ready-file", type=click.Path(path_type=Path),
              help="Write every endpoint as JSON here once all answer.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Ledgers and logs (default: a new temp dir).")
@click.option("--token", envvar="PAYSTAB_TOKEN", help="Admin token (needed for a non-loopback --host).")
@click.option("--seed", type=int, help="Seed the simulators and routing.")
@click.option("--trace-jsonl", type=click.Path(path_type=Path), help="Also write spans as JSON lines.")
@click.option("--tls", is_flag=True,
              help="Providers serve HTTPS with a local CA (the ready file names it: ca_file).")
@click.option("--gateway-limit", "gateway_limits", multiple=True, metavar="NAME=VALUE",
              help="A client bound of the gateway (as paystab gateway --limit; docs/security.md).")
def up_command(config: Path | None, port: int, host: str, no_telemetry: bool, prometheus: bool,
               alertmanager: bool, ready_file: Path | None, data_dir: Path | None,
               token: str | None, seed: int | None, trace_jsonl: Path | None,
               tls: bool, gateway_limits: tuple[str, ...]) -> None:
    """Start the provider simulators and the gateway on loopback; stop with Ctrl-C."""
    from paystab.cli.up_view import show_endpoints
    from paystab.stack.gateway_main import check_bind
    from paystab.stack.supervisor import RunningStack, StackOptions

    check_bind(host, token, "the stack")
    _check_outputs(ready_file, trace_jsonl)
    extra_env = {}
    if gateway_limits:
        from paystab.stack.http_guard import GatewayLimits

        GatewayLimits.from_pairs(gateway_limits, "--gateway-limit")  # exit 2 now, not in the child
        extra_env["PAYSTAB_GATEWAY_LIMITS"] = " ".join(gateway_limits)  # read by `paystab gateway`
    if config:
        _settings(config, seed)  # validate before anything starts: exit 2 on a bad file
    stack = RunningStack(StackOptions(port=port, host=host, config=config, data_dir=data_dir,
                                      telemetry=not no_telemetry, token=token, seed=seed,
                                      trace_jsonl=trace_jsonl, tls=tls, extra_env=extra_env))
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    extras: list[Any] = []
    started = False
    try:
        endpoints = stack.start()
        if prometheus or alertmanager:
            from paystab.cli.up_view import start_monitoring

            extras = start_monitoring(stack, alertmanager)
        if ready_file:
            from paystab.stackfile.reference import write_beside

            # Before the ready file: whoever waits for it finds the stack file too.
            click.echo(f"stack file: {write_beside(ready_file, endpoints)} "
                       "(paystab drill RUNBOOK --stack FILE)")
            stack.publish(ready_file)
        show_endpoints(endpoints)
        started = True
        while not stop.wait(0.5):
            if not stack.alive():
                click.echo("paystab: the provider simulators exited; stopping", err=True)
                break
    finally:
        for extra in extras:
            extra.stop()
        stack.stop()
        if not started:
            stack.remove_temporary_data()  # a failed `up` leaves no paystab-stack-* behind
        for s, handler in previous.items():
            signal.signal(s, handler)


@click.command("gateway")
@click.option("--providers-file", required=True, type=click.Path(path_type=Path),
              help="Ready file of the provider simulators (or of a whole stack).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one (see --ready-file).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; a non-loopback address needs --token.")
@click.option("--ledger", type=click.Path(path_type=Path), default=Path("gateway.db"), show_default=True,
              help="SQLite ledger of payments (created if missing).")
@click.option("--config", type=click.Path(path_type=Path),
              help="Stack settings YAML (routing, breaker, providers; docs/providers.md).")
@click.option("--no-telemetry", is_flag=True, help="Turn tracing off (overhead benchmark).")
@click.option("--token", envvar="PAYSTAB_TOKEN", help="Admin token for /admin and /metrics "
              "(env PAYSTAB_TOKEN).")
@click.option("--seed", type=int, help="Seed the routing choices.")
@click.option("--trace-jsonl", type=click.Path(path_type=Path), help="Also write spans as JSON lines.")
@click.option("--ready-file", type=click.Path(path_type=Path),
              help="Write the gateway's URL (and port) as JSON here once it answers.")
@click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE", envvar="PAYSTAB_GATEWAY_LIMITS",
              help="Override a client bound (docs/security.md), e.g. header_read_timeout_s=5.")
@click.option("--secret-file", type=click.Path(path_type=Path), envvar="PAYSTAB_GATEWAY_SECRET_FILE",
              help="Key for idempotency hashes (default: <ledger>.secret, made on first start).")
@click.option("--wait-providers-file", type=click.FloatRange(0, 600), default=0, metavar="SECONDS",
              help="Wait up to SECONDS for --providers-file to appear, so the gateway can start "
                   "beside the simulators (paystab up does).  [default: 0, it must exist]")
def gateway_command(providers_file: Path, port: int, host: str, ledger: Path, config: Path | None,
                    no_telemetry: bool, token: str | None, seed: int | None,
                    trace_jsonl: Path | None, ready_file: Path | None, limits: tuple[str, ...],
                    secret_file: Path | None, wait_providers_file: float) -> None:
    """Run the reference gateway alone, in front of already running providers."""
    import asyncio

    from paystab.collector.telemetry import setup_logging
    from paystab.stack.gateway_main import (
        read_providers_file,
        serve_gateway,
        wait_for_providers_file,
    )
    from paystab.stack.http_guard import GatewayLimits

    _check_outputs(ready_file, trace_jsonl)
    setup_logging()
    gateway_limits = GatewayLimits.from_pairs(limits)
    settings = _settings(config, seed)
    wait_for_providers_file(providers_file, wait_providers_file)  # after the imports
    providers = read_providers_file(providers_file)
    asyncio.run(serve_gateway(settings, providers, ledger, host, port, token, not no_telemetry,
                              trace_jsonl, ready_file, gateway_limits, secret_file))


def register(group: click.Group) -> None:
    group.add_command(up_command)
    group.add_command(gateway_command)
    from paystab.cli.reconcile_cmd import reconcile_command

    group.add_command(reconcile_command)
    try:
        from paystab.cli.provider_cmd import provider_command
    except ImportError:
        return
    group.add_command(provider_command, "provider")
