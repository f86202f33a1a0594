"""How ``paystab up`` starts its two children: the gateway beside the simulators.

The gateway is spawned at once with ``--wait-providers-file`` and reads the simulators'
ready file when it appears; a simulator that fails to start takes the gateway with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from paystab.children import spawn
from paystab.exceptions import EnvironmentProblem
from paystab.stack.endpoints import StackEndpoints
from paystab.stack.gateway_main import wait_for_providers_file
from paystab.stack.supervisor import RunningStack, StackOptions

REPO = Path(__file__).resolve().parents[1]


def test_waiting_for_the_providers_file_returns_when_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    writer = threading.Timer(0.3, lambda: path.write_text("{}"))
    writer.start()
    try:
        wait_for_providers_file(path, 30)
    finally:
        writer.cancel()
    assert path.exists()


def test_waiting_for_the_providers_file_gives_up_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "never.json"
    with pytest.raises(EnvironmentProblem) as raised:
        wait_for_providers_file(path, 0.1)
    assert str(path) in raised.value.message and "did not appear within 0.1 s" in raised.value.message
    wait_for_providers_file(path, 0)  # no wait asked: the read that follows names the file


def test_a_gateway_started_first_serves_once_the_simulators_are_ready(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    providers_file, ready = tmp_path / "providers.json", tmp_path / "gateway.json"
    gateway = subprocess.Popen(
        [sys.executable, "-m", "paystab", "gateway", "--port", "0", "--providers-file",
         str(providers_file), "--wait-providers-file", "60", "--ledger", str(tmp_path / "gw.db"),
         "--ready-file", str(ready), "--no-telemetry"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    simulators: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.0)  # the stimulus: the simulators come a second after the gateway
        assert gateway.poll() is None and not ready.exists()  # waiting, not failed
        simulators = subprocess.Popen(
            [sys.executable, "-m", "paystab", "provider", "all", "--port", "0",
             "--data-dir", str(tmp_path / "providers"), "--ready-file", str(providers_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert gateway.poll() is None, gateway.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.05)
        port = json.loads(ready.read_text())["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            assert answer.status == 200
        known = set(StackEndpoints.read(providers_file).providers)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert any(f'provider="{name}"' in metrics for name in known)
    finally:
        for proc in (gateway, simulators):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)


def test_simulators_that_fail_to_start_take_the_gateway_with_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_spawn = RunningStack._spawn

    def failing_simulators(self: RunningStack, args: list[str], log_name: str
                           ) -> subprocess.Popen[bytes]:
        if args[0] != "provider":
            return real_spawn(self, args, log_name)
        with (self.data_dir / log_name).open("ab") as log:
            return spawn([sys.executable, "-c", "import sys; print('port taken'); sys.exit(3)"],
                         what="simulators", stdout=log, stderr=subprocess.STDOUT)

    monkeypatch.setattr(RunningStack, "_spawn", failing_simulators)
    stack = RunningStack(StackOptions())
    with pytest.raises(EnvironmentProblem) as raised:
        stack.start()
    assert "the provider simulators exited with code 3" in raised.value.message
    assert "port taken" in raised.value.message  # the log's tail comes with it
    assert stack.gateway_proc is not None and stack.gateway_proc.poll() is not None
    assert not stack.data_dir.exists()  # a temporary data directory is removed
