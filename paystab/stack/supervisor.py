"""Starting and keeping the reference stack: what ``paystab up`` and drills use.

The stack is two child processes: all provider simulators in one (``paystab provider
all``), the gateway in another (``paystab gateway``). Separate processes give the drill
real things to break: the gateway can be SIGKILLed and the supervisor starts it again on
the same port from the same ledger (like a process manager would), which is how the
``gateway-crash`` runbook checks RPO = 0. Synchronous code on purpose: it runs both in
plain processes and in the drill's gevent-patched one.

Both children are started through :func:`paystab.children.spawn`: they die with the
process that supervises them, even when it is SIGKILLed, are recorded for ``paystab chaos
clear``, and import the running paystab, never a ``paystab/`` folder in the current
directory. A stack that fails to start removes the temporary data directory it made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from paystab.children import child_env, forget, python_command, spawn
from paystab.exceptions import EnvironmentProblem
from paystab.stack.endpoints import StackEndpoints


@dataclass
class StackOptions:
    port: int = 0
    host: str = "127.0.0.1"
    config: Path | None = None
    data_dir: Path | None = None
    telemetry: bool = True
    token: str | None = None
    seed: int | None = None
    trace_jsonl: Path | None = None
    restart_gateway: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    tls: bool = False  # providers serve HTTPS with a local CA (stack/tls.py)


PROVIDERS_TIMEOUT_S = 45.0  # the simulators' start, from spawn to their ready file


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], log: Path, what: str,
                   timeout_s: float = 45.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            try:
                data = json.loads(path.read_text())
                if isinstance(data, dict):
                    return data
            except ValueError:
                pass  # being written
        if proc.poll() is not None:
            code = proc.returncode
            raise EnvironmentProblem(f"{what} exited with code {code} before it was ready:\n"
                                     + _log_tail(log))
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=5)
    # The log goes in the message: a failed start removes a temporary data directory.
    raise EnvironmentProblem(f"{what} did not become ready in {timeout_s:.0f}s; its log ends "
                             f"with:\n{_log_tail(log)}")


class RunningStack:
    """Handles to the children, the endpoints, and the gateway watchdog."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.temporary_data_dir = options.data_dir is None
        self.data_dir = Path(options.data_dir or tempfile.mkdtemp(prefix="paystab-stack-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.providers_proc: subprocess.Popen[bytes] | None = None
        self.gateway_proc: subprocess.Popen[bytes] | None = None
        self.gateway_port = options.port
        self.gateway_restarts = 0
        self.endpoints: StackEndpoints | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._watchdog: threading.Thread | None = None
        self.ready_file: Path | None = None

    # -- start ------------------------------------------------------------------------
    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.data_dir / log_name).open("ab")
        env = child_env(dict(os.environ, **self.options.extra_env))
        if self.options.token:
            # In the environment, not argv: any local user can read /proc/PID/cmdline.
            env["PAYSTAB_TOKEN"] = env["PAYSTAB_ADMIN_TOKEN"] = self.options.token
        try:
            return spawn(python_command("-m", "paystab", *args), what=f"paystab {args[0]}",
                         stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        finally:
            log.close()

    def start(self) -> StackEndpoints:
        """Start both children and the watchdog; on failure leave nothing running.

        A failed start stops what it started and, when the data directory is a temporary
        one made here, removes it (the error carries the log's tail).
        """
        try:
            return self._start()
        except BaseException:
            self.stop()
            self.remove_temporary_data()
            raise

    def remove_temporary_data(self) -> None:
        """Delete the data directory if it is a temporary one this stack made."""
        if self.temporary_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _start(self) -> StackEndpoints:
        o = self.options
        prov_ready = self.data_dir / "providers.json"
        prov_ready.unlink(missing_ok=True)
        args = ["provider", "all", "--port", "0", "--admin-port", "0", "--host", o.host,
                "--data-dir", str(self.data_dir / "providers"), "--ready-file", str(prov_ready)]
        if o.config:
            args += ["--config", str(o.config)]
        if o.seed is not None:
            args += ["--seed", str(o.seed)]
        if o.tls:
            args.append("--tls")
        self.providers_proc = self._spawn(args, "providers.log")
        # The gateway starts beside the simulators: its imports and set-up overlap theirs,
        # and it reads their ready file once it appears (the file is written whole).
        self._spawn_gateway(wait_providers_s=PROVIDERS_TIMEOUT_S)
        _wait_for_file(prov_ready, self.providers_proc, self.data_dir / "providers.log",
                       "the provider simulators", PROVIDERS_TIMEOUT_S)
        self._await_gateway()
        assert self.endpoints is not None
        self._watchdog = threading.Thread(target=self._watch, name="paystab-watchdog", daemon=True)
        self._watchdog.start()
        return self.endpoints

    def _start_gateway(self) -> None:
        """(Re)start the gateway in front of running simulators and wait until it answers."""
        self._spawn_gateway()
        self._await_gateway()

    def _spawn_gateway(self, wait_providers_s: float = 0.0) -> None:
        o = self.options
        gw_ready = self.data_dir / "gateway.json"
        gw_ready.unlink(missing_ok=True)
        args = ["gateway", "--host", o.host, "--port", str(self.gateway_port),
                "--providers-file", str(self.data_dir / "providers.json"),
                "--ledger", str(self.data_dir / "gateway.db"), "--ready-file", str(gw_ready)]
        if o.config:
            args += ["--config", str(o.config)]
        if not o.telemetry:
            args.append("--no-telemetry")
        if o.seed is not None:
            args += ["--seed", str(o.seed)]
        if o.trace_jsonl:
            args += ["--trace-jsonl", str(o.trace_jsonl)]
        if wait_providers_s:
            args += ["--wait-providers-file", f"{wait_providers_s:g}"]
        self.gateway_proc = self._spawn(args, "gateway.log")

    def _await_gateway(self) -> None:
        assert self.gateway_proc is not None
        gw_ready = self.data_dir / "gateway.json"
        info = _wait_for_file(gw_ready, self.gateway_proc, self.data_dir / "gateway.log", "the gateway")
        self.gateway_port = int(str(info["port"]))
        self._write_endpoints()

    def _write_endpoints(self) -> None:
        from paystab.stack.gateway_main import read_providers_file

        prov_file = self.data_dir / "providers.json"
        raw = json.loads(prov_file.read_text())
        url = f"http://{self.options.host}:{self.gateway_port}"
        assert self.gateway_proc is not None and self.providers_proc is not None
        previous = self.endpoints
        self.endpoints = StackEndpoints(
            gateway_url=url,
            providers=read_providers_file(prov_file),
            provider_admin_url=str(raw.get("admin_url") or raw.get("provider_admin_url") or "") or None,
            gateway_ledger=str(self.data_dir / "gateway.db"),
            gateway_pid=self.gateway_proc.pid,
            providers_pid=self.providers_proc.pid,
            metrics_url=url + "/metrics",
            provider_metrics_url=(str(raw.get("admin_url") or raw.get("provider_admin_url") or "")
                                  .rstrip("/") + "/metrics") or None,
            admin_token=self.options.token,
            data_dir=str(self.data_dir),
            prometheus_url=previous.prometheus_url if previous else None,
            alertmanager_url=previous.alertmanager_url if previous else None,
            extra=dict(previous.extra) if previous else {},
        )
        if self.ready_file:
            self.endpoints.write(self.ready_file)

    def publish(self, ready_file: Path) -> None:
        """Write (and keep rewriting on restarts) the ready file for other tools."""
        self.ready_file = ready_file
        assert self.endpoints is not None
        self.endpoints.write(ready_file)

    # -- supervision --------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stopping:
            time.sleep(0.2)
            with self._lock:
                if self._stopping or self.gateway_proc is None:
                    continue
                if self.gateway_proc.poll() is not None and self.options.restart_gateway:
                    forget(self.gateway_proc)
                    self.gateway_restarts += 1
                    try:
                        self._start_gateway()
                    except EnvironmentProblem:
                        time.sleep(0.5)  # port not released yet; the next round tries again

    def alive(self) -> bool:
        return bool(self.providers_proc and self.providers_proc.poll() is None)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        for proc in (self.gateway_proc, self.providers_proc):
            if proc is not None and proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGCONT)  # a SIGSTOPped child cannot exit
                    proc.terminate()
                except ProcessLookupError:
                    pass
        for proc in (self.gateway_proc, self.providers_proc):
            if proc is not None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
                forget(proc)
