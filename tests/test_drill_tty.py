"""``paystab drill`` in a real terminal: the live view advances, and Ctrl-C or SIGTERM end it.

The drill runs in a pseudo-terminal (``os.openpty``) so rich sees a TTY and draws the live
view, exactly as a person at a terminal gets it. The screen is read as it is drawn (ANSI
control sequences stripped); the view's header shows ``[phase]  12.3 s / 20 s``, and the test
waits for that elapsed time to grow before it sends the signal. Piped output, the other way a
drill is run, is checked the same way without a terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from paystab.report.schema import schema_problems

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-Za-z])")
ELAPSED = re.compile(r"\[([a-z() -]+)\]\s+(\d+\.\d) s /")
SUMMARY_MARK = "Customer traffic"  # a section title of the terminal summary
PIPED_MARK = "verdict: ABORTED"  # the first line of the piped summary
DEADLINE_S = 150.0


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"), TERM="xterm-256color",
               COLUMNS="140", LINES="60", PYTHONUNBUFFERED="1")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    return env


class TerminalDrill:
    """A drill whose stdin, stdout and stderr are one pseudo-terminal of 140×60."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.out = tmp_path / "out"
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 140, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paystab", "drill", "--out", str(self.out), *args],
            stdin=slave, stdout=slave, stderr=slave, env=_env(tmp_path), cwd=tmp_path,
            start_new_session=True)
        os.close(slave)
        self.raw = b""

    def _read(self, wait_s: float) -> bool:
        """Read what the drill drew within ``wait_s``; False once the terminal is closed."""
        ready, _, _ = select.select([self.master], [], [], wait_s)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            return False
        self.raw += data
        return bool(data)

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", errors="replace"))

    def wait_for(self, condition: Callable[[str], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not condition(self.screen):
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self._read(0.1)):
                raise AssertionError(f"never saw {what}; last screen:\n{self.screen[-3000:]}")
            self._read(0.2)

    def finish(self) -> int:
        """Drain the terminal until the drill exits; its exit code."""
        deadline = time.monotonic() + DEADLINE_S
        while self._read(0.2) and time.monotonic() < deadline:
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0.2)[0]:
                break
        return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # only if the test failed before the drill ended
            self.proc.wait(timeout=30)
        os.close(self.master)


def elapsed_in_load(screen: str) -> list[float]:
    return [float(s) for phase, s in ELAPSED.findall(screen) if phase == "load"]


def assert_aborted_with_reports(out: Path, output: str, signal_name: str, piped: bool = False) -> None:
    assert (out / "report.html").stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert schema_problems(report) == []
    assert report["verdict"] == "aborted" and signal_name in (report["abort_reason"] or "")
    # A terminal gets the rich summary; a pipe one fact per line.
    assert (PIPED_MARK if piped else SUMMARY_MARK) in output and "ABORTED" in output
    assert "Traceback" not in output, output[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_the_live_view_advances_and_a_signal_exits_3_with_both_reports(
        tmp_path: Path, sig: signal.Signals) -> None:
    drill = TerminalDrill(tmp_path, "--duration", "20")
    try:
        drill.wait_for(lambda s: "paystab drill" in s and "[starting" in s, "the live view")
        # The view must advance on its own: several distinct elapsed times while loading.
        drill.wait_for(lambda s: len(set(elapsed_in_load(s))) >= 4 and max(elapsed_in_load(s)) >= 3.0,
                       "the elapsed time growing during the load")
        seen = elapsed_in_load(drill.screen)
        assert seen == sorted(seen), seen
        assert "[starting the stack]" in drill.screen  # phases before the load are shown too
        drill.proc.send_signal(sig)
        code = drill.finish()
        screen = drill.screen
    finally:
        drill.close()
    assert code == 3, screen[-4000:]
    assert_aborted_with_reports(drill.out, screen, sig.name)


@pytest.mark.slow
def test_piped_output_has_phase_lines_and_no_live_view(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "paystab", "drill", "--duration", "20",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=_env(tmp_path), cwd=tmp_path, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    for line in proc.stderr:  # phase lines arrive one by one: wait for the load to start
        seen.append(line)
        if "drill: load" in line or time.monotonic() > deadline:
            break
    assert any("drill: load" in line for line in seen), "".join(seen)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=DEADLINE_S)
    stderr = "".join(seen) + stderr
    assert proc.returncode == 3, stdout[-3000:] + stderr[-3000:]
    assert "paystab drill" not in stderr and "\x1b[" not in stdout + stderr  # no live view, no colour
    assert "drill: stopping" in stderr
    assert_aborted_with_reports(out, stdout + stderr, "SIGINT", piped=True)
