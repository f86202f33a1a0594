"""Processes paystab starts never outlive it, and never import from the current directory.

Real processes throughout: ``paystab up`` and ``paystab drill`` SIGKILLed (their children,
and Prometheus's when it is installed, must be gone and their ports closed), leftovers
recorded in the child journal stopped by ``paystab chaos clear`` (and a pid reused by
another program left alone), and ``paystab up`` started from a folder whose ``paystab/``
raises on import.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from paystab.chaos import procfs
from paystab.chaos.journal import ChildJournal
from paystab.children import PACKAGE_ROOT, child_env, python_command
from tests.conftest import require
from tests.conftest_chaos import Sleeper, sleeper, wait_for

__all__ = ["sleeper"]

GONE_DEADLINE_S = 15.0


def _paystab_argv(*args: str) -> list[str]:
    """``paystab ARGS`` as a user runs it: the console script, else ``python -P -m``."""
    script = Path(sys.executable).with_name("paystab")
    if script.exists():
        return [str(script), *args]
    return python_command("-m", "paystab", *args)


def _env(state: Path) -> dict[str, str]:
    # child_env: this checkout first on PYTHONPATH, as paystab does for its own children.
    return dict(child_env(), PAYSTAB_STATE_DIR=str(state))


def _descendants(root: int) -> dict[int, int | None]:
    """Every process below ``root`` now: pid → start ticks."""
    children: dict[int, list[int]] = {}
    for pid in procfs.all_pids():
        parent = procfs.parent(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: dict[int, int | None] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = procfs.start_ticks(pid)
        todo += children.get(pid, [])
    return found


def _refused(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def _stack_urls(ready_file: Path) -> list[str]:
    ready = json.loads(ready_file.read_text())
    urls = [ready["gateway_url"], *(p["url"] for p in ready["providers"].values())]
    return urls + [u for u in (ready.get("provider_admin_url"), ready.get("prometheus_url"),
                              ready.get("alertmanager_url")) if u]


class Started:
    """A paystab command in a subprocess, in its own session so a test can always clean up."""

    def __init__(self, argv: list[str], workdir: Path, cwd: Path | None = None) -> None:
        self.log_path = workdir / "paystab.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=_env(workdir / "state"),
                                     cwd=cwd or workdir, start_new_session=True)

    def wait_for_file(self, path: Path, timeout_s: float = 90.0) -> None:
        def there() -> bool:
            assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.log()}"
            return path.exists()
        wait_for(there, timeout_s, f"{path.name} ({self.log()[-500:]})")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        try:  # the whole group: also children left by a failed test
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def started() -> Iterator[list[Started]]:
    handles: list[Started] = []
    yield handles
    for handle in handles:
        handle.close()


def _kill_and_check(run: Started, ready_file: Path) -> None:
    """SIGKILL ``run`` (the process only, not its group) and see all below it go."""
    below = _descendants(run.proc.pid)
    assert below, "paystab started no child process"
    urls = _stack_urls(ready_file)
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(timeout=10)
    wait_for(lambda: not any(procfs.is_same(pid, ticks) for pid, ticks in below.items()),
             GONE_DEADLINE_S, "every child of the killed paystab to exit")
    wait_for(lambda: all(_refused(u) for u in urls), GONE_DEADLINE_S, "the stack's ports to close")


@pytest.mark.slow
def test_sigkilled_up_takes_its_stack_along(tmp_path: Path, started: list[Started]) -> None:
    ready = tmp_path / "ready.json"
    run = Started(_paystab_argv("up", "--port", "0", "--ready-file", str(ready),
                                "--data-dir", str(tmp_path / "data")), tmp_path)
    started.append(run)
    run.wait_for_file(ready)
    # The watchdog (a thread of its own in `up`) restarts a killed gateway: that one too
    # must die with `up`, though the thread that noticed is not the one that forked it.
    first = json.loads(ready.read_text())["gateway_pid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: json.loads(ready.read_text())["gateway_pid"] != first, 60,
             "the gateway to be restarted")
    wait_for(lambda: not _refused(json.loads(ready.read_text())["gateway_url"]), 30,
             "the restarted gateway to listen")
    _kill_and_check(run, ready)
    assert ChildJournal(tmp_path / "state").entries() != []  # recorded: clear tidies up
    clear = subprocess.run(_paystab_argv("chaos", "clear", "--all"), capture_output=True,
                           text=True, env=_env(tmp_path / "state"), timeout=60)
    assert clear.returncode == 0, clear.stderr
    assert ChildJournal(tmp_path / "state").entries() == []


@pytest.mark.slow
@pytest.mark.prometheus
def test_sigkilled_up_takes_prometheus_along(tmp_path: Path, started: list[Started]) -> None:
    require("prometheus", shutil.which("prometheus") is not None, "apt-get install prometheus")
    ready = tmp_path / "ready.json"
    run = Started(_paystab_argv("up", "--port", "0", "--prometheus", "--ready-file", str(ready),
                                "--data-dir", str(tmp_path / "data")), tmp_path)
    started.append(run)
    run.wait_for_file(ready)
    names = {" ".join(procfs.cmdline(pid)[:1]) for pid in _descendants(run.proc.pid)}
    assert any("prometheus" in name for name in names), names
    _kill_and_check(run, ready)


@pytest.mark.slow
def test_sigkilled_drill_takes_its_stack_along(tmp_path: Path, started: list[Started]) -> None:
    out = tmp_path / "out"
    run = Started(_paystab_argv("drill", "provider-timeout", "--no-live", "--out", str(out),
                                "--duration", "120"), tmp_path)
    started.append(run)
    ready = out / "stack" / "ready.json"
    run.wait_for_file(ready, timeout_s=120)
    _kill_and_check(run, ready)


STARTER = textwrap.dedent("""
    import subprocess, sys
    from paystab.chaos.journal import ChildJournal
    argv = [sys.executable, "-c", "import time; time.sleep(600)"]
    child = subprocess.Popen(argv, start_new_session=True,  # no death signal: a leftover
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ChildJournal().add(child.pid, argv, "test leftover")
    print(child.pid, flush=True)
""")


@pytest.mark.parametrize("clear_args", [["clear"], ["clear", "--all"]])
def test_clear_stops_a_leftover_whose_starter_is_gone(tmp_path: Path,
                                                      clear_args: list[str]) -> None:
    state = tmp_path / "state"
    made = subprocess.run([sys.executable, "-P", "-c", STARTER], capture_output=True, text=True,
                          env=_env(state), timeout=60, check=True)
    pid = int(made.stdout.split()[0])
    ticks = procfs.start_ticks(pid)
    try:
        assert procfs.is_same(pid, ticks)  # the starter exited, its child did not
        clear = subprocess.run(_paystab_argv("chaos", *clear_args), capture_output=True,
                               text=True, env=_env(state), timeout=60)
        assert clear.returncode == 0, clear.stderr
        assert f"process-{pid}" in clear.stdout and "test leftover" in clear.stdout
        wait_for(lambda: not procfs.is_same(pid, ticks), GONE_DEADLINE_S, "the leftover to exit")
        assert ChildJournal(state).entries() == []
    finally:
        if procfs.is_same(pid, ticks):
            os.kill(pid, signal.SIGKILL)


def test_clear_leaves_a_reused_pid_alone(tmp_path: Path, sleeper: Sleeper) -> None:
    """Records naming a live pid with another start time, or another program: not touched."""
    state = tmp_path / "state"
    children = ChildJournal(state).dir
    children.mkdir(parents=True)
    dead_owner = {"pid": 999_999_999, "start_ticks": 1, "host": socket.gethostname()}
    ticks = procfs.start_ticks(sleeper.pid)
    assert ticks is not None
    for key, record in {
        "other-start-time": {"pid": sleeper.pid, "start_ticks": ticks + 1,
                             "argv": procfs.cmdline(sleeper.pid)},
        "other-program": {"pid": sleeper.pid, "start_ticks": ticks, "argv": ["/usr/sbin/sshd"]},
    }.items():
        (children / f"{key}.json").write_text(json.dumps(
            dict(record, what="recorded long ago", owner=dead_owner)))
    clear = subprocess.run(_paystab_argv("chaos", "clear", "--all"), capture_output=True,
                           text=True, env=_env(state), timeout=60)
    assert clear.returncode == 0, clear.stderr
    assert sleeper.state() not in (None, "Z")
    assert sleeper.proc.poll() is None
    assert ChildJournal(state).entries() == []  # stale records are dropped


@pytest.mark.slow
def test_up_ignores_a_paystab_folder_in_the_current_directory(tmp_path: Path,
                                                              started: list[Started]) -> None:
    decoy = tmp_path / "checkout"
    (decoy / "paystab").mkdir(parents=True)
    (decoy / "paystab" / "__init__.py").write_text(
        'raise SystemExit("imported the decoy paystab from the current directory")\n')
    ready = tmp_path / "ready.json"
    run = Started(_paystab_argv("up", "--port", "0", "--ready-file", str(ready),
                                "--data-dir", str(tmp_path / "data")), tmp_path, cwd=decoy)
    started.append(run)
    run.wait_for_file(ready)
    argv = [procfs.cmdline(pid) for pid in _descendants(run.proc.pid)]
    assert argv and all("-P" in a for a in argv if "paystab" in a), argv
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=30) == 0, run.log()
    assert "decoy" not in run.log()


def test_child_env_never_points_at_the_current_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["", ".", "relative/dir", "/abs/dir"]))
    entries = child_env()["PYTHONPATH"].split(os.pathsep)
    assert "/abs/dir" in entries
    assert all(os.path.isabs(entry) for entry in entries)
    assert python_command("-m", "x")[:2] == [sys.executable, "-P"]
    assert (PACKAGE_ROOT / "paystab" / "children.py").exists()


@pytest.mark.slow
def test_failed_up_leaves_no_temporary_folder(tmp_path: Path) -> None:
    """A port in use: ``up`` exits 4 and its paystab-stack-* folder is gone."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(_paystab_argv("up", "--port", str(port)), capture_output=True,
                              text=True, env=dict(_env(tmp_path / "state"), TMPDIR=str(temp)),
                              timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr
    assert list(temp.glob("paystab-stack-*")) == []


def test_failed_provider_start_leaves_no_temporary_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``paystab provider`` without ``--data-dir`` on a taken port: no paystab-providers-*."""
    import asyncio
    import tempfile

    from paystab.exceptions import EnvironmentProblem
    from paystab.stack.catalog import ProviderSpec
    from paystab.stack.providers.runner import start_providers

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        spec = ProviderSpec("card-alpha", "alpha", ("card",), port=taken.getsockname()[1])
        with pytest.raises(EnvironmentProblem, match="already in use"):
            asyncio.run(start_providers([spec]))
    assert list(tmp_path.glob("paystab-providers-*")) == []


def test_a_child_outlives_the_short_lived_thread_that_asked_for_it(tmp_path: Path) -> None:
    """The kernel's death signal follows the forking *thread*: threads hand forks over."""
    import threading

    from paystab.children import forget, spawn

    journal = ChildJournal(tmp_path / "state")
    made: list[subprocess.Popen[bytes]] = []
    asker = threading.Thread(target=lambda: made.append(spawn(
        [sys.executable, "-P", "-c", "import time; time.sleep(600)"], what="sleeper",
        journal=journal, stdin=subprocess.DEVNULL)))
    asker.start()
    asker.join()
    wait_for(lambda: not any(t.ident == asker.ident for t in threading.enumerate()),
             what="the asking thread to end")
    (child,) = made
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)  # had that thread forked it, SIGKILL would end it now
        assert [e.pid for e in journal.entries()] == [child.pid]
    finally:
        child.kill()
        child.wait(timeout=10)
    forget(child)
    assert journal.entries() == []
