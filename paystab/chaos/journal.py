"""The fault journal: one file per active fault, on disk before the fault takes effect.

Users point paystab at stacks they care about; a fault must be undone even when the
process that injected it is killed with SIGKILL. So every fault is written here (atomic
write: temp file, fsync, rename, fsync of the directory) *before* it is injected, and the
file is removed only *after* the fault is cleared. Each record names the injecting pid and
its start time, so ``paystab chaos status`` can tell live faults from orphans and
``paystab chaos clear --all`` can rebuild each fault (``Fault.from_record``) and clear it.

Location: ``$PAYSTAB_STATE_DIR``, else ``$XDG_STATE_HOME/paystab``, else
``~/.local/state/paystab``; records live in its ``faults/`` directory as ``<uid>.json``.

Its sibling, :class:`ChildJournal` (``children/<pid>-<start ticks>.json``), records every
process paystab starts (:mod:`paystab.children`): the stack's simulators and gateway,
Prometheus, load workers. They die with paystab on Linux (``PR_SET_PDEATHSIG``); the record
is for when that cannot work, so ``paystab chaos clear`` stops a leftover whose starter is
gone — after checking that the pid still names the very process that was started.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paystab.chaos import procfs


def state_dir() -> Path:
    explicit = os.environ.get("PAYSTAB_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "paystab"


def owner_info() -> dict[str, Any]:
    """Who is injecting: this pid, its start time, host and command line."""
    pid = os.getpid()
    return {"pid": pid, "start_ticks": procfs.start_ticks(pid), "host": socket.gethostname(),
            "argv": redact_argv(procfs.cmdline(pid)[:8])}


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of every ``--token`` hidden: records are files on disk."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif arg == "--token":
            shown.append(arg)
            hide_next = True
        elif arg.startswith("--token="):
            shown.append("--token=***")
        else:
            shown.append(arg)
    return shown


def owner_alive(owner: object) -> bool:
    """The process an ``owner_info()`` names still runs (same pid, start time and host)."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    if owner.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process: we cannot tell, so assume it lives
    ticks = owner.get("start_ticks")
    return procfs.is_same(int(owner["pid"]), int(ticks) if isinstance(ticks, int) else None)


def _write_atomically(directory: Path, name: str, record: Mapping[str, Any]) -> None:
    """Write ``directory/name`` so readers never see half a file, and fsync it."""
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = directory / name
    tmp = directory / f".{target.stem}.{os.getpid()}.tmp"
    data = json.dumps(record, indent=1, sort_keys=True, default=str).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        # Also on a signal raised mid-write: leave no temp file behind.
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One journal file: the record, or why it could not be read."""

    uid: str
    path: Path
    record: dict[str, Any]
    error: str | None = None

    @property
    def owner_pid(self) -> int | None:
        owner = self.record.get("owner") or {}
        pid = owner.get("pid") if isinstance(owner, dict) else None
        return int(pid) if isinstance(pid, int) else None

    @property
    def owner_alive(self) -> bool:
        """The injecting process still runs (same pid, same start time, same host)."""
        return owner_alive(self.record.get("owner"))

    @property
    def state(self) -> str:
        return str(self.record.get("state", "unknown"))


class Journal:
    """The directory of fault records; safe to use from several processes at once."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else state_dir()
        self.dir = self.root / "faults"

    def path(self, uid: str) -> Path:
        if not uid or "/" in uid or uid.startswith("."):
            raise ValueError(f"bad fault uid {uid!r}")
        return self.dir / f"{uid}.json"

    def write(self, record: Mapping[str, Any]) -> None:
        """Write (or replace) one record durably; readers never see half a file."""
        uid = str(record["uid"])
        _write_atomically(self.dir, self.path(uid).name, record)

    def remove(self, uid: str) -> None:
        try:
            self.path(uid).unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.dir)

    def get(self, uid: str) -> Entry | None:
        path = self.path(uid)
        return self._read(path) if path.exists() else None

    def entries(self) -> list[Entry]:
        """Every record, oldest first; unreadable files are entries with ``error`` set."""
        if not self.dir.is_dir():
            return []
        read = [self._read(p) for p in self.dir.glob("*.json")]
        found = [e for e in read if e is not None]
        return sorted(found, key=lambda e: (float(e.record.get("created_at") or 0), e.uid))

    def _read(self, path: Path) -> Entry | None:
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None  # cleared while we listed
        except (OSError, ValueError) as exc:
            return Entry(path.stem, path, {"uid": path.stem}, error=str(exc))
        if not isinstance(record, dict) or "kind" not in record:
            return Entry(path.stem, path, {"uid": path.stem}, error="not a fault record")
        return Entry(path.stem, path, record)

    def sweep_temp_files(self, older_than_s: float = 60.0) -> int:
        """Delete temp files left by writers that died mid-write (their fault never ran)."""
        if not self.dir.is_dir():
            return 0
        removed = 0
        for tmp in self.dir.glob(".*.tmp"):
            pid_text = tmp.name.rsplit(".", 2)[-2]
            alive = pid_text.isdigit() and procfs.state(int(pid_text)) not in (None, "Z")
            try:
                stale = time.time() - tmp.stat().st_mtime > older_than_s
            except FileNotFoundError:
                continue
            if not alive or stale:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed


