"""The fault contract over every kind, on the real reference stack.

For each kind: healthy traffic → inject (FaultSession, blast radius = the target) → the
client sees the fault's effect → clear → traffic healthy again, nothing left in the journal
or on the target. Traffic is real card charges sent to a provider of ``paystab up`` in its
own dialect (straight, or through ``paystab chaos proxy``), and the stack's gateway for the
process faults. A kind registered without a case here fails ``test_every_kind_is_covered``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from paystab.chaos import procfs
from paystab.chaos.allow import AllowList
from paystab.chaos.base import FaultContext, FaultSpec
from paystab.chaos.journal import Journal
from paystab.chaos.registry import fault_class, kinds
from paystab.chaos.session import FaultSession
from tests.conftest import RunningStack
from tests.conftest_chaos import (
    CARD_ALPHA_DIALECT,
    ProviderProcess,
    ProxyServerProcess,
    charge,
    docker_engine,
    get_outcome,
    host_image,
    iptables_available,
    paystab_rules,
    proxy_server,
    remove_container,
    require,
    run_python_container,
    state,
    wait_for,
)

__all__ = ["docker_engine", "host_image", "proxy_server", "state"]


@dataclass
class Case:
    kind: str
    target: str  # "{alpha}" / "{proxy}" are filled in from the running stack
    params: dict[str, Any] = field(default_factory=dict)
    effect: str = "error"  # error | timeout | refused | reset | slow | any
    via: str = "alpha"  # alpha: straight to card-alpha; proxy: through the proxy to bravo
    timeout_s: float = 1.0


CASES = [
    Case("provider.error_burst", "card-alpha", {"ratio": 1.0, "error": "server_error"}),
    Case("provider.latency", "card-alpha", {"added": 0.4, "jitter": 0.0}, "slow"),
    Case("provider.hang", "card-alpha", {"ratio": 1.0}, "timeout", timeout_s=0.5),
    Case("provider.slow", "card-alpha", {"response_time": 0.5}, "slow"),
    Case("provider.drop_response", "card-alpha", {"ratio": 1.0}, "reset"),
    Case("provider.partial_outage", "card-alpha", {"method": "card", "error": "bad_gateway"}),
    Case("provider.flapping", "card-alpha", {"period": 60.0, "down_ratio": 0.99,
                                             "error": "server_error"}),
    Case("proxy.latency", "{proxy}", {"latency": 0.4, "jitter": 0.0}, "slow", "proxy"),
    Case("proxy.bandwidth", "{proxy}", {"rate": 1}, "slow", "proxy", 3.0),
    Case("proxy.slow_close", "{proxy}", {"delay": 0.2}, "any", "proxy"),
    Case("proxy.timeout", "{proxy}", {"timeout": 0.0, "stream": "upstream"}, "timeout",
         "proxy", 0.5),
    Case("proxy.reset_peer", "{proxy}", {"timeout": 0.0}, "reset", "proxy"),
    Case("proxy.slicer", "{proxy}", {"average_size": 20, "delay": 0.02}, "slow", "proxy"),
    Case("proxy.limit_data", "{proxy}", {"bytes": 20}, "reset", "proxy"),
    Case("proxy.down", "{proxy}", {}, "refused", "proxy"),
    Case("iptables.partition", "card-alpha", {"action": "drop", "direction": "both",
                                              "protocol": "tcp"}, "timeout", timeout_s=0.5),
    Case("iptables.partition", "card-alpha", {"action": "reject", "direction": "in",
                                              "protocol": "tcp"}, "refused"),
    Case("process.stop", "providers", {}, "timeout", timeout_s=0.5),
]
# Kinds whose contract needs a process or container of their own: tests further down.
ELSEWHERE = {"process.kill", "process.restart", "docker.pause", "docker.stop", "docker.kill",
             "docker.restart", "docker.disconnect"}  # disconnect: test_chaos_docker (bridge)


def test_every_kind_is_covered() -> None:
    assert {c.kind for c in CASES} | ELSEWHERE == set(kinds())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack(tmp_path_factory.mktemp("contract-stack"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def bravo_proxy(stack: RunningStack, proxy_server: ProxyServerProcess) -> str:
    upstream = stack.endpoints.providers["card-bravo"].url.split("://", 1)[1]
    proxy = proxy_server.create("card-bravo", upstream)
    return f"http://{proxy['listen']}"


def _observe(case: Case, stack: RunningStack, bravo_proxy: str) -> tuple[str, float]:
    if case.via == "proxy":
        return charge(bravo_proxy, stack.endpoints.providers["card-bravo"].dialect,
                      case.timeout_s)
    return charge(stack.endpoints.providers["card-alpha"].url, CARD_ALPHA_DIALECT, case.timeout_s)


def _matches(effect: str, outcome: str, seconds: float) -> bool:
    if effect == "error":
        return outcome.startswith("error.")
    if effect == "slow":
        return outcome == "approved" and seconds >= 0.3
    if effect == "reset":
        return outcome in ("reset", "error.malformed")
    if effect == "any":
        return True
    return outcome == effect


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}-{c.effect}" for c in CASES])
def test_inject_effect_clear_healthy(case: Case, state: Path, stack: RunningStack,
                                     proxy_server: ProxyServerProcess, bravo_proxy: str) -> None:
    if case.kind.startswith("iptables."):
        require("iptables", iptables_available(), "root and iptables")
    healthy = lambda: _observe(case, stack, bravo_proxy)  # noqa: E731
    wait_for(lambda: healthy()[0] == "approved", 10, "healthy traffic before")
    ctx = FaultContext.from_stack(stack.endpoints)
    ctx.proxy_api_url = proxy_server.url
    target = case.target.format(proxy="card-bravo")
    allow = AllowList((fault_class(case.kind).check_target(target),))
    with FaultSession(allow=allow, context=ctx) as session:
        fault = session.inject(FaultSpec(case.kind, case.kind, target, case.params))
        outcome, seconds = healthy()
        assert _matches(case.effect, outcome, seconds), (outcome, seconds)
        session.clear(fault)
    outcome, seconds = wait_for(lambda: (o := healthy())[0] == "approved" and o, 10,
                                "healthy traffic after")
    assert seconds < 0.3
    assert Journal().entries() == []
    assert proxy_server.toxics("card-bravo") == []
    if case.kind.startswith("iptables."):
        port = int(stack.endpoints.providers["card-alpha"].url.rsplit(":", 1)[1])
        assert paystab_rules(port) == []


def test_gateway_kill_is_restarted_by_the_stack(state: Path, stack: RunningStack) -> None:
    """process.kill on the gateway: the process dies; the stack's supervisor brings a new one
    up on the same port and payments flow again."""
    gateway = stack.endpoints.gateway_url + "/healthz"
    wait_for(lambda: get_outcome(gateway) == "ok", 10)
    ctx = FaultContext.from_stack(stack.endpoints)
    old_pid = ctx.processes["gateway"].pid
    assert old_pid is not None
    ticks = procfs.start_ticks(old_pid)
    with FaultSession(allow=AllowList(("process:gateway",)), context=ctx) as session:
        session.inject(FaultSpec("crash", "process.kill", "gateway", {"signal": "SIGKILL"}))
        wait_for(lambda: not procfs.is_same(old_pid, ticks), 5, "the gateway to die")
    wait_for(lambda: get_outcome(gateway) == "ok", 30, "the gateway to come back")


def test_process_restart_of_a_provider(state: Path, tmp_path: Path) -> None:
    provider = ProviderProcess(tmp_path)
    restarted: int | None = None
    try:
        command = " ".join(provider.argv)
        with FaultSession(allow=AllowList((f"pid:{provider.proc.pid}",))) as session:
            fault = session.inject(FaultSpec("bounce", "process.restart",
                                             f"pid:{provider.proc.pid}",
                                             {"signal": "SIGTERM", "grace": 5.0,
                                              "restart": command}))
            restarted = fault.where["restarted_pid"]
            assert provider.proc.poll() is not None and restarted != provider.proc.pid
            provider.wait_up()  # the new process answers on the same port
    finally:
        if restarted and procfs.state(restarted) not in (None, "Z"):
            os.kill(restarted, signal.SIGTERM)
            wait_for(lambda: procfs.state(restarted) in (None, "Z"), 10)
        provider.close()


@pytest.fixture
def provider_container(docker_engine: Any, host_image: str,
                       tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """card-alpha's simulator in a container (host network, host Python read-only)."""
    from tests.conftest_chaos import free_port

    port, admin = free_port(), free_port()
    name = f"paystab-test-psp-{os.getpid()}-{port}"
    container = run_python_container(docker_engine, host_image, name, [
        "-m", "paystab", "provider", "card-alpha", "--port", str(port), "--admin-port",
        str(admin), "--data-dir", "/tmp/psp"])
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: charge(url, CARD_ALPHA_DIALECT)[0] == "approved", 30, "the containerised provider")
    yield container, url
    remove_container(docker_engine, name)


