"""Helpers for the ``paystab watch`` tests: a stand-in stack, a webhook recorder, a watch
process. Not a test module.

* :class:`StandInStack` — a tiny "shop" whose client metrics follow OpenTelemetry's HTTP
  client conventions as a Prometheus exporter names them (``http_client_request_duration_
  seconds`` by ``server_address``, ``error_type``): none of paystab's names. A thread makes
  attempts against named providers at a bounded rate; ``fail_ratio`` and ``decline_ratio``
  per provider turn faults and customer declines on.
* :class:`Recorder` — a loopback HTTP listener that records every call (the flag service).
* :class:`WatchProcess` — ``paystab watch --config`` in a subprocess, its JSONL decision log
  read back.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from tests.conftest_alerting import wait_for

REPO = Path(__file__).resolve().parent.parent


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Recorder:
    """Records ``(method, path, body)`` of every request; answers 200 (or ``status``)."""

    def __init__(self, status: int = 200) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.status = status
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                recorder.calls.append((self.command, self.path, body))
                self.send_response(recorder.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _any

        self._server, self.url = _serve(Handler)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.calls]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class StandInStack:
    """See the module docstring. ``rate_per_s`` attempts per provider per second."""

    def __init__(self, providers: list[str], rate_per_s: float = 100.0,
                 max_duration_s: float = 300.0, seed: int = 7) -> None:
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "http_client_request_duration_seconds", "Duration of HTTP client requests.",
            ["server_address", "error_type"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.active = Gauge("http_client_active_requests", "Active HTTP client requests.",
                            ["server_address"], registry=self.registry)
        # the stack's own event-loop lag, one series per worker (set by tests)
        self.loop_lag = Gauge("stack_event_loop_lag_seconds", "Event-loop lateness.",
                              ["worker"], registry=self.registry)
        self.providers = providers
        self.fail_ratio = dict.fromkeys(providers, 0.0)
        self.decline_ratio = dict.fromkeys(providers, 0.0)
        self.rate_per_s = rate_per_s
        self.max_duration_s = max_duration_s
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server, self.url = _serve(Handler)
        self._thread = threading.Thread(target=self._traffic, daemon=True)
        self._thread.start()

    def _traffic(self) -> None:
        started = time.monotonic()
        tick = 0.05
        while not self._stop.wait(tick) and time.monotonic() - started < self.max_duration_s:
            for provider in self.providers:
                self.active.labels(provider).set(self._rng.randint(0, 3))
                for _ in range(round(self.rate_per_s * tick)):
                    roll = self._rng.random()
                    if roll < self.fail_ratio[provider]:
                        error = "500"
                    elif roll < self.fail_ratio[provider] + self.decline_ratio[provider]:
                        error = "402"  # a customer decline: the provider answered fine
                    else:
                        error = ""
                    latency = self._rng.lognormvariate(-3.0, 0.3)
                    self.duration.labels(provider, error).observe(latency)

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


class WatchProcess:
    """``paystab watch --config CONFIG`` as a child process (plain output)."""

    def __init__(self, config: Path, log: Path, extra: list[str] | None = None) -> None:
        self.config = config
        self.log = log
        self.log_lines_at_start = len(self.entries())
        self.out = open(config.with_suffix(".out"), "ab")  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "paystab", "watch", "--config", str(config), "--no-live",
             *(extra or [])], stdout=self.out, stderr=subprocess.STDOUT, cwd=REPO, env=env)

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line being written as we read
        return out

    def wait_entry(self, match: Callable[[dict[str, Any]], bool], timeout_s: float, what: str,
                   since: int | None = None) -> dict[str, Any]:
        """The newest log entry matching, among those this process wrote (the log may hold
        an earlier process's entries: those before ``since``, default where it started)."""
        first = self.log_lines_at_start if since is None else since

        def found() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                output = self.config.with_suffix(".out").read_text()[-2000:]
                raise AssertionError(f"watch exited {self.process.returncode}: {output}")
            return next((e for e in reversed(self.entries()[first:]) if match(e)), None)

        return wait_for(found, timeout_s, what)

    def started(self, timeout_s: float = 20.0) -> dict[str, Any]:
        return self.wait_entry(lambda e: e.get("event") == "started", timeout_s,
                               "watch to start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.out.close()
        return self.process.returncode


def get_json(url: str) -> Any:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return json.loads(response.read())
