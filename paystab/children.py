"""Processes paystab starts: they import paystab, not the current directory, and die with it.

Every child — the stack's provider simulators and gateway, Prometheus, Alertmanager, the
alert receiver, load workers — is started through :func:`spawn`, which gives three promises:

- **It dies with its parent**, also when the parent is SIGKILLed. On Linux the child asks
  the kernel for ``PR_SET_PDEATHSIG`` (prctl, called through ctypes between fork and exec)
  and then checks that its parent is still the one that forked it, so a parent killed in
  between is not missed. The kernel sends the signal when the *thread* that forked the
  child exits, not the process: so children are forked either on the main thread (whose
  end is the process's end; in the gevent-patched drill every greenlet runs there) or on
  one long-lived daemon thread (``paystab-spawner``) that serves every other thread — the
  gateway watchdog of ``paystab up`` restarts the gateway through it.
- **It is recorded** in the child journal (:class:`paystab.chaos.journal.ChildJournal`):
  pid, start time from ``/proc``, command (tokens hidden), who started it. Where the death
  signal cannot work (not Linux, a setuid program clears it), ``paystab chaos clear``
  stops a child whose starter is gone — after checking it is still that very process.
- **A Python child imports the paystab its parent runs**: :func:`python_command` adds
  ``-P`` (Python ≥ 3.11: the current directory is not put on ``sys.path``, so a folder
  holding an unrelated ``paystab/`` cannot shadow the package), :func:`child_env` puts
  the directory of the running package first on ``PYTHONPATH`` when it is a source
  checkout rather than an installed package, and drops empty and relative
  ``PYTHONPATH`` entries (an empty entry means "the current directory" even under ``-P``).
  ``-I`` was rejected: it also ignores ``PYTHONPATH``, which people use to find paystab.

Measured before this module: ``paystab up`` SIGKILLed left its simulators and gateway
listening 5 times of 5; run from a folder holding a ``paystab/`` that raises, the children
imported it and ``up`` exited 4. Both are covered by ``tests/test_process_hygiene.py``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import site
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from paystab.chaos.journal import ChildJournal

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the directory holding "paystab/"
_PR_SET_PDEATHSIG = 1

_records: weakref.WeakKeyDictionary[subprocess.Popen[bytes], tuple[ChildJournal, str]] = (
    weakref.WeakKeyDictionary())
_records_lock = threading.Lock()


def python_command(*args: str) -> list[str]:
    """``[python, -P, *args]``: this interpreter, without the current directory on its path."""
    return [sys.executable, "-P", *args]


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with a ``PYTHONPATH`` that finds this paystab first."""
    env = dict(os.environ if base is None else base)
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if str(PACKAGE_ROOT) not in installed:
        entries = [str(PACKAGE_ROOT), *(p for p in entries if p != str(PACKAGE_ROOT))]
    if entries:
        env["PYTHONPATH"] = os.pathsep.join(entries)
    else:
        env.pop("PYTHONPATH", None)
    return env


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()  # resolved here: the child between fork and exec only calls it


def _die_with(parent_pid: int, death_signal: int) -> Callable[[], None]:
    def in_child() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent died before the death signal was armed: follow it
    return in_child


class _Spawner:
    """One daemon thread that forks for every thread other than the main one."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="paystab-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job, result = self._jobs.get()
            try:
                result.set_result(job())
            except BaseException as exc:  # handed to the caller, raised there
                result.set_exception(exc)

    def run(self, job: Callable[[], Any]) -> Any:
        result: Future[Any] = Future()
        self._jobs.put((job, result))
        return result.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _on_main_thread() -> bool:
    # The native id, not threading.main_thread(): under gevent a "thread" is a greenlet
    # and all of them run on the main OS thread, which is what the kernel looks at.
    return threading.get_native_id() == os.getpid()


def _fork_here_or_on_spawner(job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _spawner
    if _on_main_thread():
        return job()
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
        spawner = _spawner
    proc: subprocess.Popen[bytes] = spawner.run(job)
    return proc


def spawn(argv: Sequence[str], *, what: str, death_signal: int = signal.SIGKILL,
          journal: ChildJournal | None = None, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that dies with this process, and record it.

    ``death_signal`` is what the child gets when this process dies: SIGKILL by default,
    since a child frozen by a ``process.stop`` fault cannot act on SIGTERM. Other keyword
    arguments go to :class:`subprocess.Popen` (not ``preexec_fn``: that is taken). Call
    :func:`forget` once the child has exited and been waited for.

    The child gets a session of its own unless told otherwise: a terminal's Ctrl-C goes to
    the foreground process group, and a stack that died of it mid-request would turn the
    checkouts in flight into customer failures the drill then blames on the stack. paystab
    stops its children itself, in order, on Ctrl-C and SIGTERM; the death signal covers the
    rest.
    """
    parent_pid = os.getpid()
    popen.setdefault("start_new_session", True)

    def job() -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            list(argv), preexec_fn=_die_with(parent_pid, death_signal), **popen)
        return proc

    proc = _fork_here_or_on_spawner(job)
    journal = journal or ChildJournal()
    try:
        journal.forget_gone()
        key = journal.add(proc.pid, argv, what)
    except OSError as exc:
        # The death signal still holds; only `chaos clear` will not know this one.
        log.warning("cannot record %s (pid %s) in %s: %s", what, proc.pid, journal.dir, exc)
        return proc
    with _records_lock:
        _records[proc] = (journal, key)
    return proc


def forget(proc: subprocess.Popen[bytes]) -> None:
    """Drop the record of ``proc`` once it has exited; a no-op when it still runs."""
    if proc.poll() is None:
        return
    with _records_lock:
        found = _records.pop(proc, None)
    if found is not None:
        journal, key = found
        journal.remove(key)