DOCKER_CASES = [("docker.pause", {}, "timeout"), ("docker.kill", {"signal": "SIGKILL"}, "refused"),
                ("docker.stop", {"timeout": 1.0}, "refused"), ("docker.restart", {"timeout": 1.0},
                                                                "restarted")]


@pytest.mark.docker
@pytest.mark.parametrize(("kind", "params", "effect"), DOCKER_CASES,
                         ids=[c[0] for c in DOCKER_CASES])
def test_docker_faults_on_a_containerised_provider(state: Path,
                                                   provider_container: tuple[Any, str],
                                                   kind: str, params: dict[str, Any],
                                                   effect: str) -> None:
    container, url = provider_container
    started = container.attrs["State"]["StartedAt"]
    allow = AllowList((f"container:{container.name}",))
    with FaultSession(allow=allow) as session:
        session.inject(FaultSpec(kind, kind, container.name, params))
        if effect == "restarted":
            container.reload()
            assert container.attrs["State"]["StartedAt"] != started
        else:
            outcome = wait_for(lambda: (o := charge(url, CARD_ALPHA_DIALECT, 0.5)[0]) == effect and o, 15,
                               f"{effect} from the client")
            assert outcome == effect
    wait_for(lambda: charge(url, CARD_ALPHA_DIALECT)[0] == "approved", 30, "the provider to answer again")
    container.reload()
    assert container.status == "running" and Journal().entries() == []
