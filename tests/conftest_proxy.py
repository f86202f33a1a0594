"""Helpers for the fault-proxy tests: a real echo server, an API client, polling.

Not a pytest conftest (the lead owns ``tests/conftest.py``): test modules import the
fixtures from here explicitly.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from paystab.chaos.proxy_server import ProxyServer


class EchoServer:
    """A threaded TCP echo server on 127.0.0.1. Echoes until EOF, then closes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self.sock.close()


class _Hello(BaseHTTPRequestHandler):
    """HTTP/1.0: answers every GET with a 2000-byte body, then closes."""

    def do_GET(self) -> None:
        body = b"x" * 2000
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client (or a toxic) went away

    def log_message(self, *args: object) -> None:
        pass

    def log_error(self, *args: object) -> None:
        pass


class HttpServer:
    """A threaded HTTP server on 127.0.0.1."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Api:
    """A thin requests wrapper around one server's control API."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.session.request(method, self.url + path, json=body, timeout=10, **kw)

    def create(self, name: str, upstream: str, **fields: Any) -> dict[str, Any]:
        r = self.call("POST", "/proxies", {"name": name, "upstream": upstream,
                                           "listen": "127.0.0.1:0", **fields})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def toxic(self, proxy: str, **fields: Any) -> dict[str, Any]:
        r = self.call("POST", f"/proxies/{proxy}/toxics", fields)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def connect(listen: str, timeout_s: float = 5.0) -> socket.socket:
    host, port = listen.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = sock.recv(size - len(data))
        if not piece:
            break
        data += piece
    return data


def recv_until_eof(sock: socket.socket) -> bytes:
    data = b""
    while piece := sock.recv(65536):
        data += piece
    return data


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture(name="echo")
def echo_fixture() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture(name="proxy_server")
def proxy_server_fixture() -> Iterator[ProxyServer]:
    server = ProxyServer(port=0, seed=1234)
    server.run_in_thread()
    yield server
    server.stop_thread()


@pytest.fixture(name="api")
def api_fixture(proxy_server: ProxyServer) -> Api:
    assert proxy_server.url is not None
    return Api(proxy_server.url)
