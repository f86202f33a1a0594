"""``paystab provider NAME|all``: run simulated PSPs on their own, until Ctrl-C or SIGTERM.

Parses options, starts the simulators (``stack/providers``), prints where they listen,
writes the ``--ready-file`` (a :class:`~paystab.stack.endpoints.StackEndpoints` with an
empty ``gateway_url``) and waits for a signal; then stops everything and exits 0.
Registered by ``paystab/cli`` through :func:`register` (or by adding
:data:`provider_command` to the group directly).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import click

from paystab.exceptions import InvalidInput
from paystab.stack.catalog import ProviderSpec, default_providers

DEFAULT_DATA_DIR = Path(".paystab") / "providers"


def _load(config: Path | None) -> tuple[list[ProviderSpec], int | None]:
    """Provider specs and seed from ``--config``, or the catalog defaults."""
    if config is None:
        return default_providers(), None
    from paystab.stack.config import load_stack_config

    settings = load_stack_config(config)
    return list(settings.providers), settings.seed


def _select(specs: Sequence[ProviderSpec], name: str, port: int | None) -> list[ProviderSpec]:
    if name == "all":
        chosen = list(specs)
    else:
        chosen = [s for s in specs if s.name == name] or [s for s in specs if s.dialect == name]
        if len(chosen) != 1:
            known = ", ".join(s.name for s in specs)
            raise InvalidInput(f"unknown provider {name!r}", source="NAME",
                               expected=f"all, or one of {known}")
    if port is not None:
        if not 0 <= port <= 65535 - len(chosen):
            raise InvalidInput(f"port {port} is out of range", source="--port",
                               expected="0 (ephemeral) or a free TCP port")
        # With several providers, --port P gives them P, P+1, ... (0 keeps all ephemeral).
        chosen = [replace(s, port=port + i if port else 0) for i, s in enumerate(chosen)]
    return chosen


async def _serve(specs: list[ProviderSpec], host: str, admin_port: int, data_dir: Path,
                 seed: int | None, token: str | None, ready_file: Path | None,
                 tls: bool = False, webhook_url: str | None = None) -> None:
    import asyncio

    from paystab.stack.endpoints import StackEndpoints
    from paystab.stack.gc_pauses import GcPauses
    from paystab.stack.providers import start_providers

    running = await start_providers(specs, host=host, admin_port=admin_port, data_dir=data_dir,
                                    seed=seed, token=token, tls=tls, webhook_url=webhook_url)
    pauses = GcPauses()  # every charge stays in memory: no full-collection stalls
    pauses.start()  # before the ready file: the start-up garbage is collected now
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        width = max(len(name) for name in running.endpoints)
        for name, endpoint in running.endpoints.items():
            click.echo(f"{name:<{width}}  {endpoint.dialect:<8}  {endpoint.url}  "
                       f"ledger {endpoint.ledger}")
        click.echo(f"{'admin':<{width}}  {'':<8}  {running.admin_url}  "
                   f"(metrics {running.metrics_url})")
        ca_files = {e.ca_file for e in running.endpoints.values() if e.ca_file}
        for ca_file in sorted(ca_files):
            click.echo(f"{'tls':<{width}}  {'':<8}  CA certificate {ca_file}")
        if ready_file is not None:
            StackEndpoints(
                gateway_url="", providers=running.endpoints,
                provider_admin_url=running.admin_url, providers_pid=os.getpid(),
                provider_metrics_url=running.metrics_url, admin_token=token,
                data_dir=str(data_dir),
            ).write(ready_file)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await pauses.stop()
        await running.stop()
    click.echo("providers stopped")


@click.command("provider")
@click.argument("name")
@click.option("--port", type=int, default=None,
              help="Port of the provider (with 'all': the first of consecutive ports); "
                   "0 = ephemeral. Default: the config's ports (ephemeral).")
@click.option("--admin-port", type=int, default=0, show_default=True,
              help="Port of the admin API (faults, /metrics); 0 = ephemeral.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_DATA_DIR, show_default=True,
              help="Where the providers' SQLite ledgers live.")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Stack config (YAML) defining providers, latencies and decline mixes.")
@click.option("--seed", type=int, default=None, help="Seed for latencies and decisions.")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write endpoints JSON here once listening.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; non-loopback needs --token.")
@click.option("--token", envvar="PAYSTAB_ADMIN_TOKEN", default=None,
              help="Bearer token for the admin API (env PAYSTAB_ADMIN_TOKEN).")
@click.option("--tls", is_flag=True,
              help="Serve HTTPS with a local CA made under --data-dir/tls (ready file: ca_file).")
@click.option("--webhook-url", default=None,
              help="Loopback URL that receives the providers' webhook events (signing secret "
                   "in the ready file: webhook_secret).")
def provider_command(name: str, port: int | None, admin_port: int, data_dir: Path,
                     config: Path | None, seed: int | None, ready_file: Path | None, host: str,
                     token: str | None, tls: bool, webhook_url: str | None) -> None:
    """Run the simulated PSP NAME (or 'all') until Ctrl-C or SIGTERM."""
    import asyncio  # here, not at the top: every other command starts without it

    specs, config_seed = _load(config)
    chosen = _select(specs, name, port)
    asyncio.run(_serve(chosen, host, admin_port, data_dir,
                       seed if seed is not None else config_seed, token, ready_file,
                       tls, webhook_url))


def register(group: click.Group) -> None:
    group.add_command(provider_command)
