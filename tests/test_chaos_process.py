"""process.* faults on real local processes: stop/continue, kill + restart, safety."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from paystab.chaos import procfs
from paystab.chaos.base import FaultContext, FaultSpec, ProcessRef
from paystab.chaos.process import Kill, Restart, Stop
from paystab.chaos.session import FaultSession
from paystab.exceptions import InvalidInput
from tests.conftest_chaos import Sleeper, sleeper, state, wait_for

__all__ = ["sleeper", "state"]


def test_stop_freezes_and_clear_continues(state: Path, sleeper: Sleeper) -> None:
    with FaultSession() as session:
        fault = session.inject(FaultSpec("freeze", "process.stop", f"pid:{sleeper.pid}"))
        wait_for(lambda: sleeper.state() == "T", what="stopped")
        assert fault.touches().names[0] == f"pid:{sleeper.pid}"
        session.clear(fault)
        wait_for(lambda: sleeper.state() in ("S", "R"), what="running again")
        session.clear(fault)  # idempotent
    assert sleeper.state() in ("S", "R")


def test_kill_then_restart_command_on_clear(state: Path, sleeper: Sleeper, tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    restart = f"{sys.executable} -c \"open('{marker}', 'w').write('up')\""
    with FaultSession() as session:
        session.inject(FaultSpec("kill", "process.kill", f"pid:{sleeper.pid}",
                                 {"signal": "SIGKILL", "restart": restart}))
        wait_for(lambda: sleeper.proc.poll() is not None, what="killed")
        assert not marker.exists()
    wait_for(marker.exists, what="the restart command to run")
    assert (state / "logs").is_dir()


def test_restart_stops_and_starts_again(state: Path, sleeper: Sleeper, tmp_path: Path) -> None:
    marker = tmp_path / "again"
    restart = f"{sys.executable} -c \"open('{marker}', 'w').write('up')\""
    with FaultSession() as session:
        fault = session.inject(FaultSpec("restart", "process.restart", f"pid:{sleeper.pid}",
                                         {"grace": 2.0, "restart": restart}))
        wait_for(lambda: sleeper.proc.poll() is not None, what="the old process gone")
        wait_for(marker.exists, what="restarted")
        assert fault.where["restarted_pid"]
        assert session.journal.get(fault.uid) is not None  # recorded until cleared
    assert session.journal.entries() == []
    other = Sleeper()
    try:
        with pytest.raises(InvalidInput, match="restart command"):
            Restart.prepare(FaultSpec("r", "process.restart", f"pid:{other.pid}"),
                            FaultContext())
    finally:
        other.close()


def test_refuses_itself_its_parents_and_init(state: Path) -> None:
    for pid in (os.getpid(), os.getppid(), 1):
        with pytest.raises(InvalidInput, match="refusing"):
            Stop.prepare(FaultSpec("self", "process.stop", f"pid:{pid}"), FaultContext())


def test_targets_by_pidfile_cmd_and_name(state: Path, sleeper: Sleeper, tmp_path: Path) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    ctx = FaultContext(processes={"worker": ProcessRef(pidfile=str(pidfile))})
    for target in (f"pidfile:{pidfile}", "worker"):
        fault = Stop.prepare(FaultSpec("t", "process.stop", target), ctx)
        assert fault.where["pid"] == sleeper.pid
    assert "process:worker" in Stop.prepare(FaultSpec("t", "process.stop", "worker"),
                                            ctx).touches().names
    with pytest.raises(InvalidInput, match="no process named"):
        Stop.prepare(FaultSpec("t", "process.stop", "nobody"), ctx)
    with pytest.raises(InvalidInput, match="no process"):
        Stop.prepare(FaultSpec("t", "process.stop", "cmd:no-such-command-line-xyz"), ctx)


def test_clear_never_signals_a_reused_pid(state: Path, sleeper: Sleeper) -> None:
    """The journal keeps the start time: a different process on that pid is left alone."""
    fault = Stop.prepare(FaultSpec("t", "process.stop", f"pid:{sleeper.pid}"), FaultContext())
    fault.inject()
    wait_for(lambda: sleeper.state() == "T")
    impostor = Stop.from_record({**fault.record(), "where": {**fault.where,
                                 "start_ticks": int(fault.where["start_ticks"]) + 1}})
    impostor.clear()
    assert sleeper.state() == "T"  # not ours: untouched
    fault.clear()
    wait_for(lambda: sleeper.state() in ("S", "R"))
    assert procfs.is_same(sleeper.pid, fault.where["start_ticks"])


def test_kill_without_restart_is_not_undone(state: Path, sleeper: Sleeper) -> None:
    fault = Kill.prepare(FaultSpec("k", "process.kill", f"pid:{sleeper.pid}",
                                   {"signal": "SIGTERM"}), FaultContext())
    fault.inject()
    wait_for(lambda: sleeper.proc.poll() is not None)
    fault.clear()  # nothing to start again; must not fail
