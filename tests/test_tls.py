"""HTTPS for the simulators: the local CA, ``paystab provider --tls`` and ``paystab up --tls``.

The CA is made once per data directory and reused; the simulators' certificate verifies
against it for 127.0.0.1, ::1 and localhost and against nothing else; the ready file names
it as ``ca_file``; the reference gateway trusts it and pays through HTTPS providers.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from paystab.stack.endpoints import StackEndpoints
from paystab.stack.providers import read_ledger
from paystab.stack.reconcile import reconcile_stack
from paystab.stack.tls import client_context, ensure_tls, server_context
from tests.conftest import RunningStack
from tests.payments import payment_body


def test_local_ca_is_made_once_and_verifies_loopback(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    ca_pem = files.ca_file.read_bytes()
    assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((files.ca_file.parent / "ca-key.pem").stat().st_mode) == 0o600
    assert ensure_tls(tmp_path).ca_file.read_bytes() == ca_pem  # reused, not remade

    async def handshake(server_name: str, trust: ssl.SSLContext) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"ok")
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context(files))
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust,
                                                           server_hostname=server_name)
            assert await reader.read() == b"ok"
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    trusted = client_context(str(files.ca_file))
    asyncio.run(handshake("localhost", trusted))
    asyncio.run(handshake("127.0.0.1", trusted))
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(handshake("psp.example.com", trusted))  # not a name it was made for
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(handshake("localhost", ssl.create_default_context()))  # unknown CA


def test_provider_cli_serves_https_and_names_the_ca(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    log = (tmp_path / "provider.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paystab", "provider", "card-alpha", "--tls", "--ready-file",
         str(ready), "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "provider.log").read_text()
            time.sleep(0.05)
        endpoint = StackEndpoints.read(ready).providers["card-alpha"]
        assert endpoint.url.startswith("https://127.0.0.1:")
        assert endpoint.ca_file and Path(endpoint.ca_file).is_file()
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=client_context(endpoint.ca_file)))
        request = urllib.request.Request(f"{endpoint.url}/v1/nothing-here")
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(request, timeout=5)
        assert answer.value.code in (401, 404)  # an answer over verified TLS
        untrusted = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.URLError) as refused:
            untrusted.open(request, timeout=5)
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


@pytest.mark.slow
def test_up_tls_gateway_pays_through_https_providers(tmp_path: Path) -> None:
    stack = RunningStack(tmp_path, ["--tls", "--seed", "4"])
    try:
        endpoints = stack.endpoints
        assert all(p.url.startswith("https://") and p.ca_file
                   for p in endpoints.providers.values())
        rng = random.Random(8)

        async def pay() -> list[dict[str, object]]:
            async with aiohttp.ClientSession() as session:
                answers = []
                for i in range(40):
                    body = payment_body(rng, "card")
                    async with session.post(f"{endpoints.gateway_url}/v1/payments", json=body,
                                            headers={"Idempotency-Key": f"tls-{i}"}) as r:
                        answers.append(await r.json())
                return answers

        answers = asyncio.run(pay())
        assert {a["status"] for a in answers} <= {"approved", "declined"}, json.dumps(answers)
        assert sum(a["status"] == "approved" for a in answers) >= 10
        assert any(a["provider"] == "card-alpha" for a in answers)
        captured = sum(len(read_ledger(p.ledger)) for p in endpoints.providers.values()
                       if p.ledger)
        assert captured >= 40
        assert reconcile_stack(StackEndpoints.read(stack.ready_file)).clean
    finally:
        stack.stop()
