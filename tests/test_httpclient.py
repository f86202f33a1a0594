"""The one door for control calls: proxies, tokens, timeouts, error mapping, gevent.

A recording HTTP server plays every control API paystab calls (provider admin, Toxiproxy,
gateway admin, /metrics, Prometheus, /healthz); a second listener plays the environment
proxy that ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` point at. Every real caller of
:mod:`paystab.httpclient` runs against them: no control call and no token may ever reach
the proxy. Everything listens on 127.0.0.1 (a DNS name is mapped there in-process).
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from paystab import httpclient
from paystab.anomaly.admin_client import GatewayAdmin
from paystab.chaos.base import FaultContext, FaultSpec
from paystab.chaos.provider import Hang
from paystab.chaos.proxy import ProxyLatency
from paystab.chaos.runbook import Probe
from paystab.collector.sampler import http_get_text, query_instant
from paystab.drill.probes import http_probes
from paystab.drill.target import RemoteTarget
from paystab.exceptions import EnvironmentProblem
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-control-token"
PROMETHEUS_OK = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"provider": "card-alpha"}, "value": [0, "3"]}]}}


@dataclass
class Seen:
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, auth
    connections: int = 0


def _serve(seen: Seen, answer: Any) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def setup(self) -> None:
            seen.connections += 1
            super().setup()

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
            status, body, ctype, extra = answer(self.command, self.path)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _any

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def _control_api(method: str, path: str) -> tuple[int, bytes, str, dict[str, str]]:
    route = path.split("?")[0]
    doc: Any = {}
    status = 200
    if route == "/admin/providers":
        doc = {"providers": [{"name": "card-alpha", "url": "http://127.0.0.1:1"}]}
    elif route.endswith("/faults") and method == "POST":
        status, doc = 201, {"id": "f1"}
    elif route.startswith("/admin/providers/") and method == "DELETE":
        return 204, b"", "application/json", {}
    elif route == "/proxies":
        doc = {"alpha": {"name": "alpha", "listen": "127.0.0.1:2", "upstream": "127.0.0.1:1",
                         "enabled": True}}
    elif route.endswith("/toxics") or route.startswith("/proxies/"):
        status = 201 if method == "POST" else 204
    elif route == "/admin/resolve":
        doc = {"unresolved": 0}
    elif route == "/metrics":
        return 200, b"# HELP x x\n# TYPE x counter\nx_total 1\n", "text/plain", {}
    elif route == "/api/v1/query":
        doc = PROMETHEUS_OK
    elif route == "/redirect":
        return 302, b"", "text/plain", {"Location": "http://127.0.0.1:9/elsewhere"}
    elif route == "/healthz":
        doc = {"status": "ok"}
    return status, json.dumps(doc).encode(), "application/json", {}


def _proxy_answer(method: str, path: str) -> tuple[int, bytes, str, dict[str, str]]:
    return 200, b'{"proxied": true}', "application/json", {}


@pytest.fixture
def control() -> Iterator[tuple[Seen, int]]:
    seen = Seen()
    server, port = _serve(seen, _control_api)
    yield seen, port
    server.shutdown()
    server.server_close()


@pytest.fixture
def env_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    """Every proxy variable points at a recording listener; NO_PROXY is unset."""
    seen = Seen()
    server, port = _serve(seen, _proxy_answer)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{port}")
        monkeypatch.setenv(name.lower(), f"http://127.0.0.1:{port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def stack_b_dns(monkeypatch: pytest.MonkeyPatch) -> str:
    """``stack-b.test`` resolves to 127.0.0.1 in this process, without asking any DNS."""
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "stack-b.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return "stack-b.test"


def test_no_control_call_and_no_token_reaches_an_environment_proxy(
        control: tuple[Seen, int], env_proxy: Seen) -> None:
    seen, port = control
    for host in ("127.0.0.1", "localhost"):
        base = f"http://{host}:{port}"
        admin = GatewayAdmin(base, TOKEN)
        admin.drain("card-alpha", "test")
        assert admin.providers()[0]["name"] == "card-alpha"
        assert "x_total 1" in http_get_text(f"{base}/metrics", 2.0, TOKEN)
        assert query_instant(base, "sum(x)", 0.0)[0][1] == 3.0
        target = RemoteTarget(base, None)
        endpoints = target.start()
        endpoints.admin_token = TOKEN
        assert target.settle(2.0) == 0
        probe = Probe(name="health", http="/healthz", expect_status=200)
        [outcome] = http_probes([probe], base, "before", token=TOKEN)
        assert outcome.ok
        ctx = FaultContext(provider_admin_url=base, admin_token=TOKEN, proxy_api_url=base)
        fault = Hang.prepare(FaultSpec("h", "provider.hang", "card-alpha"), ctx)
        fault.inject()
        fault.clear()
        toxic = ProxyLatency.prepare(FaultSpec("l", "proxy.latency", "alpha",
                                               {"latency": 0.1}), ctx)
        toxic.inject()
        toxic.clear()
    assert env_proxy.connections == 0 and env_proxy.requests == []
    tokened = [r for r in seen.requests if r[2]]
    assert tokened and all(r[2] == f"Bearer {TOKEN}" for r in tokened)
    calls = {(m, p.split("?")[0].rsplit("/", 1)[-1]) for m, p, _ in seen.requests}
    assert {("POST", "drain"), ("POST", "faults"), ("DELETE", "f1"), ("POST", "toxics"),
            ("GET", "metrics"), ("GET", "query"), ("POST", "resolve"),
            ("GET", "healthz")} <= calls


def test_tokened_call_to_a_dns_name_bypasses_the_proxy_an_untokened_one_may_not(
        control: tuple[Seen, int], env_proxy: Seen, stack_b_dns: str) -> None:
    seen, port = control
    url = f"http://{stack_b_dns}:{port}/metrics"
    reply = httpclient.request("GET", url, token=TOKEN)
    assert reply.status == 200 and "x_total" in reply.text
    assert env_proxy.connections == 0
    assert seen.requests[-1][2] == f"Bearer {TOKEN}"
    # Without a token a call to another host is an ordinary HTTP call: proxies apply.
    assert httpclient.request("GET", url).body == {"proxied": True}
    assert env_proxy.connections == 1 and env_proxy.requests[0][2] == ""


def test_redirects_are_not_followed(control: tuple[Seen, int], env_proxy: Seen) -> None:
    _, port = control
    reply = httpclient.request("GET", f"http://127.0.0.1:{port}/redirect", token=TOKEN)
    assert reply.status == 302 and not reply.ok
    assert env_proxy.connections == 0


def test_errors_map_to_environment_problems_without_secrets(control: tuple[Seen, int]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(httpclient.Unreachable) as err:
        httpclient.request("GET", f"http://user:pw@127.0.0.1:{closed}/x?key=abc", token=TOKEN)
    assert err.value.refused and err.value.exit_code == 4
    assert "pw" not in err.value.message and "abc" not in err.value.message
    assert TOKEN not in err.value.message
    refused = httpclient.Reply(401, {"error": "no"}, f"http://127.0.0.1:{closed}/admin")
    with pytest.raises(EnvironmentProblem, match="token missing or wrong") as problem:
        refused.expect_ok("gateway admin")
    assert TOKEN not in problem.value.render()
    with pytest.raises(EnvironmentProblem, match="HTTP 503: down"):
        httpclient.Reply(503, {"error": "down"}, "http://127.0.0.1:1/").expect_ok("x")
    assert httpclient.get_status(f"http://127.0.0.1:{closed}/healthz", 1.0) == 0


def test_a_silent_server_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(httpclient.Unreachable) as err:
            httpclient.request("GET", f"http://127.0.0.1:{port}/", timeout_s=0.3)
    assert err.value.timed_out


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "a.localhost", "::1", "[::1]",
                 "::ffff:127.0.0.1"):
        assert httpclient.is_loopback_host(host), host
    for host in ("10.0.0.1", "example.com", "0.0.0.0", "::"):
        assert not httpclient.is_loopback_host(host), host


def test_wildcard_listen_hosts_are_named_as_loopback_for_clients() -> None:
    """A listener on every interface is reached on this machine through 127.0.0.1: the
    proxy's upstream keys and the simulators' URLs name it so, however it was spelled."""
    from paystab.chaos.proxy import normalize_hostport
    from paystab.net import is_wildcard_host
    from paystab.stack.providers.runner import _url_host

    for host in ("", "0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0", " 0.0.0.0 "):
        assert is_wildcard_host(host), host
        assert _url_host(host) == "127.0.0.1", host
    for host in ("127.0.0.1", "::1", "localhost", "10.0.0.1", "example.com", "0.0.0.1"):
        assert not is_wildcard_host(host), host
    assert _url_host("::1") == "[::1]" and _url_host("10.0.0.1") == "10.0.0.1"
    assert normalize_hostport("0.0.0.0:80") == normalize_hostport("localhost:80") \
        == normalize_hostport(":80") == normalize_hostport("[::]:80") == "127.0.0.1:80"
    assert normalize_hostport("10.0.0.1:80") == "10.0.0.1:80"


GEVENT_SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import http.server, json, socket, sys, threading, time
import gevent
from paystab import httpclient

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen()
ticks = []
def ticker():
    while True:
        ticks.append(1)
        gevent.sleep(0.01)
gevent.spawn(ticker)
ok = httpclient.request("GET", f"http://127.0.0.1:{server.server_address[1]}/", token="T")
calls = gevent.joinall([gevent.spawn(httpclient.request, "GET",
                        f"http://127.0.0.1:{server.server_address[1]}/") for _ in range(5)])
before = len(ticks)
try:
    httpclient.request("GET", f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout_s=0.5)
    timed_out = False
except httpclient.Unreachable as exc:
    timed_out = exc.timed_out
print(json.dumps({"patched": monkey.is_module_patched("socket"), "auth": ok.body["auth"],
                  "parallel": [g.value.status for g in calls], "timed_out": timed_out,
                  "ticks_while_waiting": len(ticks) - before}))
"""


def test_works_in_a_gevent_patched_process() -> None:
    try:
        import gevent  # noqa: F401
    except ImportError:
        require("gevent", False, "pip install gevent (Locust brings it)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", GEVENT_SCRIPT], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["patched"] and result["auth"] == "Bearer T"
    assert result["parallel"] == [200] * 5 and result["timed_out"]
    # The hub kept running other greenlets while a call waited on its socket.
    assert result["ticks_while_waiting"] >= 5
