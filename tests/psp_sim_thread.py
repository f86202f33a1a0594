"""Simulators for blocking PSP SDKs: an event loop on a thread, and a webhook receiver.

The official SDKs (Adyen, paypayopa) and plain ``requests`` block, so the simulators run
on their own loop in a daemon thread; :class:`SimThread` starts them (HTTPS with the local
CA when the runner supports it), registers a loopback webhook receiver on every provider
that sends events, and hands the test endpoints, a way to run coroutines in that loop
(faults, ledger reads) and the received webhooks.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from paystab.stack.catalog import ProviderSpec
from paystab.stack.providers import RunningProviders, start_providers

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


class SimThread:
    def __init__(self, specs: list[ProviderSpec], data_dir: Path, seed: int = 7) -> None:
        self._specs = specs
        self._data_dir = data_dir
        self._seed = seed
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.running: RunningProviders | None = None
        self.webhooks: list[Received] = []
        self.webhook_status = 200
        self._runner: web.AppRunner | None = None
        self.tls = "tls" in inspect.signature(start_providers).parameters

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the simulators' loop (their state is not thread-safe)."""
        async def wrapped() -> T:
            return fn()
        return self.run(wrapped())

    def __enter__(self) -> SimThread:
        self._thread.start()
        self.webhook_url = self.run(self._start_receiver())
        kwargs: dict[str, Any] = {"data_dir": self._data_dir, "seed": self._seed}
        if self.tls:
            kwargs.update(tls=True, webhook_url=self.webhook_url)
        self.running = self.run(start_providers(self._specs, **kwargs))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running is not None:
            self.run(self.running.stop())
        if self._runner is not None:
            self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        self.loop.close()

    async def _start_receiver(self) -> str:
        async def receive(request: web.Request) -> web.Response:
            self.webhooks.append(Received(dict(request.headers), await request.read()))
            return web.Response(status=self.webhook_status, text="[accepted]")

        app = web.Application()
        app.router.add_post("/hooks", receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/hooks"

    def wait_webhooks(self, predicate: Callable[[list[Received]], bool],
                      timeout_s: float = 5.0) -> list[Received]:
        """The received webhooks once ``predicate`` holds; AssertionError after the
        deadline."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = list(self.webhooks)
            if predicate(seen):
                return seen
            time.sleep(0.02)
        raise AssertionError(f"webhooks not as expected after {timeout_s}s: {self.webhooks}")
