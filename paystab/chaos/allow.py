"""Blast radius: the list of things a runbook or a command may touch, and the check.

Users run drills against stacks they care about; a typo in a target must never hit the
wrong container. A runbook's ``allow`` (or ``--allow`` on the command line) lists what may
be touched:

  ``HOST:PORT``          a listening address (``127.0.0.1:9001``)
  ``provider:NAME``      a provider, by any backend (admin API, its proxy, its port)
  ``proxy:NAME``         a proxy on a Toxiproxy-API server
  ``container:NAME``     a Docker container (name or id)
  ``pid:N``              a local process; also ``pidfile:PATH``, ``cmd:TEXT``, ``process:NAME``

Names may end in ``*`` (``provider:card-*``). Every fault says what it touches under
every name it is known by (:meth:`Fault.touches`); one allowed name is enough. The check
runs on *all* faults before *any* is injected, and a refusal is exit 2.

Addresses are compared as the IP and port *actually contacted*
(:mod:`paystab.chaos.address`): a fault's address names are IP literals resolved when it
was prepared, and only those count — a name a fault gives with a host name in it
(``psp.example:443``, what the user typed) never permits anything. An allow entry written
with a host name (``psp.example:443``) is resolved at check time and permits the addresses
it resolves to; ``localhost`` means 127.0.0.1 only (a service on ``[::1]`` must be allowed
as ``[::1]:PORT``), and 127.0.0.2 is not 127.0.0.1.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from paystab.chaos.address import canonical_ip, canonical_name, resolve_all
from paystab.chaos.base import Fault
from paystab.exceptions import InvalidInput

PREFIXES = ("provider", "proxy", "container", "pid", "pidfile", "cmd", "process")
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.*-]+):(\d{1,5}|\*)$")
_ADDRESS_LIKE = re.compile(r"^(\[[0-9A-Fa-f:.%]+\]|[^:\[\]]+):(\d{1,5}|\*)$")
FORMS = "HOST:PORT, provider:NAME, proxy:NAME, container:NAME, pid:N, pidfile:PATH, cmd:TEXT"


def normalize(entry: str) -> str:
    """Canonical form of one allow entry; raises ValueError when it is not one."""
    entry = entry.strip()
    prefix, sep, rest = entry.partition(":")
    if sep and prefix in PREFIXES:
        if not rest:
            raise ValueError(f"'{entry}' names nothing after '{prefix}:'")
        if prefix == "pid" and not (rest.isdigit() or rest == "*"):
            raise ValueError(f"'{entry}': a pid is a number")
        return f"{prefix}:{rest}"
    match = _HOSTPORT.match(entry)
    if match:
        host, port = match.group(1).strip("[]"), match.group(2)
        if port != "*" and not 1 <= int(port) <= 65535:
            raise ValueError(f"'{entry}': port out of range")
        if host.lower() == "localhost":
            host = "127.0.0.1"
        ip = canonical_ip(host)
        if ip is not None:
            return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        return f"{host.lower()}:{port}"
    raise ValueError(f"cannot read '{entry}' as something to allow")


@dataclass(frozen=True)
class AllowList:
    entries: tuple[str, ...]

    @classmethod
    def parse(cls, items: Iterable[str], source: str = "--allow",
              lines: Sequence[int | None] | None = None, field: str = "allow") -> AllowList:
        entries = []
        for index, item in enumerate(items):
            try:
                entries.append(normalize(item))
            except ValueError as exc:
                line = lines[index] if lines and index < len(lines) else None
                raise InvalidInput(str(exc), source=source, line=line,
                                   field=f"{field}[{index}]" if lines else None,
                                   expected=FORMS) from None
        return cls(tuple(dict.fromkeys(entries)))

    def permits_name(self, name: str) -> bool:
        if _ADDRESS_LIKE.match(name) and not name.startswith(tuple(f"{p}:" for p in PREFIXES)):
            address = canonical_name(name)
            if address is None:
                return False  # a host name as written, not the address contacted
            name = address
            return any(self._entry_permits(entry, name) for entry in self.entries)
        return any(entry == name or ("*" in entry and fnmatch.fnmatchcase(name, entry))
                   for entry in self.entries)

    @staticmethod
    def _entry_permits(entry: str, address: str) -> bool:
        if entry == address or ("*" in entry and fnmatch.fnmatchcase(address, entry)):
            return True
        host, _, port = entry.rpartition(":")
        if "*" in host or canonical_ip(host) is not None or "[" in host:
            return False
        # a host name: whatever it resolves to now (the fault's address was resolved too)
        wanted_port = address.rpartition(":")[2]
        if port not in ("*", wanted_port):
            return False
        return address in resolve_all(host, int(wanted_port))

    def permits(self, names: Iterable[str]) -> bool:
        return any(self.permits_name(n) for n in names)

    def check(self, faults: Sequence[Fault], source: str = "--allow") -> None:
        """Refuse (exit 2) if any fault touches something not allowed; nothing is injected."""
        refused = [f for f in faults if not self.permits(f.touches().names)]
        if not refused:
            return
        lines = [f"{f.spec.name}: {f.kind} touches {f.touches()}" for f in refused]
        raise InvalidInput(
            "outside the blast radius: " + "; ".join(lines), source=source,
            expected="targets listed in allow (" + (", ".join(self.entries) or "empty") + ")",
            hint="add the target to the runbook's allow list or to --allow, if it is safe",
        )
