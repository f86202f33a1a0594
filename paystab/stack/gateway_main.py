"""The gateway as a process: ``paystab gateway`` (what ``paystab up`` runs as a child).

Builds settings, telemetry and the :class:`Gateway`, binds, writes its own ready file with
the bound port and pid, and serves until SIGINT/SIGTERM. Binding anything but loopback
requires an admin token. Connections are served by ``http_guard``'s request handler, with
the :class:`GatewayLimits` given (``--limit name=value``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

from aiohttp import web

from paystab.collector.telemetry import setup_telemetry
from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.net import is_loopback_host
from paystab.stack.catalog import StackSettings
from paystab.stack.endpoints import ProviderEndpoint, StackEndpoints
from paystab.stack.gateway import Gateway, GatewayOptions
from paystab.stack.gc_pauses import GcPauses
from paystab.stack.http_guard import GatewayLimits, GuardedSite


def check_bind(host: str, token: str | None, what: str) -> None:
    if not is_loopback_host(host) and not token:
        raise InvalidInput(
            f"refusing to bind {what} to {host}: admin and fault APIs bind loopback only",
            field="--host", expected="127.0.0.1, or a --token for any other address")


def read_secret_file(path: Path) -> bytes:
    """A key secret passed in (``--secret-file``): its bytes, stripped; 16 at least."""
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read the secret file: {exc.strerror}", source=str(path),
                           field="--secret-file") from None
    if len(secret) < 16:
        raise InvalidInput("the secret file holds fewer than 16 bytes", source=str(path),
                           field="--secret-file", expected="16 or more random bytes")
    return secret


def wait_for_providers_file(path: str | Path, timeout_s: float) -> None:
    """Return once ``path`` exists, for up to ``timeout_s`` (0: at once). Ready files are
    written whole (written aside, then renamed), so once it exists it can be read."""
    if timeout_s <= 0:
        return  # no wait asked: reading it names a missing file
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise EnvironmentProblem(
                f"the providers file {path} did not appear within {timeout_s:g} s",
                hint="are the provider simulators starting? (their log is beside it)")
        time.sleep(0.02)


def read_providers_file(path: str | Path) -> dict[str, ProviderEndpoint]:
    endpoints = StackEndpoints.read(path) if _has_gateway(path) else None
    if endpoints is not None:
        return endpoints.providers
    data = json.loads(Path(path).read_text())
    raw = data.get("providers", data)
    try:
        return {name: ProviderEndpoint(**{k: v for k, v in p.items() if k in
                                          ProviderEndpoint.__dataclass_fields__})
                for name, p in raw.items()}
    except (TypeError, AttributeError) as exc:
        raise InvalidInput(f"not a providers file: {exc}", source=str(path)) from None


def _has_gateway(path: str | Path) -> bool:
    try:
        return "gateway_url" in json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the providers file: {exc}", source=str(path)) from None


async def serve_gateway(settings: StackSettings, providers: dict[str, ProviderEndpoint],
                        ledger: Path, host: str, port: int, token: str | None,
                        telemetry_on: bool, trace_jsonl: Path | None,
                        ready_file: Path | None, limits: GatewayLimits | None = None,
                        secret_file: Path | None = None) -> None:
    check_bind(host, token, "the gateway")
    limits = limits or GatewayLimits()
    key_secret = read_secret_file(secret_file) if secret_file else None
    telemetry = setup_telemetry("paystab-gateway", enabled=telemetry_on,
                                sample_ratio=settings.trace_sample_ratio, jsonl_path=trace_jsonl)
    gateway = Gateway(settings, providers, ledger, telemetry,
                      GatewayOptions(host, port, token, limits, key_secret))
    handler_kwargs = {**limits.handler_kwargs(), "access_log": None}  # paths may hold anything
    runner = web.AppRunner(gateway.app(), handle_signals=False, **handler_kwargs)
    await runner.setup()
    site = GuardedSite(runner, host, port, gateway.guard, handler_kwargs,
                       reuse_address=True, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise EnvironmentProblem(f"cannot bind the gateway to {host}:{port}: {exc.strerror}",
                                 hint="free the port or pass --port 0") from None
    pauses = GcPauses()  # before the ready file: the start-up garbage is collected now
    pauses.start()
    bound = port
    for address in runner.addresses:  # (host, port) tuples for TCP sites
        bound = int(address[1])
        break
    if ready_file:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": f"http://{host}:{bound}", "port": bound,
                                   "pid": os.getpid()}))
        os.replace(tmp, ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await pauses.stop()
        await runner.cleanup()
        telemetry.shutdown()
