"""iptables.partition on a real loopback port: timeouts or refusals, then recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from paystab.chaos.base import FaultContext, FaultSpec, ProviderAddress
from paystab.chaos.iptables import Partition
from paystab.chaos.session import FaultSession
from tests.conftest_chaos import (
    HttpServer,
    get_outcome,
    http_server,
    iptables,
    paystab_rules,
    state,
    wait_for,
)

__all__ = ["http_server", "iptables", "state"]
pytestmark = pytest.mark.iptables


@pytest.mark.parametrize(("action", "direction", "seen"), [
    ("drop", "in", "timeout"), ("drop", "out", "timeout"), ("drop", "both", "timeout"),
    ("reject", "in", "refused"),
])
def test_partition_then_recovery(iptables: None, state: Path, http_server: HttpServer,
                                 action: str, direction: str, seen: str) -> None:
    assert get_outcome(http_server.url) == "ok"
    spec = FaultSpec("cut", "iptables.partition", f"127.0.0.1:{http_server.port}",
                     {"action": action, "direction": direction, "protocol": "tcp"})
    with FaultSession() as session:
        fault = session.inject(spec)
        assert len(paystab_rules(http_server.port)) == (2 if direction == "both" else 1)
        assert get_outcome(http_server.url, timeout=0.3) == seen
        session.clear(fault)
        assert paystab_rules(http_server.port) == []
        wait_for(lambda: get_outcome(http_server.url) == "ok", what="recovery")


def test_clear_removes_only_its_own_rules(iptables: None, state: Path,
                                          http_server: HttpServer) -> None:
    target = f"127.0.0.1:{http_server.port}"
    with FaultSession() as session:
        first = session.inject(FaultSpec("a", "iptables.partition", target, {
            "action": "drop", "direction": "in", "protocol": "tcp"}))
        second = session.inject(FaultSpec("b", "iptables.partition", target, {
            "action": "reject", "direction": "in", "protocol": "tcp"}))
        session.clear(second)
        rules = paystab_rules(http_server.port)
        assert len(rules) == 1 and first.uid in rules[0]
        assert get_outcome(http_server.url, timeout=0.3) == "timeout"
        first.inject()  # a repeated inject does not add a second copy
        assert len(paystab_rules(http_server.port)) == 1
    assert paystab_rules(http_server.port) == []
    assert get_outcome(http_server.url) == "ok"


def test_provider_name_resolves_to_its_port(iptables: None, state: Path,
                                            http_server: HttpServer) -> None:
    ctx = FaultContext(providers={"card-alpha": ProviderAddress(url=http_server.url)})
    fault = Partition.prepare(FaultSpec("p", "iptables.partition", "card-alpha",
                                        {"action": "reject", "direction": "in",
                                         "protocol": "tcp"}), ctx)
    assert fault.touches().names == ("provider:card-alpha", f"127.0.0.1:{http_server.port}")
    rebuilt = Partition.from_record(fault.record())  # as `chaos clear` would, elsewhere
    fault.inject()
    assert get_outcome(http_server.url, timeout=0.3) == "refused"
    rebuilt.clear()
    assert paystab_rules(http_server.port) == [] and get_outcome(http_server.url) == "ok"
