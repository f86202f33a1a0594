"""``paystab provider NAME|all`` as a real process: ready file, traffic, SIGTERM, exit codes.

The command is wired into the ``paystab`` group here the way ``paystab/cli`` does it
(``register(cli)``), and run through ``paystab.cli.main`` so errors map to exit codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from paystab.stack.endpoints import StackEndpoints
from paystab.stack.providers import read_ledger
from tests.conftest_providers import DialectClient, card_charge, run

_BOOT = ("import sys; from paystab.cli import cli, main; "
         "from paystab.cli.provider_cmd import register; "
         "register(cli) if 'provider' not in cli.commands else None; "
         "sys.argv = ['paystab', 'provider', *sys.argv[1:]]; main()")


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", _BOOT, *args], stdout=out,
                                stderr=subprocess.STDOUT, cwd=log.parent,
                                env=dict(os.environ, PYTHONPATH=str(Path.cwd())))


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, log: Path) -> StackEndpoints:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ready.exists():
            return StackEndpoints.read(ready)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"provider never became ready: {log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=15)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_all_providers_run_until_sigterm(tmp_path: Path) -> None:
    ready, log = tmp_path / "ready.json", tmp_path / "providers.log"
    proc = _start(["all", "--ready-file", str(ready), "--data-dir", str(tmp_path / "data"),
                   "--seed", "3"], log)
    try:
        endpoints = _wait_ready(proc, ready, log)
        assert len(endpoints.providers) == 10
        assert endpoints.providers_pid == proc.pid
        assert endpoints.provider_admin_url and endpoints.provider_metrics_url
        alpha = endpoints.providers["card-alpha"]

        async def traffic() -> str:
            async with aiohttp.ClientSession() as session:
                answer = await DialectClient(session, alpha).charge(card_charge("cli-1"))
                async with session.get(f"{endpoints.provider_admin_url}/healthz") as response:
                    assert (await response.json())["providers"] == 10
                return answer.code

        assert run(traffic()) == "approved"
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()
    assert [r.idempotency_key for r in read_ledger(alpha.ledger or "")] == ["cli-1"]
    output = log.read_text()
    assert "card-alpha" in output and "providers stopped" in output


def test_one_provider_on_a_given_port(tmp_path: Path) -> None:
    ready, log = tmp_path / "ready.json", tmp_path / "one.log"
    port = _free_port()
    proc = _start(["wallet-kakao", "--port", str(port), "--ready-file", str(ready),
                   "--data-dir", str(tmp_path)], log)
    try:
        endpoints = _wait_ready(proc, ready, log)
        assert list(endpoints.providers) == ["wallet-kakao"]
        assert endpoints.providers["wallet-kakao"].url == f"http://127.0.0.1:{port}"
        assert json.loads(ready.read_text())["gateway_url"] == ""
    finally:
        assert _stop(proc) == 0


def test_bad_invocations_exit_2(tmp_path: Path) -> None:
    for args, message in ((["nosuch"], "unknown provider 'nosuch'"),
                          (["all", "--host", "0.0.0.0"], "non-loopback")):
        log = tmp_path / "bad.log"
        proc = _start([*args, "--data-dir", str(tmp_path)], log)
        assert proc.wait(timeout=20) == 2
        assert message in log.read_text()


def test_every_answered_charge_survives_sigkill(tmp_path: Path) -> None:
    """Group commit runs before any answer leaves: kill -9 mid-traffic loses no answered
    capture (RPO = 0 on the provider side)."""
    ready, log = tmp_path / "ready.json", tmp_path / "kill.log"
    proc = _start(["card-bravo", "--ready-file", str(ready), "--data-dir", str(tmp_path)], log)
    endpoint = _wait_ready(proc, ready, log).providers["card-bravo"]

    async def traffic() -> set[str]:
        answered: set[str] = set()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:
            client = DialectClient(session, endpoint)

            async def one(i: int) -> None:
                try:
                    answer = await client.charge(card_charge(f"k-{i}"))
                except (aiohttp.ClientError, TimeoutError):
                    return
                if answer.code == "approved":
                    answered.add(f"k-{i}")
                if len(answered) == 100:
                    proc.kill()

            await asyncio.gather(*(one(i) for i in range(400)))
        return answered

    try:
        answered = run(traffic())
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert len(answered) >= 100
    captured = {r.idempotency_key for r in read_ledger(endpoint.ledger or "")
                if r.status == "captured"}
    assert answered <= captured
