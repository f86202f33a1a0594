"""``ProxyServer``: the control API and every proxy, in one event loop, embeddable.

``await server.start()`` binds the control API and returns its URL; ``await server.stop()``
closes every proxy and connection. Tests and the chaos engine that are not async can use
``server.run_in_thread()`` (or ``with ProxyServer(port=0) as url:``), which runs the same
loop in a daemon thread.

Safety: the control API binds 127.0.0.1 by default; a non-loopback address is refused
unless a token is given, and then every request must carry ``Authorization: Bearer
<token>``. Proxies' listen addresses follow the same rule.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from types import TracebackType
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from paystab.chaos.proxy_server.addresses import join_host_port
from paystab.chaos.proxy_server.api import build_app
from paystab.chaos.proxy_server.collection import ProxyCollection
from paystab.chaos.proxy_server.errors import ApiError
from paystab.chaos.proxy_server.metrics import ProxyMetrics
from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.net import is_loopback_host

DEFAULT_PORT = 8474  # Toxiproxy's


class ProxyServer:
    """A Toxiproxy-compatible fault proxy server."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        seed: int | None = None,
        token: str | None = None,
    ) -> None:
        if not is_loopback_host(host) and not token:
            raise InvalidInput(
                f"refusing to serve the control API on {host!r}: not a loopback address",
                source="--listen",
                expected="127.0.0.1 or another loopback address",
                hint="give --token to allow other interfaces (requests then need the token)",
            )
        self.host = host
        self.port = port
        self.seed = seed
        self.token = token or None
        self.collection = ProxyCollection(seed=seed, allow_public=self.token is not None)
        self.registry = CollectorRegistry()
        self.registry.register(ProxyMetrics(self.collection))
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None

    # -- async API ------------------------------------------------------------------------
    async def start(self) -> str:
        """Bind the control API; returns its base URL (``http://127.0.0.1:8474``)."""
        app = build_app(self.collection, self.registry, self.token)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = join_host_port(self.host, self.port)
            if exc.errno == errno.EADDRINUSE:
                raise EnvironmentProblem(
                    f"cannot listen on {where}: the address is in use",
                    hint="pick another --listen port, or stop what holds it (ss -ltnp)",
                ) from None
            raise EnvironmentProblem(f"cannot listen on {where}: {exc.strerror or exc}") from None
        self._runner = runner
        bound: Any = runner.addresses[0]
        self.port = int(bound[1])
        self.url = f"http://{join_host_port(self.host, self.port)}"
        return self.url

    async def stop(self) -> None:
        await self.collection.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create proxies as ``POST /populate`` does; raises ApiError on the first failure."""
        applied, error = await self.collection.populate(proxies)
        if error is not None:
            raise error
        return [proxy.to_json() for proxy in applied]

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then close everything."""
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- in a thread -------------------------------------------------------------------------
    def run_in_thread(self, timeout_s: float = 10.0) -> str:
        """Start the server in a daemon thread with its own event loop; returns the URL."""
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop_requested = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            await self.serve_until(self._stop_requested)

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="paystab-proxy", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout_s):
            raise EnvironmentProblem("the fault proxy did not start in time")
        if failure:
            raise failure[0]
        assert self.url is not None
        return self.url

    def stop_thread(self, timeout_s: float = 10.0) -> None:
        if self._thread is None or self._loop is None or self._stop_requested is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_requested.set)
            self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> str:
        return self.run_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()


__all__ = ["DEFAULT_PORT", "ApiError", "ProxyServer"]
