"""A program per action (no shell): ``argv`` elements are templates; exit 0 is success."""

from __future__ import annotations

import subprocess

from paystab.watch.actuators import ActionRequest, ActuatorError, render
from paystab.watch.config import CommandActuator


class CommandRunner:
    def __init__(self, config: CommandActuator) -> None:
        self.config = config
        self.name = config.name
        self.actions: list[str] = list(config.actions)

    def act(self, request: ActionRequest) -> str:
        argv = [render(a, request, "none") for a in self.config.argv]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self.config.timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ActuatorError(f"command {argv[0]} failed: {exc}") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", errors="replace").strip()[-300:]
            raise ActuatorError(f"command {argv[0]} exited {done.returncode}: {err}")
        return f"exit 0: {done.stdout.decode('utf-8', errors='replace').strip()[:200]}"
