"""Undo what the journal records: ``paystab chaos clear`` and the active-faults metric.

Any process can clear any recorded fault: the record holds everything ``clear`` needs
(see :mod:`paystab.chaos.base`), the kind is looked up in the registry and the fault is
rebuilt with ``from_record``. By default only *orphans* are cleared — faults whose
injecting process is gone (killed, crashed) — since a live owner clears its own faults
when its duration ends; ``--all`` clears everything, and the live owner's later clear is
a harmless no-op because every clear is idempotent.

Processes paystab started (the child journal, see :mod:`paystab.children`) are stopped
here too when the process that started them is gone — normally the kernel's death signal
has already done it, and the record is only dropped. A process whose starter still runs
is left to it, also with ``--all``: it is that paystab's stack, not a fault. Before any
signal the pid must still name the recorded process (same start time and program), so
a pid reused by something else is never touched.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from paystab.chaos import procfs
from paystab.chaos.journal import ChildEntry, ChildJournal, Entry, Journal
from paystab.chaos.registry import kinds
from paystab.collector.names import ACTIVE_FAULTS


@dataclass
class ClearResult:
    cleared: list[Entry] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)  # live owner, not asked for
    failed: list[tuple[Entry, str]] = field(default_factory=list)


def clear_recorded(journal: Journal, uids: Sequence[str] = (), *,
                   include_live: bool = False) -> ClearResult:
    """Clear recorded faults (all of ``uids``, or every orphan / every fault).

    Without ``uids`` it also stops leftover processes (:func:`stop_leftovers`); they are
    reported as entries whose uid is ``process-<pid>``.
    """
    result = ClearResult()
    if not uids:
        stopped, failed = stop_leftovers(ChildJournal(journal.root))
        result.cleared += [_process_entry(e, "stopped leftover ") for e in stopped]
        result.failed += [(_process_entry(e, ""), why) for e, why in failed]
    journal.sweep_temp_files()
    known = kinds()
    wanted = set(uids)
    entries = journal.entries()
    if wanted:
        missing = wanted - {e.uid for e in entries}
        result.failed += [(Entry(u, journal.path(u), {"uid": u}), "no such fault in the journal")
                          for u in sorted(missing)]
    for entry in reversed(entries):  # newest first, as a session would
        if wanted and entry.uid not in wanted:
            continue
        if not wanted and not include_live and entry.owner_alive:
            result.skipped.append(entry)
            continue
        if entry.error is not None:
            result.failed.append((entry, f"unreadable record: {entry.error}"))
            continue
        cls = known.get(str(entry.record.get("kind")))
        if cls is None:
            result.failed.append((entry, f"unknown fault kind {entry.record.get('kind')!r}"))
            continue
        try:
            cls.from_record(entry.record).clear()
        except Exception as exc:
            result.failed.append((entry, str(exc)))
            continue
        journal.remove(entry.uid)
        result.cleared.append(entry)
    return result


def _process_entry(child: ChildEntry, verb: str) -> Entry:
    return Entry(f"process-{child.pid}", child.path,
                 {"uid": f"process-{child.pid}", "kind": "process",
                  "description": verb + child.describe()})


def stop_leftovers(children: ChildJournal, grace_s: float = 5.0
                   ) -> tuple[list[ChildEntry], list[tuple[ChildEntry, str]]]:
    """Stop recorded children whose starter is gone: SIGTERM, SIGKILL after ``grace_s``.

    Answers (stopped, failed with why). Records of processes that already exited, or
    whose pid now names another process, are dropped without a signal. Runs a few
    rounds, because stopping a leftover orphans the children it had started itself.
    """
    stopped: list[ChildEntry] = []
    failed: list[tuple[ChildEntry, str]] = []
    spared = procfs.ancestors()
    for _round in range(4):
        leftovers = []
        for entry in children.entries():
            if not entry.alive:
                children.remove(entry.key)  # exited, or its pid was reused: not ours
            elif not entry.owner_alive and entry.pid not in spared \
                    and entry.key not in {e.key for e, _ in failed}:
                leftovers.append(entry)
        if not leftovers:
            break
        for entry in leftovers:
            _signal(entry, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            _signal(entry, signal.SIGTERM)
        still = _wait_gone(leftovers, grace_s)
        for entry in still:
            _signal(entry, signal.SIGKILL)
        still = _wait_gone(still, 5.0)
        for entry in leftovers:
            if entry in still:
                failed.append((entry, "still running after SIGKILL"))
            else:
                children.remove(entry.key)
                stopped.append(entry)
    return stopped, failed


def _signal(entry: ChildEntry, signum: int) -> None:
    if not entry.alive:
        return  # checked right before every signal: the pid may have been reused since
    try:
        os.kill(entry.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # gone, or not ours to signal: the wait below tells


def _wait_gone(entries: list[ChildEntry], timeout_s: float) -> list[ChildEntry]:
    deadline = time.monotonic() + timeout_s
    alive = [e for e in entries if e.alive]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [e for e in alive if e.alive]
    return alive


class ActiveFaultsCollector:
    """Prometheus collector: ``paystab_active_faults{kind}`` read from the journal.

    Register it on the registry that serves ``/metrics`` (never the global default at
    import time): ``registry.register(ActiveFaultsCollector(Journal()))``. It counts the
    faults of every process that shares the state directory, not only this one's.
    """

    def __init__(self, journal: Journal, kinds_shown: Iterable[str] = ()) -> None:
        self.journal = journal
        self.kinds_shown = tuple(kinds_shown)

    def describe(self) -> list[object]:
        return []  # collected lazily; the journal may change between scrapes

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import GaugeMetricFamily

        counts = dict.fromkeys(self.kinds_shown, 0)
        for entry in self.journal.entries():
            kind = str(entry.record.get("kind", "unknown"))
            counts[kind] = counts.get(kind, 0) + 1
        family = GaugeMetricFamily(ACTIVE_FAULTS, "Faults injected by paystab and not yet "
                                   "cleared (from the fault journal)", labels=["kind"])
        for kind, count in sorted(counts.items()):
            family.add_metric([kind], count)
        yield family
