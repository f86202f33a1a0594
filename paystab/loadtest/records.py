"""One record per checkout, and the sink that gathers them from every process.

A record is the customer's side of the truth: when the checkout started, what it paid
with, how it ended (``approved``/``declined``/``pending``/``failed`` — pending is an answer,
only ``failed`` counts against availability), how long the customer waited including client
retries, and how many HTTP attempts it took. Records travel from worker processes to the
master as plain lists (``to_row``/``from_row``), so the wire format is defined here.

The sink also keeps dropped arrivals per 100 ms tick (coordinated omission made visible) and,
per producing process, a *watermark*: every checkout that started before it has been
recorded. Windowed evaluation waits for the watermark so a window is never judged on half
of its records.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

OUTCOMES = ("approved", "declined", "pending", "failed")
DROP_TICK_S = 0.1  # dropped arrivals are counted per 100 ms tick (key = int(epoch / tick))
ANSWERED = frozenset({"approved", "declined", "pending"})


class CheckoutRecord(NamedTuple):
    """What one customer experienced. Never holds a card number.

    A named tuple rather than a dataclass: the generator makes one per checkout at tens of
    thousands per second, and a tuple is built in a fraction of the time.
    """

    started_at: float  # wall clock (epoch s) when the checkout began
    method: str
    currency: str
    outcome: str  # approved | declined | pending | failed
    status: str  # final payment status, or why it failed: http_503, timeout, connect_error…
    code: str  # the gateway's unified code ("approved", "declined.fraud"…) or ""
    latency_ms: float  # first byte sent → final answer, including retries and backoff
    attempts: int  # HTTP requests made with this checkout's Idempotency-Key
    http_status: int  # of the last attempt; 0 when no response arrived
    lag_ms: float = 0.0  # scheduled arrival → start: lateness of the generator itself
    stream: int = 0  # which process produced it
    seq: int = 0  # arrival number within the stream

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    @property
    def answered(self) -> bool:
        return self.outcome in ANSWERED

    def to_row(self) -> list[Any]:
        return [self.started_at, self.method, self.currency, self.outcome, self.status,
                self.code, self.latency_ms, self.attempts, self.http_status, self.lag_ms,
                self.stream, self.seq]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> CheckoutRecord:
        return cls(float(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                   str(row[5]), float(row[6]), int(row[7]), int(row[8]), float(row[9]),
                   int(row[10]), int(row[11]))


CSV_COLUMNS = ("started_at", "method", "currency", "outcome", "status", "code", "latency_ms",
               "attempts", "retries", "http_status", "lag_ms", "stream", "seq")


def write_csv(records: Iterable[CheckoutRecord], path: str | Path) -> int:
    """One line per checkout; returns how many were written."""
    count = 0
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in records:
            writer.writerow([f"{r.started_at:.6f}", r.method, r.currency, r.outcome, r.status,
                             r.code, f"{r.latency_ms:.3f}", r.attempts, r.retries, r.http_status,
                             f"{r.lag_ms:.3f}", r.stream, r.seq])
            count += 1
    return count


@dataclass
class SourceState:
    """What the sink knows about one producing process."""

    inflight: int = 0
    watermark: float = 0.0  # every checkout started before this (epoch s) is recorded
    done: bool = False  # its pacer finished and its last checkout is recorded
    issued: int = 0  # arrivals scheduled (taken + dropped)
    cpu_s: float = 0.0  # CPU time of the process while its pacer ran
    max_lag_ms: float = 0.0


@dataclass
class RecordSink:
    """Collects records and dropped arrivals; calls ``on_record`` for each record."""

    on_record: Callable[[CheckoutRecord], None] | None = None
    records: list[CheckoutRecord] = field(default_factory=list)
    dropped_by_tick: dict[int, int] = field(default_factory=dict)
    sources: dict[str, SourceState] = field(default_factory=dict)
    callback_errors: int = 0

    def add(self, record: CheckoutRecord) -> None:
        self.records.append(record)
        if self.on_record is not None:
            try:
                self.on_record(record)
            except Exception:
                # A consumer's bug must not stop the load; count it, the runner reports it.
                self.callback_errors += 1

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.add(CheckoutRecord.from_row(row))

    def add_dropped(self, tick: int, count: int) -> None:
        self.dropped_by_tick[tick] = self.dropped_by_tick.get(tick, 0) + count

    def source(self, name: str) -> SourceState:
        state = self.sources.get(name)
        if state is None:
            state = self.sources[name] = SourceState()
        return state

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped_by_tick.values())

    @property
    def inflight(self) -> int:
        return sum(s.inflight for s in self.sources.values())

    def watermark(self) -> float:
        """Everything that started before this time is in ``records`` (0 if no source yet)."""
        if not self.sources:
            return 0.0
        return min(s.watermark for s in self.sources.values())

    def all_done(self, expected_sources: int) -> bool:
        done = [s for s in self.sources.values() if s.done]
        return len(done) >= expected_sources

    def recent(self, seconds: float, now: float | None = None) -> list[CheckoutRecord]:
        """Records that started within the last ``seconds`` (for the live view)."""
        cutoff = (time.time() if now is None else now) - seconds
        out: list[CheckoutRecord] = []
        for r in reversed(self.records):
            if r.started_at < cutoff - 30.0:  # records arrive roughly in start order
                break
            if r.started_at >= cutoff:
                out.append(r)
        return out
