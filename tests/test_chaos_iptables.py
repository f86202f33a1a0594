"""iptables.partition on a real loopback port: timeouts or refusals, then recovery."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from paystab.chaos.base import FaultContext, FaultSpec, ProviderAddress
from paystab.chaos.iptables import Partition
from paystab.chaos.session import FaultSession
from paystab.children import child_env
from tests.conftest import require
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


# Run in a network namespace of its own: its tables start empty and no other drill on this
# machine can add rules there, so "the chain is gone" is a fact, not a guess.
CHAIN_LIFETIME = textwrap.dedent("""
    import json, subprocess
    from paystab.chaos.base import FaultContext, FaultSpec
    from paystab.chaos.iptables import Partition

    def tables():
        return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True,
                              check=True).stdout.splitlines()

    def partition(name, port):
        fault = Partition.prepare(FaultSpec(name, "iptables.partition", f"127.0.0.1:{port}",
                                            {"action": "drop", "direction": "both",
                                             "protocol": "tcp"}), FaultContext())
        fault.inject()
        return fault

    seen = {"before": tables()}
    first, second = partition("a", 9001), partition("b", 9002)
    seen["two faults"] = tables()
    first.clear()
    seen["one left"] = tables()
    second.clear()
    seen["none left"] = tables()
    second.clear()  # a second clear (chaos clear after the owner's) is a no-op
    seen["cleared twice"] = tables()
    third = partition("c", 9003)
    subprocess.run(["iptables", "-w", "-A", "PAYSTAB", "-p", "tcp", "--dport", "1", "-j", "ACCEPT"],
                   check=True)  # a rule paystab did not write
    third.clear()
    seen["foreign rule"] = tables()
    print(json.dumps(seen))
""")


def _jumps(lines: list[str]) -> list[str]:
    return [line for line in lines if line.endswith("-j PAYSTAB")]


def test_chain_and_jumps_go_with_the_last_rule(iptables: None, tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    require("unshare --net (util-linux)", unshare is not None and subprocess.run(
        [unshare, "--net", "true"], capture_output=True).returncode == 0,
        "apt-get install util-linux; needs root")
    assert unshare is not None
    done = subprocess.run([unshare, "--net", sys.executable, "-P", "-c", CHAIN_LIFETIME],
                          capture_output=True, text=True, timeout=120,
                          env=dict(child_env(), PAYSTAB_STATE_DIR=str(tmp_path / "state")))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert "-N PAYSTAB" not in seen["before"]
    assert "-N PAYSTAB" in seen["two faults"] and len(_jumps(seen["two faults"])) == 3
    assert "-N PAYSTAB" in seen["one left"] and len(_jumps(seen["one left"])) == 3
    assert sum("paystab:" in line for line in seen["one left"]) == 2
    for stage in ("none left", "cleared twice"):
        assert seen[stage] == seen["before"], stage  # chain, jumps and rules all gone
    assert "-N PAYSTAB" in seen["foreign rule"] and len(_jumps(seen["foreign rule"])) == 3
    assert not any("paystab:" in line for line in seen["foreign rule"])
