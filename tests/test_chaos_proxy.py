"""proxy.* faults driving a real Toxiproxy-API server (``paystab chaos proxy``).

Traffic goes client → proxy listener → a real HTTP server; each fault's effect is seen by
the client, and after clear the proxy has no toxic left and traffic is healthy again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paystab.chaos.base import FaultContext, FaultSpec, ProviderAddress
from paystab.chaos.proxy import ProxyLatency
from paystab.chaos.session import FaultSession
from paystab.exceptions import InvalidInput
from tests.conftest_chaos import (
    HttpServer,
    ProxyServerProcess,
    get_outcome,
    http_get,
    http_server,
    proxy_server,
    state,
    wait_for,
)

__all__ = ["http_server", "proxy_server", "state"]


@pytest.fixture
def fronted(proxy_server: ProxyServerProcess, http_server: HttpServer,
            request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A proxy in front of the HTTP server: (proxy name, URL through the proxy)."""
    name = f"web-{request.node.name}".replace("[", "-").replace("]", "")[:60]
    proxy = proxy_server.create(name, f"127.0.0.1:{http_server.port}")
    yield name, f"http://{proxy['listen']}/"
    proxy_server.api("DELETE", f"/proxies/{name}")


def _ctx(proxy_server: ProxyServerProcess) -> FaultContext:
    return FaultContext(proxy_api_url=proxy_server.url)


def _timed(url: str, timeout: float = 3.0) -> tuple[str, float]:
    start = time.monotonic()
    outcome = get_outcome(url, timeout)
    return outcome, time.monotonic() - start


EFFECTS: list[tuple[str, dict[str, Any], str]] = [
    ("proxy.latency", {"latency": 0.4, "jitter": 0.0}, "slow"),
    ("proxy.timeout", {"timeout": 0.0, "stream": "upstream"}, "timeout"),
    ("proxy.reset_peer", {"timeout": 0.0}, "broken"),
    ("proxy.limit_data", {"bytes": 10}, "broken"),
    ("proxy.bandwidth", {"rate": 4}, "slow"),
    ("proxy.slicer", {"average_size": 200, "size_variation": 0, "delay": 0.05}, "slow"),
    ("proxy.slow_close", {"delay": 0.5}, "any"),
    ("proxy.down", {}, "refused"),
]


@pytest.mark.parametrize(("kind", "params", "effect"), EFFECTS, ids=[e[0] for e in EFFECTS])
def test_each_proxy_fault_then_healthy(state: Path, proxy_server: ProxyServerProcess,
                                       fronted: tuple[str, str], kind: str,
                                       params: dict[str, Any], effect: str) -> None:
    name, url = fronted
    assert http_get(url) == 200
    with FaultSession(context=_ctx(proxy_server)) as session:
        fault = session.inject(FaultSpec("t", kind, name, params))
        if kind != "proxy.down":
            [toxic] = proxy_server.toxics(name)
            assert toxic["name"] == f"paystab-{fault.uid}"
            assert toxic["stream"] == params.get("stream", "downstream")
        outcome, took = _timed(url, timeout=0.3 if effect == "timeout" else 3.0)
        if effect == "slow":
            assert outcome == "ok" and took >= 0.25, (outcome, took)
        elif effect == "timeout":
            assert outcome == "timeout"
        elif effect == "broken":
            assert outcome != "ok"
        elif effect == "refused":
            assert outcome == "refused"
        session.clear(fault)
        assert proxy_server.toxics(name) == []
        assert proxy_server.api("GET", f"/proxies/{name}")["enabled"] is True
    outcome, took = _timed(url)
    assert outcome == "ok" and took < 0.25


def test_targets_by_upstream_and_names_its_provider(state: Path, proxy_server: ProxyServerProcess,
                                                    fronted: tuple[str, str],
                                                    http_server: HttpServer) -> None:
    name, _ = fronted
    ctx = _ctx(proxy_server)
    ctx.providers["card-alpha"] = ProviderAddress(url=http_server.url)
    fault = ProxyLatency.prepare(FaultSpec("l", "proxy.latency", f"localhost:{http_server.port}",
                                           {"latency": 0.1, "jitter": 0.0}), ctx)
    assert fault.where["proxy"] == name
    names = fault.touches().names
    assert f"127.0.0.1:{http_server.port}" in names and "provider:card-alpha" in names
    assert f"proxy:{name}" in names
    explicit = ProxyLatency.prepare(FaultSpec("l", "proxy.latency", f"{name}@{proxy_server.url}",
                                              {"latency": 0.1, "jitter": 0.0}), FaultContext())
    assert explicit.where["api"] == proxy_server.url


def test_unknown_proxy_is_exit_2(state: Path, proxy_server: ProxyServerProcess) -> None:
    with pytest.raises(InvalidInput, match="no proxy 'nope'"):
        ProxyLatency.prepare(FaultSpec("l", "proxy.latency", "nope",
                                       {"latency": 0.1, "jitter": 0.0}), _ctx(proxy_server))


def test_down_leaves_an_already_disabled_proxy_disabled(state: Path,
                                                        proxy_server: ProxyServerProcess,
                                                        fronted: tuple[str, str]) -> None:
    name, url = fronted
    proxy_server.api("POST", f"/proxies/{name}", {"enabled": False})
    with FaultSession(context=_ctx(proxy_server)) as session:
        session.inject(FaultSpec("d", "proxy.down", name))
    assert proxy_server.api("GET", f"/proxies/{name}")["enabled"] is False
    proxy_server.api("POST", f"/proxies/{name}", {"enabled": True})
    wait_for(lambda: get_outcome(url) == "ok")
