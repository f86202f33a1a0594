"""The fault journal: one file per active fault, on disk before the fault takes effect.

Users point paystab at stacks they care about; a fault must be undone even when the
process that injected it is killed with SIGKILL. So every fault is written here (atomic
write: temp file, fsync, rename, fsync of the directory) *before* it is injected, and the
file is removed only *after* the fault is cleared. Each record names the injecting pid and
its start time, so ``paystab chaos status`` can tell live faults from orphans and
``paystab chaos clear --all`` can rebuild each fault (``Fault.from_record``) and clear it.

Location: ``$PAYSTAB_STATE_DIR``, else ``$XDG_STATE_HOME/paystab``, else
``~/.local/state/paystab``; records live in its ``faults/`` directory as ``<uid>.json``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
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
            "argv": procfs.cmdline(pid)[:8]}


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
        owner = self.record.get("owner") or {}
        if not isinstance(owner, dict) or self.owner_pid is None:
            return False
        if owner.get("host") not in (None, socket.gethostname()):
            return True  # another machine's process: we cannot tell, so assume it lives
        ticks = owner.get("start_ticks")
        return procfs.is_same(self.owner_pid, int(ticks) if isinstance(ticks, int) else None)

    @property
    def state(self) -> str:
        return str(self.record.get("state", "unknown"))


class Journal:
    """The directory of fault records; safe to use from several processes at once."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else state_dir()
        self.dir = self.root / "faults"

    def _ensure_dir(self) -> None:
        if not self.dir.is_dir():
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, uid: str) -> Path:
        if not uid or "/" in uid or uid.startswith("."):
            raise ValueError(f"bad fault uid {uid!r}")
        return self.dir / f"{uid}.json"

    def write(self, record: Mapping[str, Any]) -> None:
        """Write (or replace) one record durably; readers never see half a file."""
        self._ensure_dir()
        uid = str(record["uid"])
        target = self.path(uid)
        tmp = self.dir / f".{uid}.{os.getpid()}.tmp"
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
        self._fsync_dir()

    def remove(self, uid: str) -> None:
        try:
            self.path(uid).unlink()
        except FileNotFoundError:
            return
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
