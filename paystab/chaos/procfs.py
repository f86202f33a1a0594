"""What ``/proc`` says about a local process: alive, stopped, its start time, its command.

A pid alone is not an identity: after a crash the pid may belong to another program by the
time ``paystab chaos clear --all`` runs. The start time in clock ticks since boot
(field 22 of ``/proc/PID/stat``) together with the pid is, so the journal stores both and
nothing signals a process that merely reuses an old pid.
"""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces or ")".
    rest = raw[raw.rfind(")") + 2:].split()
    return [raw[: raw.find(" ")], raw[raw.find("(") + 1: raw.rfind(")")], *rest]


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[21]) if fields and len(fields) > 21 else None


def state(pid: int) -> str | None:
    """One letter: R running, S sleeping, T stopped, Z zombie…; None when gone."""
    fields = _stat_fields(pid)
    return fields[2] if fields else None


def parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


def is_same(pid: int, ticks: int | None) -> bool:
    """The process ``pid`` that started at ``ticks`` still exists (and is not a zombie)."""
    current = start_ticks(pid)
    if current is None or (ticks is not None and current != ticks):
        return False
    return state(pid) not in (None, "Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def ancestors() -> set[int]:
    """This process and every parent up to pid 1: never ours to stop or kill."""
    seen = {os.getpid()}
    pid: int | None = os.getppid()
    while pid and pid not in seen:
        seen.add(pid)
        pid = parent(pid)
    seen.add(1)
    return seen


def all_pids() -> list[int]:
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
