"""Helpers for the load harness tests: a small real HTTP server speaking the payment API.

Used ONLY for harness-mechanics tests (pacing, dropped arrivals, retries with the same key,
windows); acceptance tests run against the real stack (``paystab up``). The server is a
real aiohttp app on 127.0.0.1 in a background thread with its own event loop, so the test
process itself is never gevent-patched: Locust always runs in a subprocess
(``python -m paystab load …`` or a script), as it would for a user.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
DECLINES = {
    "4000000000009995": "declined.insufficient_funds",
    "4000000000000002": "declined.do_not_honor",
    "4000000000000069": "declined.expired_card",
    "4100000000000019": "declined.fraud",
}


@dataclass
class Seen:
    at: float
    key: str
    status: int
    method: str
    currency: str
    amount: int


@dataclass
class FakeGateway:
    """Answers POST /v1/payments like the gateway; behaviour is changed between requests."""

    latency_s: float = 0.0
    fail_first: int = 0  # every new key gets this many 503s first
    retry_after: str | None = None
    outage: tuple[float, float] | None = None  # (start, end) epoch: 503 for everything
    workers: int = 0  # > 0: only this many payments served at once (a capacity limit)
    service_s: float = 0.0  # time each served payment holds a worker
    seen: list[Seen] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    url: str = ""
    _slots: asyncio.Semaphore | None = None

    async def _pay(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        raw = await request.read()
        if not key:
            return web.json_response({"title": "missing key"}, status=400)
        body = json.loads(raw)
        self.attempts[key] = n = self.attempts.get(key, 0) + 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.workers:
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.workers)
            async with self._slots:
                await asyncio.sleep(self.service_s)
        now = time.time()
        status = 200
        if (self.outage and self.outage[0] <= now < self.outage[1]) or n <= self.fail_first:
            status = 503
        self.seen.append(Seen(now, key, status, body["method"], body["currency"], body["amount"]))
        if status == 503:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.json_response({"title": "unavailable"}, status=503, headers=headers)
        if key not in self.results:
            number = body.get("card", {}).get("number", "")
            code = DECLINES.get(number, "approved")
            pstatus = "approved" if code == "approved" else "declined"
            if body["method"] in ("konbini", "bank_transfer"):
                pstatus = code = "pending"
            self.results[key] = {"id": f"pay_{len(self.results)}", "status": pstatus,
                                 "code": code, "provider": "fake", "attempts": 1,
                                 "amount": body["amount"], "currency": body["currency"]}
        return web.json_response(self.results[key])

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    def idempotency_keys(self) -> set[str]:
        return {s.key for s in self.seen}


class ServerThread:
    """Runs a FakeGateway on 127.0.0.1:<free port> until ``stop()``."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/payments", self.gateway._pay)
        app.router.add_get("/healthz", self.gateway._health)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.gateway.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> FakeGateway:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake gateway did not start")
        return self.gateway

    def stop(self) -> None:
        async def _close() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def run_paystab(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``python -m paystab ARGS`` from the checkout, captured."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "paystab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_script(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh interpreter (Locust patches the process it runs in)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
