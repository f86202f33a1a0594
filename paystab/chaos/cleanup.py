"""Undo what the journal records: ``paystab chaos clear`` and the active-faults metric.

Any process can clear any recorded fault: the record holds everything ``clear`` needs
(see :mod:`paystab.chaos.base`), the kind is looked up in the registry and the fault is
rebuilt with ``from_record``. By default only *orphans* are cleared — faults whose
injecting process is gone (killed, crashed) — since a live owner clears its own faults
when its duration ends; ``--all`` clears everything, and the live owner's later clear is
a harmless no-op because every clear is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from paystab.chaos.journal import Entry, Journal
from paystab.chaos.registry import kinds
from paystab.collector.names import ACTIVE_FAULTS


@dataclass
class ClearResult:
    cleared: list[Entry] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)  # live owner, not asked for
    failed: list[tuple[Entry, str]] = field(default_factory=list)


def clear_recorded(journal: Journal, uids: Sequence[str] = (), *,
                   include_live: bool = False) -> ClearResult:
    """Clear recorded faults (all of ``uids``, or every orphan / every fault)."""
    result = ClearResult()
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
