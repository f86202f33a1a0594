"""``paystab chaos proxy``: run the Toxiproxy-compatible fault proxy in the foreground.

The ``chaos`` group (``chaos_cmds``) adds :data:`proxy_command` under the name ``proxy``.
The command serves until Ctrl-C or SIGTERM, then closes every proxy and exits 0. A
``--config`` file is Toxiproxy's ``-config`` JSON (a list of ``{name, listen, upstream,
enabled}``; :mod:`paystab.chaos.proxy_server.config_file`), checked before anything
listens, every problem at once with file:line messages.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from paystab.exceptions import EnvironmentProblem, InvalidInput

if TYPE_CHECKING:
    from paystab.chaos.proxy_server import ProxyServer


def load_proxy_config(path: Path, allow_public: bool) -> list[dict[str, Any]]:
    """Read a Toxiproxy config file into the list ``POST /populate`` takes (exit 2 listing
    every problem). Imported here, not at the top: the CLI imports only click at start."""
    from paystab.chaos.proxy_server.config_file import load_proxy_config as load

    return load(path, allow_public)

async def _serve(server: ProxyServer, proxies: list[dict[str, Any]], source: str) -> None:
    import asyncio

    from paystab.chaos.proxy_server import ApiError

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        url = await server.start()
        try:
            created = await server.populate(proxies) if proxies else []
        except ApiError as exc:
            if exc.status >= 500:
                raise EnvironmentProblem(
                    f"{source}: {exc.message}", hint="pick free ports in the config file"
                ) from None
            raise InvalidInput(exc.message, source=source) from None
        click.echo(f"paystab chaos proxy: control API on {url} (Toxiproxy v2 API)", err=True)
        for proxy in created:
            state = "" if proxy["enabled"] else " (disabled)"
            click.echo(f"  {proxy['name']}: {proxy['listen']} -> {proxy['upstream']}{state}",
                       err=True)
        await server.serve_until(stop)
    finally:
        await server.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    click.echo("paystab chaos proxy: stopped", err=True)


@click.command("proxy", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--listen", default="127.0.0.1:8474", show_default=True, metavar="HOST:PORT",
              help="Address of the control API (8474 is Toxiproxy's port).")
@click.option("--seed", type=int, default=None,
              help="Make every random choice (toxicity, jitter, slice sizes) reproducible.")
@click.option("--token", default=None, envvar="PAYSTAB_PROXY_TOKEN",
              help="Require 'Authorization: Bearer TOKEN' on the API; needed to listen "
                   "on a non-loopback address. Also read from $PAYSTAB_PROXY_TOKEN.")
@click.option("--config", "config_path", default=None, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Toxiproxy config JSON: proxies to create at start.")
def proxy_command(listen: str, seed: int | None, token: str | None,
                  config_path: Path | None) -> None:
    """Run a TCP fault proxy with a Toxiproxy-compatible HTTP API until Ctrl-C/SIGTERM."""
    from paystab.chaos.proxy_server import ProxyServer
    from paystab.chaos.proxy_server.addresses import AddressError, split_host_port

    try:
        host, port = split_host_port(listen)
    except AddressError as exc:
        raise InvalidInput(
            str(exc), source="--listen", expected="HOST:PORT, e.g. 127.0.0.1:8474"
        ) from None
    proxies = load_proxy_config(config_path, bool(token)) if config_path else []
    # Connection failures inside the proxy are logged, not raised: show them on stderr.
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # An empty host (":8474") means loopback here: anything wider must be named, with a token.
    server = ProxyServer(host or "127.0.0.1", port, seed=seed, token=token)
    import asyncio  # here, not at the top: every other command starts without it

    asyncio.run(_serve(server, proxies, str(config_path) if config_path else "--config"))
