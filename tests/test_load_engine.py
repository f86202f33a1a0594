"""The event-driven checkout engine: HTTP framing, Locust statistics in batches, and real runs
against servers that misbehave the ways real ones do (close kept-alive connections, chunk
their answers, send garbage), plus the https fallback through geventhttpclient."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paystab.loadtest.http1 import MalformedResponse, ResponseReader
from paystab.loadtest.target import check_reachable
from tests.conftest import require
from tests.conftest_load import run_script

OK_BODY = b'{"id":"pay_1","status":"approved","code":"approved","provider":"x","attempts":1}'


# -- framing ------------------------------------------------------------------------------
def test_a_response_split_anywhere_is_read_whole_and_the_rest_kept() -> None:
    raw = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
           + str(len(OK_BODY)).encode() + b"\r\n\r\n" + OK_BODY)
    for cut in range(1, len(raw)):
        reader = ResponseReader()
        assert reader.feed(raw[:cut]) is None
        response = reader.feed(raw[cut:] + raw[:5])  # the next response begins
        assert response is not None and response.status == 200 and response.body == OK_BODY
        assert response.keep_alive and reader.started


def test_chunked_interim_retry_after_and_close_framed_answers() -> None:
    reader = ResponseReader()
    response = reader.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Unavailable\r\nRetry-After: 2\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\nX-T: 1\r\n\r\n")
    assert response is not None
    assert (response.status, response.body, response.retry_after) == (503, b"abcdef", "2")
    closing = ResponseReader()
    assert closing.feed(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\npart") is None
    assert closing.feed(b" two") is None
    final = closing.close()
    assert final is not None and final.body == b"part two" and not final.keep_alive
    assert ResponseReader().feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n") \
        .keep_alive is False  # type: ignore[union-attr]


@pytest.mark.parametrize("garbage", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_garbage_is_malformed(garbage: bytes) -> None:
    with pytest.raises(MalformedResponse):
        ResponseReader().feed(garbage)


# -- Locust's statistics --------------------------------------------------------------------
def test_batched_statistics_equal_locusts_own_per_request_accounting() -> None:
    code = r"""
import random
from unittest import mock
import locust.stats
from locust.stats import RequestStats
from paystab.loadtest.locust_stats import StatsBatch

rng = random.Random(5)
events = []
t = 1_700_000_000.0
for i in range(5000):
    t += rng.expovariate(2000.0)
    events.append((rng.choice(["POST /v1/payments [card]", "POST /v1/payments [wallet]"]),
                   rng.lognormvariate(3, 1.2), rng.randrange(50, 300), t))

direct = RequestStats(use_response_times_cache=True)
for name, ms, length, when in events:
    with mock.patch.object(locust.stats.time, "time", return_value=when):
        direct.log_request("POST", name, ms, length)

batched = RequestStats(use_response_times_cache=True)
batch = StatsBatch(batched)
for i, (name, ms, length, when) in enumerate(events):
    batch.add(name, ms, length, when)
    if i % 700 == 699:
        batch.flush()
batch.flush()

def view(stats):
    out = {}
    for key, entry in [(("total", ""), stats.total), *sorted(stats.entries.items())]:
        s = entry.serialize()
        s["total_response_time"] = round(s["total_response_time"], 6)
        if key == ("total", ""):
            s.pop("start_time")  # when each RequestStats was made, not what it counted
        # (the total's cache also holds the second its RequestStats was made: not counted here)
        cache = {k: (dict(v.response_times), v.num_requests)
                 for k, v in (entry.response_times_cache or {}).items() if k <= int(t)}
        out[str(key)] = (s, cache)
    return out

