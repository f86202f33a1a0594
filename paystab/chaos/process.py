"""Faults on a local process: freeze (SIGSTOP/SIGCONT), kill, restart.

Target: ``pid:N``, ``pidfile:PATH``, ``cmd:TEXT`` (the one process whose command line
contains TEXT) or a name the stack or runbook defines (``gateway``). The journal stores
the pid *and its start time*: ``clear`` signals only that very process, never one that
reused its pid. paystab refuses to touch itself, its parents and pid 1. A killed process
comes back on clear only when a ``restart`` command is known (the parameter, or the
runbook's ``processes`` entry); its output goes to ``<state dir>/logs/<uid>.log``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from paystab.chaos import procfs
from paystab.chaos.base import (
    Fault,
    FaultContext,
    FaultSpec,
    ProcessRef,
    Resource,
    register,
    target_error,
)
from paystab.chaos.journal import state_dir
from paystab.chaos.params import Param, choice, duration, text
from paystab.exceptions import EnvironmentProblem, InvalidInput

SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGABRT")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def _bad(spec: FaultSpec, problem: str, expected: str | None = None) -> InvalidInput:
    return InvalidInput(problem, source="target", field=spec.name, expected=expected)


def find_pid(spec: FaultSpec, target: str) -> int:
    """The one pid a ``pid:``/``pidfile:``/``cmd:`` target names right now."""
    how, _, what = target.partition(":")
    if how == "pid":
        pid = int(what)
    elif how == "pidfile":
        try:
            pid = int(Path(what).read_text().split()[0])
        except (OSError, ValueError, IndexError) as exc:
            raise _bad(spec, f"cannot read a pid from {what}: {exc}") from None
    else:
        mine = procfs.ancestors()
        pids = [p for p in procfs.all_pids()
                if p not in mine and what in " ".join(procfs.cmdline(p))]
        if len(pids) != 1:
            problem = "no process" if not pids else f"{len(pids)} processes ({pids[:5]})"
            raise _bad(spec, f"{problem} with {what!r} in the command line",
                       "exactly one matching process")
        pid = pids[0]
    if procfs.start_ticks(pid) is None:
        raise _bad(spec, f"no process {pid}")
    return pid


class ProcessFault(Fault):
    """Base: resolve the target to (pid, start time); spawn restarts."""

    @classmethod
    def check_target(cls, target: str) -> str:
        how, sep, what = target.partition(":")
        if sep and how == "pid" and what.isdigit():
            return f"pid:{int(what)}"
        if sep and how in ("pidfile", "cmd") and what:
            return target
        if not sep and _NAME.match(target):
            return f"process:{target}"
        raise target_error(target, f"cannot read {target!r} as a process",
                           "pid:N, pidfile:PATH, cmd:TEXT or a process name from the stack")

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        identity = cls.check_target(spec.target)
        restart = spec.params.get("restart")
        target = spec.target
        if identity.startswith("process:"):
            ref: ProcessRef | None = ctx.processes.get(spec.target)
            if ref is None:
                raise _bad(spec, f"no process named '{spec.target}'",
                           "one of " + (", ".join(sorted(ctx.processes)) or "(none known)"))
            target, restart = ref.target(), restart or ref.restart
        pid = find_pid(spec, target)
        if pid in procfs.ancestors():
            raise _bad(spec, f"refusing to signal pid {pid}: it is paystab itself, one of its "
                             "parents or init")
        return {"pid": pid, "start_ticks": procfs.start_ticks(pid), "identity": identity,
                "restart": restart, "cwd": os.getcwd(), "restarted_pid": None}

    def touches(self) -> Resource:
        names = [f"pid:{self.where['pid']}", str(self.where.get("identity"))]
        return Resource(tuple(dict.fromkeys(n for n in names if n and n != "None")))

    def alive(self) -> bool:
        return procfs.is_same(int(self.where["pid"]), self.where.get("start_ticks"))

    def signal(self, signum: int) -> None:
        if not self.alive():
            return  # gone (or its pid reused): nothing of ours to signal
        try:
            os.kill(int(self.where["pid"]), signum)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise EnvironmentProblem(f"cannot signal pid {self.where['pid']}: {exc}",
                                     hint="run as the process's owner or root") from None

    def spawn_restart(self) -> None:
        """Start the restart command once; remember it in the journal."""
        command = self.where.get("restart")
        if not command or self.where.get("restarted_pid"):
            return
        logs = state_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{self.uid}.log", "ab") as log:
            # Not paystab.children.spawn: this is the user's own service coming back, run
            # as written (no -P, no death signal) and meant to outlive paystab.
            try:
                child = subprocess.Popen(
                    shlex.split(str(command)), cwd=str(self.where.get("cwd") or "."),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # outlives paystab, not hit by its Ctrl-C
                )
            except OSError as exc:
                raise EnvironmentProblem(
                    f"cannot run the restart command {command!r}: {exc}") from None
        self.where["restarted_pid"] = child.pid
        self.progress()

    def wait_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True


@register
class Stop(ProcessFault):
    kind = "process.stop"
    summary = "freeze a process with SIGSTOP; SIGCONT on clear"

    def inject(self) -> None:
        self.signal(signal.SIGSTOP)

    def clear(self) -> None:
        self.signal(signal.SIGCONT)


@register
class Kill(ProcessFault):
    kind = "process.kill"
    summary = "kill a process (SIGKILL by default); run `restart` on clear if given"
    params_spec: ClassVar[tuple[Param, ...]] = (
        choice("signal", "the signal to send", SIGNALS, default="SIGKILL"),
        text("restart", "command that starts the process again on clear", default=None),
    )

    def inject(self) -> None:
        self.signal(getattr(signal, str(self.spec.params.get("signal", "SIGKILL"))))

    def clear(self) -> None:
        if self.where.get("restart") and not self.alive():
            self.spawn_restart()


@register
class Restart(ProcessFault):
    kind = "process.restart"
    summary = "stop a process (signal, then SIGKILL after a grace period) and start it again"
    params_spec: ClassVar[tuple[Param, ...]] = (
        choice("signal", "the first signal", SIGNALS, default="SIGTERM"),
        duration("grace", "how long to wait before SIGKILL", default=5.0, hi=600.0),
        text("restart", "command that starts the process again", default=None),
    )

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        where = super().resolve(spec, ctx)
        if not where.get("restart"):
            raise _bad(spec, "process.restart needs a restart command",
                       "params.restart, or a process entry with restart in the runbook")
        return where

    def inject(self) -> None:
        self.signal(getattr(signal, str(self.spec.params.get("signal", "SIGTERM"))))
        if not self.wait_gone(float(self.spec.params.get("grace", 5.0))):
            self.signal(signal.SIGKILL)
            self.wait_gone(5.0)
        self.spawn_restart()

    def clear(self) -> None:
        # A restart is over once inject returns; clear only finishes an interrupted one.
        if not self.alive():
            self.spawn_restart()
