"""Start and stop a set of provider simulators in the current event loop.

``start_providers`` puts every :class:`ProviderSpec` on its own port (``spec.port``, 0 =
ephemeral) and one admin listener beside them, all in one process and one event loop —
the embedded default of ``paystab up``; ``paystab provider NAME`` runs the same with one
spec. Listeners bind ``host`` (127.0.0.1 by default); a non-loopback host is refused
unless an admin token is given, and then the admin API requires it as a Bearer token.
With ``tls=True`` the providers (not the admin API) serve HTTPS with a local CA
(``stack/tls.py``), named in each endpoint's ``ca_file``. ``webhook_url`` registers a
webhook endpoint on every provider whose dialect sends events (its signing secret is in the
endpoint's ``webhook_secret``); routed dialects get their API secret (``api_key``).
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.net import is_loopback_host, is_wildcard_host
from paystab.stack.catalog import ProviderSpec
from paystab.stack.dialects import DIALECTS
from paystab.stack.endpoints import ProviderEndpoint
from paystab.stack.providers.admin import AdminApi
from paystab.stack.providers.book import ChargeBook
from paystab.stack.providers.faults import FaultSet
from paystab.stack.providers.ledger import ProviderLedger
from paystab.stack.providers.metrics import SimMetrics
from paystab.stack.providers.model import ChargeModel, provider_rng
from paystab.stack.providers.server import SimProvider
from paystab.stack.tls import ensure_tls, server_context

_SHUTDOWN_TIMEOUT_S = 2.0




def _url_host(host: str) -> str:
    if is_wildcard_host(host):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@dataclass
class RunningProviders:
    """Simulators listening in this event loop. ``stop()`` releases everything."""

    endpoints: dict[str, ProviderEndpoint]
    admin_url: str
    metrics_url: str
    data_dir: Path
    providers: dict[str, SimProvider]
    metrics: SimMetrics
    token: str | None = None
    _servers: list[tuple[asyncio.Server, web.Server]] = field(default_factory=list, repr=False)
    _admin: web.AppRunner | None = field(default=None, repr=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def stop(self) -> None:
        self._stopping.set()  # hung handlers close their connections unanswered
        for listener, _ in self._servers:
            listener.close()
        await asyncio.sleep(0)  # requests already read start to be handled first
        for _, handler in self._servers:
            # Idle keep-alive connections (a gateway's or an SDK's pool) close now; without
            # this each would hold the shutdown for its whole timeout, as aiohttp's own
            # runner avoids in the same way.
            handler.pre_shutdown()
        for _, handler in self._servers:
            await handler.shutdown(_SHUTDOWN_TIMEOUT_S)
        self._servers.clear()
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None
        for provider in self.providers.values():
            if provider.webhooks is not None:
                await provider.webhooks.close()
            provider.book.close()
            provider.ledger.close()


async def _listen(handler: web.Server, host: str, port: int, what: str,
                  tls: ssl.SSLContext | None = None) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(handler, host, port, reuse_address=True, backlog=2048,
                                        ssl=tls)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise EnvironmentProblem(f"{what}: port {port} on {host} is already in use",
                                     hint="pick another --port, or 0 for an ephemeral one"
                                     ) from None
        raise EnvironmentProblem(f"{what}: cannot listen on {host}:{port}: {exc.strerror}"
                                 ) from None


def _check_specs(specs: Sequence[ProviderSpec]) -> None:
    names = [s.name for s in specs]
    if not specs:
        raise InvalidInput("no provider to start", field="providers")
    if len(set(names)) != len(names):
        raise InvalidInput("provider names must be unique", field="providers",
                           expected=f"distinct names, got {', '.join(names)}")
    for spec in specs:
        if spec.dialect not in DIALECTS:
            raise InvalidInput(f"unknown dialect {spec.dialect!r}",
                               field=f"providers.{spec.name}.dialect",
                               expected=f"one of {', '.join(sorted(DIALECTS))}")


async def start_providers(
    specs: Sequence[ProviderSpec],
    host: str = "127.0.0.1",
    admin_port: int = 0,
    data_dir: Path | str | None = None,
    seed: int | None = None,
    token: str | None = None,
    tls: bool = False,
    webhook_url: str | None = None,
) -> RunningProviders:
    """Start ``specs`` in the running loop; ledgers go to ``data_dir/<name>.sqlite3``.

    ``data_dir`` None = a fresh temporary directory. Raises InvalidInput for bad specs or
    a non-loopback ``host`` without ``token``, EnvironmentProblem for a port in use.
    """
    if not is_loopback_host(host) and not token:
        raise InvalidInput(f"refusing to listen on non-loopback host {host}", source="--host",
                           hint="give an admin --token, or keep the default 127.0.0.1")
    _check_specs(specs)
    root = Path(data_dir) if data_dir is not None else Path(
        tempfile.mkdtemp(prefix="paystab-providers-"))
    root.mkdir(parents=True, exist_ok=True)
    metrics = SimMetrics()
    stopping = asyncio.Event()
    admin_host = host if token else "127.0.0.1"
    running = RunningProviders({}, "", "", root, {}, metrics, token, _stopping=stopping)
    tls_files = ensure_tls(root) if tls else None
    tls_context = server_context(tls_files) if tls_files else None
    scheme = "https" if tls else "http"
    # Off loopback, a dialect with no scheme of its own still refuses unknown callers: each
    # such provider gets a random secret (in the 0600 ready file, used by the gateway).
    guard = not is_loopback_host(host)
    try:
        for spec in specs:
            provider = _build(spec, root, metrics, seed, stopping, guard)
            running.providers[spec.name] = provider
            handler = web.Server(provider.handle, handler_cancellation=True, access_log=None)
            listener = await _listen(handler, host, spec.port, f"provider {spec.name}",
                                     tls_context)
            running._servers.append((listener, handler))
            port = listener.sockets[0].getsockname()[1]
            provider.url = f"{scheme}://{_url_host(host)}:{port}"
            running.endpoints[spec.name] = ProviderEndpoint(
                spec.name, provider.url, list(spec.methods), spec.dialect,
                str(provider.ledger.path),
                ca_file=str(tls_files.ca_file) if tls_files else None,
                api_key=provider.secret or None,
                webhook_secret=_register_webhook(provider, webhook_url))
        running._admin = await _start_admin(running, admin_host, admin_port)
    except BaseException:
        await running.stop()
        if data_dir is None:  # a failed start leaves no paystab-providers-* behind
            shutil.rmtree(root, ignore_errors=True)
        raise
    return running


def _build(spec: ProviderSpec, root: Path, metrics: SimMetrics, seed: int | None,
           stopping: asyncio.Event, guard: bool = False) -> SimProvider:
    dialect = DIALECTS[spec.dialect]
    try:
        model = ChargeModel(spec, provider_rng(seed, spec.name, "charges"))
    except ValueError as exc:
        raise InvalidInput(str(exc), field=f"providers.{spec.name}.decline_mix") from None
    ledger = ProviderLedger(root / f"{spec.name}.sqlite3")
    book = ChargeBook(spec, dialect, ledger, model)

    def publish(faults: FaultSet) -> None:
        metrics.set_faults(spec.name, faults.counts_by_type())

    faults = FaultSet(provider_rng(seed, spec.name, "faults"), publish)
    metrics.set_faults(spec.name, faults.counts_by_type())
    secret = getattr(dialect, "default_secret", None)
    if secret is None and guard:
        secret = secrets.token_urlsafe(24)
    return SimProvider(spec, dialect, ledger, book, model, faults, metrics, stopping, secret=secret)


def _register_webhook(provider: SimProvider, url: str | None) -> str | None:
    """Register ``url`` as the provider's webhook endpoint; its signing secret."""
    add_endpoint = getattr(provider.state, "add_endpoint", None)
    if url is None or add_endpoint is None:
        return None
    try:
        doc = add_endpoint(url, ["*"])
    except ValueError as exc:
        raise InvalidInput(str(exc), source="--webhook-url") from None
    return str(doc["secret"])


async def _start_admin(running: RunningProviders, host: str, port: int) -> web.AppRunner:
    api = AdminApi(running.providers, running.metrics, running.token,
                   metrics_need_token=not is_loopback_host(host))
    runner = web.AppRunner(api.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise EnvironmentProblem(f"provider admin API: port {port} on {host} is in use",
                                     hint="pick another --admin-port, or 0") from None
        raise EnvironmentProblem(f"provider admin API: cannot listen on {host}:{port}") from None
    bound = int(runner.addresses[0][1])
    running.admin_url = f"http://{_url_host(host)}:{bound}"
    running.metrics_url = f"{running.admin_url}/metrics"
    return runner
