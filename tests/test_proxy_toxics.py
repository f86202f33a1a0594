"""Each toxic's effect on real TCP traffic through the proxy, plus down, seed, toxicity.

Real sockets on 127.0.0.1: a client, the proxy (in a thread) and a threaded echo server
(or an HTTP server). Times are measured, with generous upper bounds for a busy 2-core box.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from paystab.chaos.proxy_server import ProxyServer, fresh_rng
from tests.conftest_proxy import (  # noqa: F401 - the *_fixture names are fixtures
    Api,
    EchoServer,
    api_fixture,
    connect,
    echo_fixture,
    proxy_server_fixture,
    recv_exactly,
    recv_until_eof,
    wait_until,
)


def round_trip_s(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - started


def test_pass_through_is_transparent(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    payload = random.Random(1).randbytes(1_000_000)
    with connect(proxy["listen"]) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        assert recv_exactly(sock, len(payload)) == payload
        sender.join()
        assert round_trip_s(sock) < 0.05


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_delays_each_direction(api: Api, echo: EchoServer, stream: str) -> None:
    proxy = api.create("svc", echo.address)
    with connect(proxy["listen"]) as sock:
        assert round_trip_s(sock) < 0.05
        api.toxic("svc", type="latency", stream=stream, attributes={"latency": 120})
        assert 0.115 <= round_trip_s(sock) < 0.5  # applies to the live connection
    with connect(proxy["listen"]) as sock:
        assert 0.115 <= round_trip_s(sock) < 0.5  # and to new ones


def test_latency_jitter_varies_within_bounds(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="latency", attributes={"latency": 60, "jitter": 40})
    with connect(proxy["listen"]) as sock:
        delays = [round_trip_s(sock) for _ in range(8)]
    assert all(0.018 <= d < 0.3 for d in delays), delays
    assert max(delays) - min(delays) > 0.01, delays


def test_latency_on_http_requests() -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        with ProxyServer(port=0) as url:
            api = Api(url)
            proxy = api.create("web", f"127.0.0.1:{http.server_address[1]}")
            target = f"http://{proxy['listen']}/"
            assert requests.get(target, timeout=5).text == "hello"
            api.toxic("web", type="latency", attributes={"latency": 100})
            started = time.monotonic()
            assert requests.get(target, timeout=5).text == "hello"
            assert 0.1 <= time.monotonic() - started < 0.6
    finally:
        http.shutdown()
        http.server_close()


def test_bandwidth_limits_the_rate(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="bandwidth", attributes={"rate": 200})  # 200 KB/s
    payload = bytes(60_000)  # 0.3 s at 200 KB/s
    with connect(proxy["listen"]) as sock:
        started = time.monotonic()
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
        elapsed = time.monotonic() - started
    assert 0.27 <= elapsed < 1.0, elapsed


def test_slow_close_delays_the_close(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    with connect(proxy["listen"]) as sock:  # baseline: the echo server closes at once
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert recv_until_eof(sock) == b"bye"
        assert time.monotonic() - started < 0.1
    api.toxic("svc", type="slow_close", attributes={"delay": 300})
    with connect(proxy["listen"]) as sock:
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert recv_exactly(sock, 3) == b"bye"  # data is not delayed
        assert sock.recv(10) == b""
        assert 0.29 <= time.monotonic() - started < 1.0


def test_timeout_drops_data_then_closes(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="timeout", attributes={"timeout": 300})
    with connect(proxy["listen"]) as sock:
        started = time.monotonic()
        sock.sendall(b"hello")
        assert recv_until_eof(sock) == b""  # nothing came back, then the close
        assert 0.29 <= time.monotonic() - started < 1.0


def test_timeout_zero_holds_until_removed(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="timeout", stream="upstream", attributes={"timeout": 0})
    with connect(proxy["listen"], timeout_s=0.5) as sock:
        sock.sendall(b"lost")
        with pytest.raises(TimeoutError):
            sock.recv(10)  # held open, data dropped
        sock.settimeout(5)
        assert api.call("DELETE", "/proxies/svc/toxics/timeout_upstream").status_code == 204
        assert sock.recv(10) == b""  # like Toxiproxy: the corrupted stream is closed
    with connect(proxy["listen"]) as sock:
        assert round_trip_s(sock) < 0.05


def test_reset_peer_resets_the_connection(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="reset_peer", attributes={"timeout": 150})
    with connect(proxy["listen"]) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        assert 0.14 <= time.monotonic() - started < 1.0


def test_slicer_slices_the_stream(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="slicer",
              attributes={"average_size": 10, "size_variation": 3, "delay": 10_000})
    payload = bytes(range(100))
    with connect(proxy["listen"]) as sock:
        sock.sendall(payload)
        pieces: list[bytes] = []
        while sum(map(len, pieces)) < len(payload):
            pieces.append(sock.recv(1000))
    assert b"".join(pieces) == payload
    assert len(pieces) >= 6, [len(p) for p in pieces]  # ~10 pieces, 10 ms apart
    assert max(map(len, pieces)) <= 26  # at most two slices merged by the client's reads


def test_limit_data_closes_after_n_bytes(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="limit_data", attributes={"bytes": 10})
    with connect(proxy["listen"]) as sock:
        sock.sendall(b"0123456789abcdefghij")
        assert recv_until_eof(sock) == b"0123456789"


def test_disable_closes_live_connections_and_listener(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    clients = [connect(proxy["listen"]) for _ in range(3)]
    for sock in clients:
        assert round_trip_s(sock) < 0.05
    assert api.call("PATCH", "/proxies/svc", {"enabled": False}).json()["enabled"] is False
    for sock in clients:
        try:
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass  # closed with unread data: a reset is a close too
        sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy["listen"])
    api.call("PATCH", "/proxies/svc", {"enabled": True})
    with connect(proxy["listen"]) as sock:
        assert round_trip_s(sock) < 0.05


def _affected(listen: str, count: int) -> list[bool]:
    """Which of ``count`` fresh connections a limit_data(1 byte) toxic cut short."""
    seen = []
    for _ in range(count):
        with connect(listen) as sock:
            sock.sendall(b"hello")
            seen.append(recv_until_eof_or_n(sock, 5) == b"h")
    return seen


def recv_until_eof_or_n(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (piece := sock.recv(size)):
        data += piece
    return data


def test_toxicity_is_per_connection_and_reproducible_with_a_seed(echo: EchoServer) -> None:
    count = 16
    patterns = []
    for seed in (7, 7, 8):
        with ProxyServer(port=0, seed=seed) as url:
            api = Api(url)
            proxy = api.create("svc", echo.address)
            api.toxic("svc", type="limit_data", toxicity=0.5, attributes={"bytes": 1})
            patterns.append(_affected(proxy["listen"], count))
    # the documented derivation: link generator per (seed, proxy, connection, direction)
    expected = [[fresh_rng(seed, "svc", i, "downstream").random() < 0.5 for i in range(count)]
                for seed in (7, 8)]
    assert patterns[0] == patterns[1] == expected[0]
    assert patterns[2] == expected[1]
    assert 0 < sum(patterns[0]) < count  # some connections spared, some not


def test_jitter_and_slices_follow_the_seed() -> None:
    # The same link generator yields the same toxicity draw and child seed, so a seeded
    # proxy jitters and slices identically run after run.
    first = fresh_rng(3, "p", 0, "downstream")
    again = fresh_rng(3, "p", 0, "downstream")
    assert [first.random() for _ in range(5)] == [again.random() for _ in range(5)]
    assert fresh_rng(3, "p", 1, "downstream").random() != fresh_rng(3, "p", 0, "downstream").random()
    assert fresh_rng(None, "p", 0, "upstream").random() != fresh_rng(None, "p", 0, "upstream").random()


@pytest.mark.slow
def test_toxic_changes_on_a_busy_connection_lose_and_reorder_nothing(
    api: Api, echo: EchoServer
) -> None:
    proxy = api.create("svc", echo.address)
    payload = random.Random(2).randbytes(600_000)
    received = bytearray()
    with connect(proxy["listen"], timeout_s=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)

        def send() -> None:
            for offset in range(0, len(payload), 3000):
                sock.sendall(payload[offset:offset + 3000])
                time.sleep(0.001)

        def receive() -> None:  # a slow reader, so data waits inside the proxy
            while len(received) < len(payload):
                piece = sock.recv(8192)
                if not piece:
                    return
                received.extend(piece)
                time.sleep(0.004)

        threads = [threading.Thread(target=send), threading.Thread(target=receive)]
        for thread in threads:
            thread.start()
        toxics = [("latency", "downstream", {"latency": 5, "jitter": 3}),
                  ("slicer", "upstream", {"average_size": 700, "size_variation": 300}),
                  ("bandwidth", "downstream", {"rate": 900}),
                  ("slow_close", "upstream", {"delay": 10})]
        rounds = 0
        deadline = time.monotonic() + 15
        while (rounds < 3 or threads[1].is_alive()) and time.monotonic() < deadline:
            for toxic_type, stream, attributes in toxics:
                api.toxic("svc", type=toxic_type, stream=stream, attributes=attributes)
                time.sleep(0.005)
            api.call("PATCH", "/proxies/svc/toxics/latency_downstream",
                     {"attributes": {"latency": 2 + rounds % 5}})
            for toxic_type, stream, _ in reversed(toxics) if rounds % 2 else toxics:
                api.call("DELETE", f"/proxies/svc/toxics/{toxic_type}_{stream}")
                time.sleep(0.005)
            rounds += 1
        for thread in threads:
            thread.join(timeout=20)
    assert len(received) == len(payload)
    assert bytes(received) == payload


def _downstream_bytes(api: Api, proxy: str) -> float:
    for line in api.call("GET", "/metrics").text.splitlines():
        if line.startswith(f'paystab_proxy_bytes_total{{direction="downstream",proxy="{proxy}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_switching_the_last_toxic_off_flushes_held_bytes_in_order(
    api: Api, echo: EchoServer
) -> None:
    proxy = api.create("svc", echo.address)
    # a spared toxic in front (toxicity 0), a slow one behind it
    api.toxic("svc", type="latency", name="spared", toxicity=0.0, attributes={"latency": 500})
    api.toxic("svc", type="bandwidth", name="slow", attributes={"rate": 1})  # 1 KB/s
    with connect(proxy["listen"]) as sock:
        sock.sendall(b"a" * 300)
        wait_until(lambda: _downstream_bytes(api, "svc") >= 300)
        sock.sendall(b"b" * 300)  # queues behind the first 300 bytes
        wait_until(lambda: _downstream_bytes(api, "svc") >= 600)
        assert api.call("PATCH", "/proxies/svc/toxics/slow", {"toxicity": 0.0}).status_code == 200
        started = time.monotonic()
        assert recv_exactly(sock, 600) == b"a" * 300 + b"b" * 300
        assert time.monotonic() - started < 0.2  # no longer limited to 1 KB/s
        assert round_trip_s(sock) < 0.05
