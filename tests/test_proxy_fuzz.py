"""A randomised soak: toxic changes, disables and resets while clients keep talking.

Bounded in time (a few seconds) and seeded. Checks what must hold whatever the order of
events: every API call answers as documented (never a 5xx), nothing is logged as an
error, and once traffic stops and the proxy is reset no connection is left open.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
import time
import urllib.request

import pytest

from paystab.chaos.proxy_server import ProxyServer
from tests.conftest_proxy import Api, EchoServer, HttpServer, wait_until

TOXICS = [
    ("latency", {"latency": 20, "jitter": 10}), ("bandwidth", {"rate": 50}),
    ("slow_close", {"delay": 30}), ("timeout", {"timeout": 50}), ("timeout", {"timeout": 0}),
    ("reset_peer", {"timeout": 20}), ("limit_data", {"bytes": 300}),
    ("slicer", {"average_size": 50, "size_variation": 20, "delay": 1000}),
]
SOAK_S = 4.0


def _echo_client(listen: str, rng: random.Random, stop_at: float) -> None:
    host, port = listen.rsplit(":", 1)
    while time.monotonic() < stop_at:
        try:
            with socket.create_connection((host, int(port)), timeout=0.5) as sock:
                for _ in range(rng.randint(1, 4)):
                    sock.sendall(rng.randbytes(rng.randint(1, 3000)))
                    sock.recv(65536)
                if rng.random() < 0.5:
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(65536)
        except OSError:
            pass  # toxics break connections: that is the point


def _http_client(listen: str, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        try:
            with urllib.request.urlopen(f"http://{listen}/", timeout=0.5) as response:
                response.read()
        except (OSError, http.client.HTTPException):
            pass  # cut short by a toxic


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_random_changes_under_traffic_keep_the_server_sound(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(seed)
    echo, http = EchoServer(), HttpServer()
    caplog.set_level(logging.WARNING)
    try:
        with ProxyServer(port=0, seed=seed) as url:
            api = Api(url)
            listens = {"echo": api.create("echo", echo.address)["listen"],
                       "web": api.create("web", http.address)["listen"]}
            stop_at = time.monotonic() + SOAK_S
            clients = [threading.Thread(target=_echo_client,
                                        args=(listens["echo"], random.Random(i), stop_at))
                       for i in range(3)]
            clients += [threading.Thread(target=_http_client, args=(listens["web"], stop_at))
                        for _ in range(2)]
            for client in clients:
                client.start()
            operations = 0
            while time.monotonic() < stop_at:
                proxy = rng.choice(list(listens))
                names = [t["name"] for t in api.call("GET", f"/proxies/{proxy}/toxics").json()]
                roll = rng.random()
                if roll < 0.45:
                    toxic_type, attributes = rng.choice(TOXICS)
                    r = api.call("POST", f"/proxies/{proxy}/toxics", {
                        "type": toxic_type, "name": f"{toxic_type}{rng.randint(0, 3)}",
                        "stream": rng.choice(["upstream", "downstream"]),
                        "toxicity": rng.choice([0, 0.5, 1]), "attributes": attributes})
                    assert r.status_code in (200, 409), r.text
                elif roll < 0.8 and names:
                    r = api.call("DELETE", f"/proxies/{proxy}/toxics/{rng.choice(names)}")
                    assert r.status_code == 204, r.text
                elif roll < 0.9 and names:
                    r = api.call("PATCH", f"/proxies/{proxy}/toxics/{rng.choice(names)}",
                                 {"toxicity": rng.choice([0, 0.5, 1])})
                    assert r.status_code == 200, r.text
                elif roll < 0.96:
                    r = api.call("PATCH", f"/proxies/{proxy}", {"enabled": rng.random() < 0.7})
                    assert r.status_code == 200, r.text
                else:
                    assert api.call("POST", "/reset").status_code == 204
                operations += 1
                time.sleep(rng.random() * 0.02)
            for client in clients:
                client.join(timeout=10)
            assert api.call("POST", "/reset").status_code == 204
            assert operations > 50

            def all_closed() -> bool:
                text = api.call("GET", "/metrics").text
                return all(f'paystab_proxy_connections_open{{proxy="{name}"}} 0.0' in text
                           for name in listens)

            wait_until(all_closed, timeout_s=5)
    finally:
        echo.close()
        http.close()
    problems = [r for r in caplog.records
                if r.levelno >= logging.ERROR or r.name.startswith("asyncio")]
    assert not problems, [r.getMessage() for r in problems]
