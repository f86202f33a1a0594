"""The fault proxy's control API against Toxiproxy v2: endpoints, shapes, codes, errors.

Everything runs against a real server on 127.0.0.1 (in a thread) and a real echo server;
the last tests drive it with the unmodified ``toxiproxy-python`` client from PyPI and run
``paystab chaos proxy`` as a real process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from paystab.chaos.proxy_server import ProxyServer
from paystab.cli.proxy_cmd import proxy_command
from paystab.exceptions import EnvironmentProblem, InvalidInput
from tests.conftest_proxy import (  # noqa: F401 - the *_fixture names are fixtures
    Api,
    EchoServer,
    api_fixture,
    connect,
    echo_fixture,
    proxy_server_fixture,
    recv_exactly,
    wait_until,
)

ALL_TOXICS = {
    "latency": {"latency": 0, "jitter": 0},
    "bandwidth": {"rate": 1},
    "slow_close": {"delay": 0},
    "timeout": {"timeout": 0},
    "reset_peer": {"timeout": 0},
    "slicer": {"average_size": 1, "size_variation": 0, "delay": 0},
    "limit_data": {"bytes": 0},
}


def error(r: requests.Response, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"error": message, "status": status}


# -- proxies -----------------------------------------------------------------------------
def test_version_and_empty_index(api: Api) -> None:
    r = api.call("GET", "/version")
    assert r.status_code == 200 and r.json()["version"].startswith("paystab-")
    r = api.call("GET", "/proxies")
    assert r.status_code == 200 and r.json() == {}


def test_create_show_list_delete_proxy(api: Api, echo: EchoServer) -> None:
    r = api.call("POST", "/proxies", {"name": "db", "upstream": echo.address,
                                      "listen": "127.0.0.1:0"})
    assert r.status_code == 201
    proxy = r.json()
    assert set(proxy) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert proxy["name"] == "db" and proxy["upstream"] == echo.address
    assert proxy["enabled"] is True and proxy["toxics"] == []
    host, port = proxy["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0  # port 0 replaced by the bound port
    assert api.call("GET", "/proxies/db").json() == proxy
    assert api.call("GET", "/proxies").json() == {"db": proxy}
    error(api.call("POST", "/proxies", {"name": "db", "upstream": echo.address}),
          409, "proxy already exists")
    r = api.call("DELETE", "/proxies/db")
    assert r.status_code == 204 and r.content == b""
    error(api.call("GET", "/proxies/db"), 404, "proxy not found")
    error(api.call("DELETE", "/proxies/db"), 404, "proxy not found")
    with pytest.raises(OSError):
        connect(proxy["listen"], timeout_s=1).recv(1)


def test_create_proxy_bad_requests(api: Api, echo: EchoServer) -> None:
    error(api.call("POST", "/proxies", {"upstream": echo.address}), 400,
          "missing required field: name")
    error(api.call("POST", "/proxies", {"name": "x"}), 400, "missing required field: upstream")
    error(api.call("POST", "/proxies", data=b""), 400, "bad request body: EOF")
    r = api.call("POST", "/proxies", data=b"{not json")
    assert r.status_code == 400 and r.json()["error"].startswith("bad request body: ")
    r = api.call("POST", "/proxies", {"name": "x", "upstream": echo.address, "enabled": "yes"})
    assert r.status_code == 400 and "enabled" in r.json()["error"]
    r = api.call("POST", "/proxies", {"name": "x", "upstream": "nocolon"})
    assert r.status_code == 400
    # paystab listens on loopback only unless the server has a token
    r = api.call("POST", "/proxies", {"name": "x", "upstream": echo.address,
                                      "listen": "0.0.0.0:0"})
    assert r.status_code == 400 and "loopback" in r.json()["error"]
    assert api.call("GET", "/proxies").json() == {}


def test_listen_on_a_taken_port_is_a_500_like_toxiproxy(api: Api, echo: EchoServer) -> None:
    r = api.call("POST", "/proxies", {"name": "x", "upstream": echo.address,
                                      "listen": echo.address})
    assert r.status_code == 500
    assert r.json()["error"].startswith(f"listen tcp {echo.address}: ")
    error(api.call("GET", "/proxies/x"), 404, "proxy not found")


def test_created_disabled_then_update_with_post_and_patch(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address, enabled=False)
    assert proxy["enabled"] is False
    r = api.call("PATCH", "/proxies/svc", {"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True
    listen = r.json()["listen"]
    with connect(listen) as sock:
        sock.sendall(b"hi")
        assert recv_exactly(sock, 2) == b"hi"
    r = api.call("POST", "/proxies/svc", {"enabled": False})  # POST: Toxiproxy's old verb
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert r.json()["listen"] == listen
    error(api.call("PATCH", "/proxies/nope", {"enabled": True}), 404, "proxy not found")
    error(api.call("PATCH", "/proxies/svc", data=b""), 400, "bad request body: EOF")


def test_update_upstream_restarts_the_proxy(api: Api, echo: EchoServer) -> None:
    other = EchoServer()
    try:
        proxy = api.create("svc", echo.address)
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"a")
            assert recv_exactly(sock, 1) == b"a"
            r = api.call("PATCH", "/proxies/svc", {"upstream": other.address})
            assert r.status_code == 200 and r.json()["upstream"] == other.address
            assert sock.recv(10) == b""  # the live connection was dropped
        with connect(r.json()["listen"]) as sock:
            sock.sendall(b"b")
            assert recv_exactly(sock, 1) == b"b"
        assert other.accepted == 1
    finally:
        other.close()


# -- toxics ------------------------------------------------------------------------------
def test_toxic_defaults_and_shape(api: Api, echo: EchoServer) -> None:
    api.create("svc", echo.address)
    r = api.call("POST", "/proxies/svc/toxics", {"type": "latency"})
    assert r.status_code == 200
    assert r.json() == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                        "toxicity": 1.0, "attributes": {"latency": 0, "jitter": 0}}
    r = api.call("POST", "/proxies/svc/toxics", {"type": "latency", "stream": "upstream",
                                                 "toxicity": 0.5,
                                                 "attributes": {"latency": 20}})
    assert r.json()["name"] == "latency_upstream" and r.json()["toxicity"] == 0.5
    names = [t["name"] for t in api.call("GET", "/proxies/svc/toxics").json()]
    assert names == ["latency_upstream", "latency_downstream"]  # upstream first, as Toxiproxy
    assert [t["name"] for t in api.call("GET", "/proxies/svc").json()["toxics"]] == names


def test_every_toxic_type_is_known_with_its_attributes(api: Api, echo: EchoServer) -> None:
    api.create("svc", echo.address)
    for toxic_type, attributes in ALL_TOXICS.items():
        r = api.call("POST", "/proxies/svc/toxics",
                     {"type": toxic_type, "name": toxic_type, "attributes": attributes})
        assert r.status_code == 200, r.text
        assert r.json()["attributes"] == attributes
    assert len(api.call("GET", "/proxies/svc/toxics").json()) == len(ALL_TOXICS)


def test_toxic_bad_requests(api: Api, echo: EchoServer) -> None:
    api.create("svc", echo.address)
    error(api.call("POST", "/proxies/svc/toxics", {"type": "nope"}), 400, "invalid toxic type")
    error(api.call("POST", "/proxies/svc/toxics", {}), 400, "invalid toxic type")
    error(api.call("POST", "/proxies/svc/toxics", {"type": "latency", "stream": "sideways"}),
          400, "stream was invalid, can be either upstream or downstream")
    error(api.call("POST", "/proxies/nope/toxics", {"type": "latency"}), 404, "proxy not found")
    for attributes in ({"latancy": 5}, {"latency": -1}, {"latency": "5"}, {"latency": 1.5}):
        r = api.call("POST", "/proxies/svc/toxics", {"type": "latency", "attributes": attributes})
        assert r.status_code == 400 and r.json()["error"].startswith("bad request body: "), r.text
    for toxicity in (1.5, -0.1, "1"):
        r = api.call("POST", "/proxies/svc/toxics", {"type": "latency", "toxicity": toxicity})
        assert r.status_code == 400
    for bad in ({"type": "bandwidth", "attributes": {"rate": 0}},
                {"type": "slicer", "attributes": {"average_size": 0}},
                {"type": "slicer", "attributes": {"average_size": 5, "size_variation": 5}}):
        assert api.call("POST", "/proxies/svc/toxics", bad).status_code == 400
    assert api.call("GET", "/proxies/svc/toxics").json() == []
    api.toxic("svc", type="latency")
    error(api.call("POST", "/proxies/svc/toxics", {"type": "latency"}), 409,
          "toxic already exists")


def test_show_update_delete_toxic(api: Api, echo: EchoServer) -> None:
    api.create("svc", echo.address)
    api.toxic("svc", type="latency", attributes={"latency": 100, "jitter": 10})
    r = api.call("GET", "/proxies/svc/toxics/latency_downstream")
    assert r.status_code == 200 and r.json()["attributes"] == {"latency": 100, "jitter": 10}
    error(api.call("GET", "/proxies/svc/toxics/nope"), 404, "toxic not found")
    error(api.call("GET", "/proxies/nope/toxics/nope"), 404, "proxy not found")
    # a partial update keeps the other attributes; type and stream cannot change
    r = api.call("PATCH", "/proxies/svc/toxics/latency_downstream",
                 {"attributes": {"latency": 7}, "toxicity": 0.25, "stream": "upstream"})
    assert r.status_code == 200
    assert r.json() == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                        "toxicity": 0.25, "attributes": {"latency": 7, "jitter": 10}}
    r = api.call("POST", "/proxies/svc/toxics/latency_downstream", {"attributes": {"jitter": 0}})
    assert r.json()["attributes"] == {"latency": 7, "jitter": 0} and r.json()["toxicity"] == 0.25
    r = api.call("PATCH", "/proxies/svc/toxics/latency_downstream",
                 {"attributes": {"latency": -5}})
    assert r.status_code == 400
    error(api.call("PATCH", "/proxies/svc/toxics/nope", {"toxicity": 1}), 404, "toxic not found")
    r = api.call("DELETE", "/proxies/svc/toxics/latency_downstream")
    assert r.status_code == 204 and r.content == b""
    error(api.call("DELETE", "/proxies/svc/toxics/latency_downstream"), 404, "toxic not found")


# -- populate and reset ---------------------------------------------------------------------
def test_populate_creates_keeps_and_replaces(api: Api, echo: EchoServer) -> None:
    other = EchoServer()
    try:
        wanted = [{"name": "a", "listen": "127.0.0.1:0", "upstream": echo.address},
                  {"name": "b", "listen": "127.0.0.1:0", "upstream": echo.address,
                   "enabled": False}]
        r = api.call("POST", "/populate", wanted)
        assert r.status_code == 201
        proxies = r.json()["proxies"]
        assert [p["name"] for p in proxies] == ["a", "b"]
        assert [p["enabled"] for p in proxies] == [True, False]
        # same listen and upstream: kept as it is, toxics and all
        api.toxic("a", type="latency")
        same = [{"name": "a", "listen": proxies[0]["listen"], "upstream": echo.address}]
        r = api.call("POST", "/populate", same)
        assert r.status_code == 201 and r.json()["proxies"][0]["toxics"] != []
        # another upstream: replaced
        r = api.call("POST", "/populate", [{"name": "a", "listen": "127.0.0.1:0",
                                            "upstream": other.address}])
        assert r.json()["proxies"][0]["upstream"] == other.address
        assert r.json()["proxies"][0]["toxics"] == []
        assert set(api.call("GET", "/proxies").json()) == {"a", "b"}
    finally:
        other.close()


def test_populate_checks_everything_before_changing_anything(api: Api, echo: EchoServer) -> None:
    error(api.call("POST", "/populate", [{"name": "a", "upstream": echo.address},
                                         {"name": "b"}]),
          400, "missing required field: upstream at proxy 2")
    error(api.call("POST", "/populate", [{"upstream": echo.address}]), 400,
          "missing required field: name at proxy 1")
    r = api.call("POST", "/populate", [{"name": "a", "upstream": echo.address},
                                       {"name": "a", "upstream": echo.address}])
    assert r.status_code == 400
    assert api.call("POST", "/populate", {"name": "a"}).status_code == 400
    assert api.call("GET", "/proxies").json() == {}
    # a bind failure stops the run; the body lists what was applied, plus the error
    r = api.call("POST", "/populate", [{"name": "ok", "upstream": echo.address},
                                       {"name": "taken", "listen": echo.address,
                                        "upstream": echo.address}])
    assert r.status_code == 500
    assert [p["name"] for p in r.json()["proxies"]] == ["ok"] and r.json()["status"] == 500


def test_reset_enables_all_and_removes_toxics(api: Api, echo: EchoServer) -> None:
    api.create("a", echo.address)
    api.create("b", echo.address, enabled=False)
    api.toxic("a", type="timeout", attributes={"timeout": 0})
    api.toxic("b", type="latency", stream="upstream")
    r = api.call("POST", "/reset")
    assert r.status_code == 204 and r.content == b""
    for proxy in api.call("GET", "/proxies").json().values():
        assert proxy["enabled"] is True and proxy["toxics"] == []
    with connect(api.call("GET", "/proxies/a").json()["listen"]) as sock:
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"


# -- HTTP details, safety, metrics -------------------------------------------------------------
def test_unknown_routes_and_methods_answer_json_errors(api: Api) -> None:
    r = api.call("GET", "/nope")
    assert r.status_code == 404 and r.json()["status"] == 404
    r = api.call("PUT", "/proxies")
    assert r.status_code == 405 and r.json()["status"] == 405


def test_browsers_are_refused_like_toxiproxy(api: Api) -> None:
    r = api.call("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux)"})
    error(r, 403, "User agent not allowed")


def test_token_is_required_when_configured(echo: EchoServer) -> None:
    with ProxyServer(port=0, token="s3cret") as url:
        error(requests.get(url + "/proxies", timeout=5), 401, "missing or wrong bearer token")
        r = requests.get(url + "/proxies", headers={"Authorization": "Bearer nope"}, timeout=5)
        assert r.status_code == 401
        authed = Api(url, token="s3cret")
        assert authed.call("GET", "/proxies").status_code == 200
        authed.create("svc", echo.address)


def test_non_loopback_control_api_needs_a_token() -> None:
    with pytest.raises(InvalidInput, match="not a loopback address"):
        ProxyServer("0.0.0.0", 0)
    ProxyServer("0.0.0.0", 0, token="t")  # allowed, not started: tests stay on loopback


def test_control_port_in_use_is_an_environment_problem(echo: EchoServer) -> None:
    with pytest.raises(EnvironmentProblem, match="in use"):
        ProxyServer(port=echo.port).run_in_thread()


def test_metrics_count_connections_bytes_and_toxics(api: Api, echo: EchoServer) -> None:
    proxy = api.create("svc", echo.address)
    api.toxic("svc", type="latency", stream="upstream")
    for _ in range(3):
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"12345")
            assert recv_exactly(sock, 5) == b"12345"
    r = api.call("GET", "/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert 'paystab_proxy_connections_total{proxy="svc"} 3.0' in text
    assert 'paystab_proxy_bytes_total{direction="upstream",proxy="svc"} 15.0' in text
    assert 'paystab_proxy_bytes_total{direction="downstream",proxy="svc"} 15.0' in text
    assert 'paystab_proxy_toxics_active{proxy="svc",type="latency"} 1.0' in text
    assert 'paystab_proxy_toxics_active{proxy="svc",type="timeout"} 0.0' in text


# -- a third-party Toxiproxy client, unchanged ------------------------------------------------
@pytest.fixture
def toxiproxy_client(api: Api) -> Iterator[object]:
    from toxiproxy import Toxiproxy
    from toxiproxy.api import APIConsumer

    saved = (APIConsumer.host, APIConsumer.port)
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    client = Toxiproxy()
    client.update_api_consumer(host, int(port))
    yield client
    APIConsumer.host, APIConsumer.port = saved


def test_toxiproxy_python_client_works_unchanged(toxiproxy_client: object,
                                                 echo: EchoServer) -> None:
    from toxiproxy import Toxiproxy

    client = toxiproxy_client
    assert isinstance(client, Toxiproxy)
    assert client.running() and b"paystab" in client.version()
    proxy = client.create(upstream=echo.address, name="pyclient")
    assert proxy.enabled and proxy.listen.startswith("127.0.0.1:")
    assert set(client.proxies()) == {"pyclient"}

    proxy.add_toxic(type="latency", attributes={"latency": 150})
    toxics = proxy.toxics()
    assert list(toxics) == ["latency_downstream"]
    assert toxics["latency_downstream"].attributes == {"latency": 150, "jitter": 0}
    with connect(proxy.listen) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        assert time.monotonic() - started >= 0.14
    assert proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}

    with proxy.down(), pytest.raises(OSError):
        connect(proxy.listen, timeout_s=1).recv(1)
    proxy.add_toxic(type="timeout", stream="upstream", toxicity=0.5, attributes={"timeout": 0})
    assert proxy.get_toxic("timeout_upstream").toxicity == 0.5
    assert client.reset()
    assert proxy.toxics() == {}
    with connect(proxy.listen) as sock:
        sock.sendall(b"back")
        assert recv_exactly(sock, 4) == b"back"

    created = client.populate([{"name": "pop", "listen": "127.0.0.1:0", "upstream": echo.address}])
    assert [p.name for p in created] == ["pop"]
    assert client.destroy(proxy)
    client.destroy_all()
    assert client.proxies() == {}


# -- the command ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_command_serves_config_and_exits_0_on_sigterm(tmp_path: Path, echo: EchoServer) -> None:
    config = tmp_path / "toxiproxy.json"
    config.write_text(f'[{{"name": "svc", "listen": "127.0.0.1:0", "upstream": "{echo.address}"}}]')
    port = _free_port()
    code = "from paystab.cli.proxy_cmd import proxy_command; proxy_command()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--listen", f"127.0.0.1:{port}", "--seed", "5",
         "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ),
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(url + "/proxies", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, timeout_s=15)
        proxy = requests.get(url + "/proxies/svc", timeout=5).json()
        with connect(proxy["listen"]) as sock:
            sock.sendall(b"cli")
            assert recv_exactly(sock, 3) == b"cli"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    assert "control API on" in output and "svc: 127.0.0.1:" in output


def test_command_rejects_bad_input_with_file_and_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(proxy_command, ["--listen", "nope"], standalone_mode=False)
    assert isinstance(result.exception, InvalidInput) and "--listen" in str(result.exception)
    result = runner.invoke(proxy_command, ["--listen", "0.0.0.0:8474"], standalone_mode=False)
    assert isinstance(result.exception, InvalidInput)
    bad = tmp_path / "bad.json"
    bad.write_text('[\n  {"name": "a", "upstream": "127.0.0.1:1"},\n'
                   '  {"name": "b", "upstream": "127.0.0.1:1", "lisen": "x"}\n]\n')
    result = runner.invoke(proxy_command, ["--config", str(bad)], standalone_mode=False)
    assert isinstance(result.exception, InvalidInput)
    assert f"{bad}:3" in str(result.exception) and "lisen" in str(result.exception)
    bad.write_text('[{"name": "a", "upstream": "127.0.0.1:1", "listen": "10.0.0.1:80"}]')
    result = runner.invoke(proxy_command, ["--config", str(bad)], standalone_mode=False)
    assert isinstance(result.exception, InvalidInput) and "loopback" in str(result.exception)
    bad.write_text("[{")
    result = runner.invoke(proxy_command, ["--config", str(bad)], standalone_mode=False)
    assert isinstance(result.exception, InvalidInput) and f"{bad}:1" in str(result.exception)
