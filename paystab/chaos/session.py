"""FaultSession: inject faults, and clear every one of them whatever happens.

Use it as a context manager around anything that injects faults (the drill runner,
``paystab chaos inject``, tests)::

    with FaultSession(allow=runbook.allow, context=ctx) as session:
        faults = session.prepare([step.spec for step in runbook.faults])  # all checked
        fault = session.inject(faults[0])      # journal first, then the effect
        ...
        session.clear(fault)                   # or leave it: exit clears it

On leaving the block — normally, by an exception, or by SIGINT/SIGTERM/SIGHUP — every fault
still active is cleared and its journal record removed. While the session is open it
installs handlers for those signals (main thread only): a signal during an inject or a
clear is held until that step is complete (so no fault is ever half-applied by an
interruption), then raised as :class:`SessionInterrupted`, a ``BaseException`` that
ordinary ``except Exception`` blocks do not swallow. After clearing, the session turns it
into :class:`~paystab.exceptions.Aborted` (exit 3). If a fault cannot be cleared its
record stays in the journal and the error says to run ``paystab chaos clear --all``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

from paystab.chaos.allow import AllowList
from paystab.chaos.base import Fault, FaultContext, FaultSpec
from paystab.chaos.journal import Journal, owner_info
from paystab.chaos.registry import fault_class
from paystab.exceptions import Aborted, EnvironmentProblem

log = logging.getLogger("paystab.chaos")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SessionInterrupted(BaseException):
    """A signal arrived while faults were active; the session clears them on exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class FaultEvent:
    """When one fault was in effect (``time.monotonic()`` seconds), for the drill report."""

    uid: str
    name: str
    kind: str
    target: str
    params: dict[str, Any]
    injected_at: float
    cleared_at: float | None = None
    description: str = ""


@dataclass
class ClearFailure:
    fault: Fault
    error: BaseException = field(repr=False)

    def __str__(self) -> str:
        return f"{self.fault.uid} ({self.fault.describe()}): {self.error}"


def prepare_faults(specs: Sequence[FaultSpec], context: FaultContext,
                   allow: AllowList | None, allow_source: str = "--allow") -> list[Fault]:
    """Resolve every spec and check the blast radius of all of them; nothing changes."""
    faults = [fault_class(spec.kind).prepare(spec, context) for spec in specs]
    if allow is not None:
        allow.check(faults, allow_source)
    return faults


class FaultSession:
    """Owns the faults it injects until they are cleared; see the module docstring."""

    def __init__(self, allow: AllowList | None = None, context: FaultContext | None = None,
                 *, journal: Journal | None = None, handle_signals: bool = True,
                 allow_source: str = "--allow") -> None:
        self.allow = allow
        self.context = context or FaultContext()
        self.journal = journal or Journal()
        self.allow_source = allow_source
        self.timeline: list[FaultEvent] = []
        self._handle_signals = handle_signals
        self._active: dict[str, Fault] = {}
        self._events: dict[str, FaultEvent] = {}
        self._owner = owner_info()
        self._defer = 0  # >0 while an inject/clear step must not be interrupted
        self._pending: int | None = None
        self._closing = False
        self._saved: dict[int, Any] = {}

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> FaultSession:
        self.journal.sweep_temp_files()
        if self._handle_signals and threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._saved[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closing = True  # from here on, signals are only noted
        try:
            failures = self.clear_all()
        finally:
            for saved_signum, previous in self._saved.items():
                signal.signal(saved_signum, previous)
            self._saved.clear()
        signum = exc.signum if isinstance(exc, SessionInterrupted) else self._pending
        if failures:
            message = (f"{len(failures)} fault(s) could not be cleared: "
                       + "; ".join(str(f) for f in failures))
            hint = "their journal records remain: run `paystab chaos clear --all`"
            if exc is None or signum is not None:
                raise EnvironmentProblem(message, hint=hint) from exc
            log.error("%s (%s)", message, hint)  # do not hide the exception in flight
        if signum is not None:
            name = signal.Signals(signum).name
            cleared = sum(1 for e in self.timeline if e.cleared_at is not None)
            raise Aborted(f"interrupted by {name}; {cleared} fault(s) cleared") from None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._pending is None:
            self._pending = signum
        if self._defer or self._closing:
            return  # raised when the current step is complete (or after clearing)
        raise SessionInterrupted(signum)

    def interrupt(self, signum: int = signal.SIGINT) -> None:
        """Ask the session to stop, for callers that handle signals themselves (a gevent
        drill: ``handle_signals=False`` plus ``gevent.signal_handler``). The next
        :meth:`checkpoint`, inject or clear raises :class:`SessionInterrupted`."""
        if self._pending is None:
            self._pending = signum

    def checkpoint(self) -> None:
        """Raise :class:`SessionInterrupted` if a stop was asked for; call it in loops."""
        if self._pending is not None and not self._defer and not self._closing:
            raise SessionInterrupted(self._pending)

    @contextmanager
    def _uninterrupted(self) -> Iterator[None]:
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
        if not self._defer and not self._closing and self._pending is not None:
            raise SessionInterrupted(self._pending)

    # -- faults --------------------------------------------------------------------------
    @property
    def active(self) -> list[Fault]:
        return list(self._active.values())

    def prepare(self, specs: Sequence[FaultSpec]) -> list[Fault]:
        """Resolve and check all specs (blast radius included) before any is injected."""
        return prepare_faults(specs, self.context, self.allow, self.allow_source)

    def inject(self, fault: Fault | FaultSpec) -> Fault:
        """Record, then inject. A failed inject is cleared again before the error rises."""
        self.checkpoint()
        if isinstance(fault, FaultSpec):
            fault = self.prepare([fault])[0]
        elif self.allow is not None:
            self.allow.check([fault], self.allow_source)
        with self._uninterrupted():
            self._active[fault.uid] = fault
            fault._on_progress = lambda: self._record(fault, "active")
            self._record(fault, "injecting")
            try:
                fault.inject()
            except BaseException:
                try:
                    self._clear_one(fault)
                except Exception as exc:  # it stays active: the exit of the session retries
                    log.warning("could not undo the failed inject of %s: %s", fault.uid, exc)
                raise
            self._record(fault, "active")
            event = FaultEvent(fault.uid, fault.spec.name, fault.kind, fault.spec.target,
                               dict(fault.spec.params), time.monotonic(),
                               description=fault.describe())
            self._events[fault.uid] = event
            self.timeline.append(event)
            log.info("injected %s [%s]", fault.describe(), fault.uid)
        return fault

    def clear(self, fault: Fault) -> None:
        """Clear one fault now (idempotent); its journal record goes once it is undone."""
        with self._uninterrupted():
            self._clear_one(fault)

    def clear_all(self) -> list[ClearFailure]:
        """Clear every active fault, newest first; report the ones that failed."""
        failures = []
        with self._uninterrupted():
            for fault in reversed(self.active):
                try:
                    self._clear_one(fault)
                except Exception as exc:
                    failures.append(ClearFailure(fault, exc))
        return failures

    def _clear_one(self, fault: Fault) -> None:
        fault.clear()
        self.journal.remove(fault.uid)
        self._active.pop(fault.uid, None)
        event = self._events.get(fault.uid)
        if event is not None and event.cleared_at is None:
            event.cleared_at = time.monotonic()
            log.info("cleared %s [%s]", fault.describe(), fault.uid)

    def _record(self, fault: Fault, state: str) -> None:
        record = fault.record()
        record.update(state=state, owner=self._owner)
        self.journal.write(record)