@dataclass(frozen=True)
class ChildEntry:
    """One process paystab started, as recorded: who it is and who started it."""

    key: str
    path: Path
    pid: int
    start_ticks: int | None
    argv: list[str]
    what: str
    owner: dict[str, Any]

    @property
    def alive(self) -> bool:
        """The very process that was started still runs: same pid, start time, program.

        A pid reused by another program has another start time; the program name
        (``argv[0]``) is checked too, in case the ticks were not recorded.
        """
        if not procfs.is_same(self.pid, self.start_ticks):
            return False
        now = procfs.cmdline(self.pid)
        return not self.argv or (bool(now) and now[0] == self.argv[0])

    @property
    def owner_alive(self) -> bool:
        return owner_alive(self.owner)

    def describe(self) -> str:
        return f"{self.what} (pid {self.pid}: {' '.join(self.argv[:6])})"


class ChildJournal:
    """The ``children/`` directory: one record per process paystab started and still owns."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else state_dir()
        self.dir = self.root / "children"

    def add(self, pid: int, argv: Sequence[str], what: str) -> str:
        """Record the started process ``pid``; answers the key that :meth:`remove` takes."""
        ticks = procfs.start_ticks(pid)
        key = f"{pid}-{ticks}"
        _write_atomically(self.dir, f"{key}.json", {
            "pid": pid, "start_ticks": ticks, "argv": redact_argv(argv)[:40], "what": what,
            "owner": owner_info(), "created_at": time.time()})
        return key

    def remove(self, key: str) -> None:
        try:
            (self.dir / f"{key}.json").unlink()
        except FileNotFoundError:
            pass

    def entries(self) -> list[ChildEntry]:
        """Every readable record; unreadable ones (a writer killed mid-rename) are dropped."""
        if not self.dir.is_dir():
            return []
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                raw = json.loads(path.read_text())
                found.append(ChildEntry(
                    path.stem, path, int(raw["pid"]),
                    int(raw["start_ticks"]) if isinstance(raw.get("start_ticks"), int) else None,
                    [str(a) for a in raw.get("argv") or []], str(raw.get("what") or "process"),
                    dict(raw.get("owner") or {})))
            except FileNotFoundError:
                continue  # removed while we listed
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)  # no pid to act on: nothing to keep it for
        return found

    def forget_gone(self) -> int:
        """Drop the records of processes that have exited (never signals anything)."""
        gone = [e for e in self.entries() if not e.alive]
        for entry in gone:
            self.remove(entry.key)
        return len(gone)
