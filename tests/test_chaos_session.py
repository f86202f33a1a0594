"""FaultSession and the journal: recorded before, removed after, cleared whatever happens.

Uses process.stop on real sleeping processes (the cheapest real fault). The signal and
SIGKILL paths run ``paystab chaos inject`` in a subprocess, like a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from paystab.chaos.allow import AllowList
from paystab.chaos.base import FaultContext, FaultSpec
from paystab.chaos.cleanup import ActiveFaultsCollector, clear_recorded
from paystab.chaos.journal import Journal
from paystab.chaos.process import Stop
from paystab.chaos.session import FaultSession
from paystab.exceptions import Aborted, InvalidInput
from tests.conftest_chaos import ROOT, Sleeper, env_with_state, paystab, sleeper, state, wait_for

__all__ = ["sleeper", "state"]


def _stopped(s: Sleeper) -> bool:
    return s.state() == "T"


def test_record_is_on_disk_before_the_fault_takes_effect(state: Path, sleeper: Sleeper) -> None:
    seen: list[Any] = []

    class Watched(Stop):
        def inject(self) -> None:
            entry = Journal().get(self.uid)
            seen.append((entry.state if entry else None, sleeper.state()))
            super().inject()

    fault = Watched.prepare(FaultSpec("w", "process.stop", f"pid:{sleeper.pid}"), FaultContext())
    with FaultSession() as session:
        session.inject(fault)
        entry = session.journal.get(fault.uid)
        assert entry is not None and entry.state == "active" and entry.owner_alive
        assert entry.record["owner"]["pid"] == os.getpid()
        assert entry.record["where"]["pid"] == sleeper.pid
    assert len(seen) == 1 and seen[0][0] == "injecting" and seen[0][1] != "T"
    assert Journal().entries() == [] and not list((state / "faults").iterdir())


def test_exception_in_the_block_clears(state: Path, sleeper: Sleeper) -> None:
    with pytest.raises(RuntimeError), FaultSession() as session:
        session.inject(FaultSpec("x", "process.stop", f"pid:{sleeper.pid}"))
        wait_for(lambda: _stopped(sleeper))
        raise RuntimeError("the drill failed")
    assert sleeper.state() != "T"
    assert session.timeline[0].cleared_at is not None
    assert Journal().entries() == []


def test_failed_inject_is_rolled_back(state: Path, sleeper: Sleeper) -> None:
    class Broken(Stop):
        def inject(self) -> None:
            super().inject()
            raise OSError("half-way")

    fault = Broken.prepare(FaultSpec("b", "process.stop", f"pid:{sleeper.pid}"), FaultContext())
    with FaultSession() as session, pytest.raises(OSError):
        session.inject(fault)
    assert sleeper.state() != "T" and session.active == [] and Journal().entries() == []


def test_blast_radius_refuses_before_anything_is_injected(state: Path) -> None:
    a, b = Sleeper(), Sleeper()
    try:
        allow = AllowList.parse([f"pid:{a.pid}"])
        with FaultSession(allow=allow) as session, pytest.raises(InvalidInput) as err:
            faults = session.prepare([FaultSpec("a", "process.stop", f"pid:{a.pid}"),
                                      FaultSpec("b", "process.stop", f"pid:{b.pid}")])
            for fault in faults:
                session.inject(fault)
        assert err.value.exit_code == 2 and f"pid:{b.pid}" in err.value.message
        assert a.state() != "T" and b.state() != "T" and Journal().entries() == []
    finally:
        a.close()
        b.close()


def test_signal_inside_the_session_clears_then_aborts(state: Path, sleeper: Sleeper) -> None:
    """In-process: SIGTERM raises at a safe point; exit raises Aborted (exit 3)."""
    with pytest.raises(Aborted, match="SIGTERM") as err, FaultSession() as session:
        session.inject(FaultSpec("x", "process.stop", f"pid:{sleeper.pid}"))
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: False, 5, "the signal")  # interrupted by the handler
    assert err.value.exit_code == 3
    assert sleeper.state() != "T" and Journal().entries() == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def _inject_cli(state: Path, target: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "paystab", "chaos", "inject", "process.stop", "--target", target,
         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env_with_state(state), cwd=ROOT)
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_inject_is_cleared_on_signal(state: Path, sleeper: Sleeper, signum: int) -> None:
    proc = _inject_cli(state, f"pid:{sleeper.pid}", "--duration", "60s")
    wait_for(lambda: _stopped(sleeper), 20, "the fault")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 3, err
    assert "interrupted" in err
    assert sleeper.state() != "T" and Journal().entries() == []


def test_cli_inject_holds_for_the_duration(state: Path, sleeper: Sleeper) -> None:
    proc = _inject_cli(state, f"pid:{sleeper.pid}", "--duration", "300ms")
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "injected process.stop" in err and "cleared" in err
    assert sleeper.state() != "T" and Journal().entries() == []


def test_sigkill_leaves_an_orphan_that_clear_undoes(state: Path, sleeper: Sleeper) -> None:
    proc = _inject_cli(state, f"pid:{sleeper.pid}", "--duration", "60s")
    wait_for(lambda: _stopped(sleeper) and Journal().entries(), 20, "the fault")
    proc.kill()
    proc.wait(timeout=10)
    assert _stopped(sleeper)
    status = json.loads(paystab("chaos", "status", "--json", state=state).stdout)
    [row] = status["faults"]
    assert row["kind"] == "process.stop" and row["owner_alive"] is False
    assert "GONE" in paystab("chaos", "status", state=state).stdout
    done = paystab("chaos", "clear", "--all", state=state)
    assert done.returncode == 0, done.stderr
    assert f"cleared {row['uid']}" in done.stdout
    assert sleeper.state() != "T" and Journal().entries() == []
    assert "nothing to clear" in paystab("chaos", "clear", state=state).stdout


def test_clear_leaves_live_owners_alone_unless_all(state: Path, sleeper: Sleeper) -> None:
    with FaultSession() as session:
        fault = session.inject(FaultSpec("x", "process.stop", f"pid:{sleeper.pid}"))
        result = clear_recorded(Journal())
        assert result.skipped and not result.cleared
        wait_for(lambda: _stopped(sleeper), 20, "the fault")  # SIGSTOP lands asynchronously
        result = clear_recorded(Journal(), [fault.uid])
        assert [e.uid for e in result.cleared] == [fault.uid]
        wait_for(lambda: not _stopped(sleeper))
    assert clear_recorded(Journal(), ["nope"]).failed


def test_bad_input_is_exit_2_and_injects_nothing(state: Path, sleeper: Sleeper) -> None:
    cases = [
        ["chaos", "inject", "process.stpo", "--target", f"pid:{sleeper.pid}"],
        ["chaos", "inject", "process.kill", "--target", f"pid:{sleeper.pid}", "-p", "signal=9"],
        ["chaos", "inject", "process.stop", "--target", f"pid:{sleeper.pid}", "-p", "x=1"],
        ["chaos", "inject", "process.stop", "--target", f"pid:{sleeper.pid}", "-d", "soon"],
        ["chaos", "inject", "process.stop", "--target", f"pid:{sleeper.pid}",
         "--allow", "pid:1"],
        ["chaos", "inject", "process.stop", "--target", "pid:nope"],
    ]
    for argv in cases:
        done = paystab(*argv, state=state)
        assert done.returncode == 2, (argv, done.stderr)
        assert done.stderr.startswith("paystab: ") and "Traceback" not in done.stderr
    assert sleeper.state() != "T" and Journal().entries() == []


def test_active_faults_metric_reads_the_journal(state: Path, sleeper: Sleeper) -> None:
    registry = CollectorRegistry()
    registry.register(ActiveFaultsCollector(Journal(), kinds_shown=["process.stop"]))
    assert b'paystab_active_faults{kind="process.stop"} 0.0' in generate_latest(registry)
    with FaultSession() as session:
        session.inject(FaultSpec("x", "process.stop", f"pid:{sleeper.pid}"))
        assert b'paystab_active_faults{kind="process.stop"} 1.0' in generate_latest(registry)
    assert b'paystab_active_faults{kind="process.stop"} 0.0' in generate_latest(registry)


def test_journal_survives_garbage(state: Path) -> None:
    journal = Journal()
    journal.dir.mkdir(parents=True)
    (journal.dir / "broken.json").write_text("{not json")
    (journal.dir / ".half.999999999.tmp").write_text("{")
    [entry] = journal.entries()
    assert entry.error and entry.uid == "broken"
    assert journal.sweep_temp_files() == 1
    result = clear_recorded(journal, include_live=True)
    assert result.failed and "unreadable" in result.failed[0][1]
    with pytest.raises(ValueError):
        journal.path("../escape")


def test_interrupt_without_signal_handlers(state: Path, sleeper: Sleeper) -> None:
    """The path for a drill that handles signals itself (gevent): interrupt + checkpoint."""
    with pytest.raises(Aborted, match="SIGTERM"), \
            FaultSession(handle_signals=False) as session:
        session.inject(FaultSpec("x", "process.stop", f"pid:{sleeper.pid}"))
        session.checkpoint()  # nothing asked yet
        session.interrupt(signal.SIGTERM)
        session.checkpoint()
    assert sleeper.state() != "T" and Journal().entries() == []


def test_cli_inject_without_duration_ends_cleanly_on_ctrl_c(state: Path,
                                                             sleeper: Sleeper) -> None:
    proc = _inject_cli(state, f"pid:{sleeper.pid}")
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    wait_for(lambda: _stopped(sleeper), 20, "the fault")
    # The fault takes effect before the command says it holds it: interrupt only once it has.
    wait_for(lambda: any("until Ctrl-C" in line for line in lines), 20, "the hold message")
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    reader.join(timeout=5)
    err = "".join(lines)
    assert proc.returncode == 0, err
    assert "until Ctrl-C" in err and "cleared" in err
    assert sleeper.state() != "T" and Journal().entries() == []
