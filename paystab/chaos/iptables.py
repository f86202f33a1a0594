"""Kernel-level partitions: drop or reject the packets of one host:port (root, Linux).

Rules live in a chain of paystab's own (``PAYSTAB``) jumped to from INPUT, OUTPUT and
FORWARD, and every rule carries ``-m comment --comment paystab:<uid>``: ``clear`` lists
the chain and deletes exactly the rules with its comment, so two faults (or two processes)
never remove each other's rules, and ``paystab chaos clear --all`` after a SIGKILL finds
them by the uid in the journal. The chain and its jumps go with the chain's last rule:
``clear`` leaves the tables as they were before the first fault. Chain set-up, rule
changes and chain removal take one machine-wide lock (the tables are machine-wide, and
``iptables -w`` locks one command only), so an inject never appends to a chain that a
concurrent clear is removing. Direction is seen from the target service: ``in`` drops
packets *to* host:port (a client's SYN: connect timeouts), ``out`` drops packets *from*
it (answers vanish), ``both`` does both. ``reject`` answers with a TCP reset instead
(connection refused at once). Target: ``HOST:PORT`` or a provider name from the stack.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from paystab.chaos.address import canonical_ip
from paystab.chaos.base import Fault, FaultContext, FaultSpec, Resource, register, target_error
from paystab.chaos.journal import state_dir
from paystab.chaos.params import Param, choice
from paystab.chaos.proxy import hostport_of_url
from paystab.exceptions import EnvironmentProblem, InvalidInput

CHAIN = "PAYSTAB"
HOOKS = ("INPUT", "OUTPUT", "FORWARD")
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        raise EnvironmentProblem(f"{argv[0]} not found",
                                 hint="apt-get install iptables") from None
    if check and done.returncode != 0:
        raise EnvironmentProblem(f"{' '.join(argv)} failed: {done.stderr.strip()}",
                                 hint="iptables faults need root and the NET_ADMIN capability")
    return done


def binary(family: int) -> str:
    name = "ip6tables" if family == 6 else "iptables"
    return shutil.which(name) or f"/usr/sbin/{name}"


def rule_specs(where: dict[str, Any]) -> list[tuple[list[str], list[str]]]:
    """The (match, jump) pairs of the rules this partition adds, without chain or comment."""
    proto, address, port = str(where["protocol"]), str(where["address"]), str(where["port"])
    if where["action"] == "reject":
        jump = ["-j", "REJECT"] + (["--reject-with", "tcp-reset"] if proto == "tcp" else [])
    else:
        jump = ["-j", "DROP"]
    rules = []
    if where["direction"] in ("in", "both"):
        rules.append((["-p", proto, "-d", address, "--dport", port], jump))
    if where["direction"] in ("out", "both"):
        rules.append((["-p", proto, "-s", address, "--sport", port], jump))
    return rules


def _lock_path() -> Path:
    # Machine-wide like the tables (not per $PAYSTAB_STATE_DIR); root-only, as iptables is.
    for directory in (Path("/run/lock"), Path("/run")):
        if directory.is_dir() and os.access(directory, os.W_OK):
            return directory / "paystab-iptables.lock"
    return state_dir() / "iptables.lock"


class _ChainLock:
    """Serialise chain changes across processes (``iptables -w`` locks one command only)."""

    def __enter__(self) -> _ChainLock:
        path = _lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def ensure_chain(tool: str) -> None:
    """Create the chain and its jumps if missing; call with :class:`_ChainLock` held."""
    if _run([tool, "-w", "-S", CHAIN], check=False).returncode != 0:
        _run([tool, "-w", "-N", CHAIN])
    for hook in HOOKS:
        if _run([tool, "-w", "-C", hook, "-j", CHAIN], check=False).returncode != 0:
            _run([tool, "-w", "-I", hook, "1", "-j", CHAIN])


def remove_chain_if_empty(tool: str) -> bool:
    """Drop the jumps and the chain once it holds no rule; call with the lock held.

    Any rule keeps the chain, also one paystab did not write (someone added it by hand:
    not ours to delete). Best effort: the fault's own rules are gone already, so a chain
    that cannot be deleted (a jump to it from a chain of someone else's) stays, quietly.
    Answers whether the chain is gone.
    """
    listed = _run([tool, "-w", "-S", CHAIN], check=False)
    if listed.returncode != 0:
        return True  # no chain (never made, or already removed)
    if any(line.startswith("-A ") for line in listed.stdout.splitlines()):
        return False
    for hook in HOOKS:
        # -D deletes one copy at a time; a second may exist after a crash mid-setup.
        for _copy in range(8):
            if _run([tool, "-w", "-D", hook, "-j", CHAIN], check=False).returncode != 0:
                break
    return _run([tool, "-w", "-X", CHAIN], check=False).returncode == 0


def rules_with_comment(tool: str, comment: str | None = None) -> list[list[str]]:
    """``-A PAYSTAB ...`` rules of the chain tagged ``comment`` (any paystab one if None)."""
    listed = _run([tool, "-w", "-S", CHAIN], check=False)
    if listed.returncode != 0:
        return []  # no chain: nothing of ours is there
    found = []
    for line in listed.stdout.splitlines():
        tokens = shlex.split(line)
        if tokens[:2] != ["-A", CHAIN] or "--comment" not in tokens:
            continue
        tag = tokens[tokens.index("--comment") + 1]
        if (comment is None and tag.startswith("paystab:")) or tag == comment:
            found.append(tokens)
    return found


@register
class Partition(Fault):
    kind = "iptables.partition"
    summary = "drop or reject packets to/from a host:port (root, Linux)"
    params_spec: ClassVar[tuple[Param, ...]] = (
        choice("action", "drop (timeouts) or reject (TCP reset: refused)", ("drop", "reject"),
               default="drop"),
        choice("direction", "in = to the target, out = from it, both", ("in", "out", "both"),
               default="both"),
        choice("protocol", "which packets", ("tcp", "udp"), default="tcp"),
    )

    @classmethod
    def check_target(cls, target: str) -> str:
        match = _HOSTPORT.match(target.strip())
        if match:
            port = int(match.group(2))
            if not 1 <= port <= 65535:
                raise target_error(target, f"port {port} is out of range", "a port 1..65535")
            host = match.group(1).strip("[]")
            return f"{'127.0.0.1' if host == 'localhost' else host}:{port}"
        if _NAME.match(target.strip()):
            return f"provider:{target.strip()}"
        raise target_error(target, f"cannot read {target!r} as HOST:PORT",
                           "HOST:PORT (e.g. 127.0.0.1:9001) or a provider name")

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        identity = cls.check_target(spec.target)
        if identity.startswith("provider:"):
            name = identity.split(":", 1)[1]
            known = ctx.providers.get(name)
            hostport = hostport_of_url(known.url) if known and known.url else None
            if hostport is None:
                raise InvalidInput(f"no address known for provider '{name}'", source="target",
                                   field=spec.name, expected="a stack ready file or HOST:PORT")
        else:
            hostport = identity
        host, _, port = hostport.rpartition(":")
        try:
            info = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise InvalidInput(f"cannot resolve host {host!r}: {exc}", source="target",
                               field=spec.name) from None
        address = str(info[0][4][0])
        family = 6 if ipaddress.ip_address(address).version == 6 else 4
        if os.geteuid() != 0:
            raise EnvironmentProblem("iptables faults need root",
                                     hint="run as root (or drop this fault)")
        tool = binary(family)
        _run([tool, "-w", "-L", "-n"])  # fails now, not mid-drill, without NET_ADMIN
        params = spec.params
        return {"binary": tool, "address": address, "port": int(port), "identity": identity,
                "action": params.get("action", "drop"),
                "direction": params.get("direction", "both"),
                "protocol": params.get("protocol", "tcp")}

    @property
    def comment(self) -> str:
        return f"paystab:{self.uid}"

    def touches(self) -> Resource:
        # The address the rules match, as resolved by prepare(); the target as typed
        # (``localhost:9001``, a DNS name) is not what the rules touch (chaos/allow.py).
        address = canonical_ip(str(self.where["address"])) or str(self.where["address"])
        hostport = f"[{address}]:{self.where['port']}" if ":" in address else \
            f"{address}:{self.where['port']}"
        identity = str(self.where.get("identity") or self.check_target(self.spec.target))
        names = [identity] if identity.startswith("provider:") else []
        return Resource((*names, hostport))

    def inject(self) -> None:
        tool = str(self.where["binary"])
        with _ChainLock():
            ensure_chain(tool)
            for match, jump in rule_specs(self.where):
                rule = [CHAIN, *match, "-m", "comment", "--comment", self.comment, *jump]
                if _run([tool, "-w", "-C", *rule], check=False).returncode == 0:
                    continue  # already there: inject ran before (idempotent)
                _run([tool, "-w", "-A", *rule])

    def clear(self) -> None:
        tool = str(self.where["binary"])
        with _ChainLock():
            for tokens in rules_with_comment(tool, self.comment):
                _run([tool, "-w", "-D", *tokens[1:]], check=False)
            left = rules_with_comment(tool, self.comment)
            if left:
                raise EnvironmentProblem(
                    f"could not delete {len(left)} iptables rule(s) of {self.uid}")
            remove_chain_if_empty(tool)
