"""Local worker processes for ``--processes N``: stock ``locust --worker`` on our locustfile.

The master runs in paystab's own process (it holds the records); each worker is
``python -m locust -f paystab/loadtest/locustfile.py --worker`` connected over loopback —
exactly what a user starts by hand on other machines in master/worker mode. Workers log to
a temporary file that is quoted when one dies early. Only processes started here are ever
signalled, by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import gevent

from paystab.children import child_env, forget, python_command, spawn
from paystab.exceptions import EnvironmentProblem

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding "paystab/"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class WorkerProcesses:
    def __init__(self, count: int, master_port: int, master_host: str = "127.0.0.1") -> None:
        self.count = count
        self.master_port = master_port
        self.master_host = master_host
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def start(self) -> None:
        # -P and child_env: the workers import this paystab, never a folder in the cwd;
        # spawn: they die with the master's process, also on SIGKILL, and are recorded.
        env = child_env()
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        for index in range(self.count):
            log = tempfile.TemporaryFile(prefix=f"paystab-worker{index}-")  # noqa: SIM115 - closed in stop()
            self._logs.append(log)
            self.procs.append(spawn(
                python_command("-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                               "--master-host", self.master_host,
                               "--master-port", str(self.master_port), "--loglevel", "WARNING"),
                what=f"load worker {index}",
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=str(PACKAGE_ROOT),
            ))

    def died(self) -> subprocess.Popen[bytes] | None:
        for proc in self.procs:
            if proc.poll() is not None:
                return proc
        return None

    def log_tail(self, index: int, chars: int = 2000) -> str:
        log = self._logs[index]
        log.seek(0)
        return log.read().decode(errors="replace")[-chars:]

    def wait_ready(self, runner: Any, timeout_s: float = 60.0) -> None:
        """Poll until every worker has connected to the master runner."""
        deadline = time.monotonic() + timeout_s
        while len(runner.clients.ready) < self.count:
            dead = self.died()
            if dead is not None:
                index = self.procs.index(dead)
                raise EnvironmentProblem(
                    f"load worker {index} exited with {dead.returncode} before connecting:\n"
                    + self.log_tail(index),
                    hint="run `python -m locust --version`; is the paystab package importable?",
                )
            if time.monotonic() > deadline:
                raise EnvironmentProblem(
                    f"only {len(runner.clients.ready)} of {self.count} load workers connected "
                    f"within {timeout_s:g} s", hint="the machine may be overloaded")
            gevent.sleep(0.05)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Wait for the workers to quit (the master told them to), then make sure."""
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            while proc.poll() is None and time.monotonic() < deadline:
                gevent.sleep(0.05)
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            forget(proc)
        for log in self._logs:
            log.close()