assert view(direct) == view(batched)
print("OK", direct.total.num_requests)
"""
    proc = run_script(code)
    assert proc.returncode == 0 and "OK 5000" in proc.stdout, proc.stderr[-3000:]


# -- runs against misbehaving servers --------------------------------------------------------
class RawServer:
    """An asyncio HTTP/1.1 server on 127.0.0.1 whose answers a test scripts."""

    def __init__(self, mode: str, tls: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.tls = tls
        self.requests = 0
        self.connections = 0
        self.keys: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _answer(self, status: int, body: bytes, extra: str = "") -> bytes:
        if self.mode == "chunked":
            half = len(body) // 2
            chunks = f"{half:x}\r\n".encode() + body[:half] + f"\r\n{len(body) - half:x}\r\n".encode() \
                + body[half:] + b"\r\n0\r\n\r\n"
            return f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode() + chunks
        return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not lines[0].startswith("POST"):  # the harness's reachability check
                    writer.write(self._answer(200, b"{}"))
                    await writer.drain()
                    continue
                key = headers.get("idempotency-key", "")
                self.requests += 1
                self.keys.append(key)
                first = self.keys.count(key) == 1
                if self.mode == "garbage-first" and first:
                    writer.write(b"HELLO NOT HTTP\r\n\r\n")
                    await writer.drain()
                    writer.close()
                    return
                answer = json.dumps({"id": f"pay_{len(set(self.keys))}", "status": "approved",
                                     "code": "approved", "method": json.loads(body)["method"]}).encode()
                writer.write(self._answer(200, answer))
                await writer.drain()
                if self.mode == "close-after-answer":
                    # keep-alive on the wire, but the server drops the connection right
                    # after: the client's next request on it meets a closed socket
                    await asyncio.sleep(0.005)
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.tls))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> RawServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _run(url: str, rate: int = 50, seconds: int = 2, users: int = 16) -> dict[str, object]:
    code = f"""
import json
from paystab.loadtest.plan import RetryPolicy
from paystab.loadtest.runner import run_load
policy = RetryPolicy(max_attempts=3, attempt_timeout_s=2, backoff_s=0.02, deadline_s=5)
result = run_load({url!r}, "steady", {rate}, {seconds}, users={users}, retry=policy, window_s=1)
s = result.summary
print(json.dumps({{"requests": s.requests, "failed": s.failed, "attempts": s.attempts, "dropped": s.dropped,
                  "statuses": sorted({{r.status for r in result.records}}),
                  "max_attempts": max(r.attempts for r in result.records)}}))
"""
    proc = run_script(code)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_reachability_check_asks_a_self_signed_https_target(
        tls_context: ssl.SSLContext) -> None:
    # staging stacks use self-signed certificates: "does it answer" must not fail on that
    with RawServer("plain", tls=tls_context) as server:
        check_reachable(f"https://127.0.0.1:{server.port}", timeout_s=5, patience_s=0)
        assert server.connections == 1 and server.requests == 0  # one GET, no payment


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["chunked", "close-after-answer"])
def test_every_checkout_is_answered_once_through_chunks_and_dropped_keep_alives(mode: str) -> None:
    with RawServer(mode) as server:
        out = _run(f"http://127.0.0.1:{server.port}")
    # every arrival is answered once or counted dropped (a starved host may drop a few)
    sent = out["requests"]
    assert sent + out["dropped"] == 100 and sent >= 90 and out["failed"] == 0, out
    # a kept-alive connection the server had closed is resent transparently, not retried
    assert out["attempts"] == sent and out["max_attempts"] == 1, out
    assert server.requests == sent
    if mode == "close-after-answer":
        assert server.connections >= 0.9 * sent


@pytest.mark.slow
def test_garbage_is_a_failed_attempt_retried_with_the_same_key() -> None:
    with RawServer("garbage-first") as server:
        out = _run(f"http://127.0.0.1:{server.port}")
    sent = out["requests"]
    assert sent + out["dropped"] == 100 and sent >= 90, out  # a starved host may drop a few
    assert out["failed"] == 0 and out["attempts"] == 2 * sent, out
    assert len(set(server.keys)) == sent and server.requests == 2 * sent


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ssl.SSLContext]:
    require("openssl", shutil.which("openssl") is not None, "apt-get install openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(Path(cert), Path(key))
    yield context


@pytest.mark.slow
def test_https_targets_use_the_per_user_transport(tls_context: ssl.SSLContext) -> None:
    with RawServer("plain", tls=tls_context) as server:
        out = _run(f"https://127.0.0.1:{server.port}", rate=20)
    sent = out["requests"]
    assert sent + out["dropped"] == 40 and sent >= 36, out  # a starved host may drop a few
    assert out["failed"] == 0 and out["attempts"] == sent, out
    assert server.requests == sent
