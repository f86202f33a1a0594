"""Safety between a decision and the stack: dry-run, pins, an action cap, retries.

The failover controller (``anomaly/controller.py``) decides through an admin object with
``providers()``, ``drain()`` and ``restore()``; :class:`GuardedAdmin` is that object for
watch. It never lets a decision reach the actuators unchecked:

* **dry-run** — the decision is logged as ``would_drain``/``would_restore`` and nothing is
  called; the controller walks its states as if it had acted, so the log shows what a real
  run would have done, restores included.
* **pins** — a provider pinned ``in`` is never drained, one pinned ``out`` never restored
  (a human said so through watch's admin API); pinning acts at once, past the cap.
* **cap** — at most ``max_actions`` drains per ``per_s`` (restores are free: they undo).
* **last healthy provider of a method** — ``providers()`` tells the controller which
  methods each provider serves (from the config; unlisted providers share one method "*")
  and which are out, so it degrades instead of draining the last one.

A refused action raises :class:`ActionRefused`: the controller records it and keeps the
provider in service. Allowed actions go to :class:`ActionExecutor`, a worker thread that
calls every actuator that takes the action, retrying failures with doubling backoff, and
reports each attempt's result; decisions never wait on a slow actuator.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from paystab.anomaly.admin_client import GatewayAdmin
from paystab.exceptions import EnvironmentProblem
from paystab.watch.actuators import ActionRequest, Actuator, ActuatorError
from paystab.watch.config import Safety, WatchConfig

Pin = Literal["in", "out"]
Report = Callable[[dict[str, Any]], None]


class ActionRefused(EnvironmentProblem):
    """Safety said no: dry-run excepted, the action did not and will not happen."""


class ActionExecutor:
    """Runs actions on a worker thread through every actuator that takes them."""

    def __init__(self, actuators: list[Actuator], safety: Safety, report: Report,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.actuators = actuators
        self.safety = safety
        self.report = report
        self.sleep = sleep
        self._queue: queue.Queue[ActionRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="watch-actions", daemon=True)
        self.pending = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the queued actions (up to ``timeout_s``); a no-op if never started (a
        service stopped after a failed start must not fail again here)."""
        if self._thread.ident is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)

    def submit(self, request: ActionRequest) -> None:
        with self._lock:
            self.pending += 1
        self._queue.put(request)

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                for actuator in self.actuators:
                    if request.action in actuator.actions:
                        self._act(actuator, request)
            finally:
                with self._lock:
                    self.pending -= 1

    def _act(self, actuator: Actuator, request: ActionRequest) -> None:
        delay = self.safety.backoff_s
        for attempt in range(1, self.safety.retries + 2):
            started = time.time()
            try:
                result = actuator.act(request)
            except Exception as exc:  # reported and retried: the worker must outlive any error
                last = attempt > self.safety.retries
                error = (exc.message if isinstance(exc, ActuatorError | EnvironmentProblem)
                         else f"{type(exc).__name__}: {exc}")
                self.report({"event": "action_failed" if last else "action_retry",
                             "actuator": actuator.name, "action": request.action,
                             "provider": request.provider, "attempt": attempt,
                             "error": error, "duration_s": round(time.time() - started, 4)})
                if last:
                    return
                self.sleep(delay)
                delay *= 2.0
                continue
            self.report({"event": "action_ok", "actuator": actuator.name,
                         "action": request.action, "provider": request.provider,
                         "attempt": attempt, "result": result,
                         "duration_s": round(time.time() - started, 4)})
            return


class GuardedAdmin(GatewayAdmin):
    """The controller's admin object for watch (see the module docstring)."""

    def __init__(self, config: WatchConfig, executor: ActionExecutor, report: Report,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__("http://paystab-watch.invalid")
        self.config = config
        self.executor = executor
        self.report = report
        self.clock = clock
        self.dry_run = config.dry_run
        self.methods = {p.name: list(p.methods) or ["*"] for p in config.providers}
        self.pins: dict[str, Pin] = {}
        self.out: set[str] = set()  # providers watch has drained (or would have, dry-run)
        self.seen: set[str] = set()
        self.replaying = False  # restoring decisions from the state file: no action
        self._drains: deque[float] = deque()
        self._lock = threading.RLock()

    # -- what the controller asks ------------------------------------------------------------
    def providers(self) -> list[dict[str, Any]]:
        with self._lock:
            names = sorted(set(self.methods) | self.seen)
            return [{"name": n, "methods": self.methods.get(n, ["*"]),
                     "state": "drained" if n in self.out else "active"} for n in names]

    def drain(self, name: str, reason: str, source: str = "paystab-watch") -> Any:
        return self._do(name, "drain", reason)

    def restore(self, name: str, reason: str, source: str = "paystab-watch") -> Any:
        return self._do(name, "restore", reason)

    def _do(self, name: str, action: Literal["drain", "restore"], reason: str) -> Any:
        now = self.clock()
        detector, _, why = reason.partition(": ") if ": " in reason else ("controller", "", reason)
        with self._lock:
            if self.replaying:
                self._mark(name, action)
                return {}
            refusal = self._refusal(name, action, now)
            if refusal is not None:
                self.report({"event": "refused", "action": action, "provider": name,
                             "reason": refusal, "decision": reason})
                raise ActionRefused(f"{action} {name} refused: {refusal}")
            self._mark(name, action)
            if action == "drain":
                self._drains.append(now)
            if self.dry_run:
                self.report({"event": f"would_{action}", "provider": name, "reason": reason,
                             "dry_run": True})
                return {}
        self.executor.submit(ActionRequest(name, action, why or reason, detector, now))
        return {}

    def _mark(self, name: str, action: str) -> None:
        if action == "drain":
            self.out.add(name)
        else:
            self.out.discard(name)

    def _refusal(self, name: str, action: str, now: float) -> str | None:
        pin = self.pins.get(name)
        if action == "drain" and pin == "in":
            return "pinned in by an operator"
        if action == "restore" and pin == "out":
            return "pinned out by an operator"
        if action == "drain":
            per = self.config.safety.per_s
            while self._drains and now - self._drains[0] >= per:
                self._drains.popleft()
            if len(self._drains) >= self.config.safety.max_actions:
                return (f"action cap: {self.config.safety.max_actions} drains in the last "
                        f"{per:g}s")
        return None

    # -- pins (watch's admin API) ---------------------------------------------------------------
    def pin(self, name: str, pin: Pin | None, who: str = "admin-api") -> None:
        """Force ``name`` in or out now (``None``: unpin; the controller decides again)."""
        now = self.clock()
        with self._lock:
            before = self.pins.get(name)
            if pin is None:
                self.pins.pop(name, None)
            else:
                self.pins[name] = pin
            self.seen.add(name)
            self.report({"event": "pin", "provider": name, "pin": pin, "before": before,
                         "by": who})
            action: Literal["drain", "restore"] | None = None
            if pin == "out" and name not in self.out:
                action = "drain"
            elif pin in ("in", None) and name in self.out and (pin == "in" or before == "out"):
                action = "restore"
            if action is None:
                return
            self._mark(name, action)
            if self.dry_run:
                self.report({"event": f"would_{action}", "provider": name,
                             "reason": f"pinned {pin}", "dry_run": True})
                return
        self.executor.submit(ActionRequest(name, action, f"pinned {pin or 'free'} by {who}",
                                           "pin", now))
