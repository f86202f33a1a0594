"""The watch service: sources -> detectors -> failover controller -> safety -> actuators.

:class:`WatchService` builds every part from a :class:`~paystab.watch.config.WatchConfig`
and runs one loop: every ``interval_s`` it polls each source, feeds the round to the
:class:`~paystab.anomaly.controller.FailoverController` (the ensemble of the configured
detectors decides), and the controller's drains and restores go through
:class:`~paystab.watch.safety.GuardedAdmin` to the actuators. A source that fails is
reported (log, ``paystab_watch_source_errors_total``, the view) and the others go on.
Every decision, refusal and action result is one line of the JSONL decision log; the state
file is rewritten after each decision and every 10 s. Its own HTTP API
(:mod:`paystab.watch.adminapi`) serves /metrics, /healthz, /state and the pins.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from paystab.anomaly import base
from paystab.anomaly.controller import ControllerConfig, FailoverController, FailoverEvent
from paystab.anomaly.ensemble import DEFAULT_RULES, EnsemblePolicy
from paystab.collector.series import Sample
from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.watch.actuators import build_actuator
from paystab.watch.config import WatchConfig
from paystab.watch.safety import ActionExecutor, GuardedAdmin
from paystab.watch.sources import WatchSource, build_source
from paystab.watch.state import adopt_baselines, load_state, save_state

SAVE_EVERY_S = 10.0


class View(Protocol):
    def update(self) -> None: ...

    def close(self) -> None: ...


class WatchMetrics:
    """watch's own series, served on its /metrics with the controller's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.source_errors = Counter("paystab_watch_source_errors", "Failed source polls",
                                     ["source"], registry=registry)
        self.source_lag = Gauge("paystab_watch_source_lag_seconds", "Age of a source's newest "
                                "data when watch read it", ["source"], registry=registry)
        self.samples = Counter("paystab_watch_samples", "Samples fed to the detectors",
                               ["source"], registry=registry)
        self.actions = Counter("paystab_watch_actions", "Actuator calls by result",
                               ["actuator", "action", "result"], registry=registry)
        self.refused = Counter("paystab_watch_refused_actions", "Decisions safety refused",
                               ["action"], registry=registry)
        self.decision_s = Histogram("paystab_watch_decision_seconds", "From a source round's "
                                    "arrival to the controller's decision",
                                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                                    registry=registry)
        self.up = Gauge("paystab_watch_up", "1 while the loop runs", registry=registry)


def build_policy(config: WatchConfig) -> EnsemblePolicy:
    from paystab.anomaly import streaming  # noqa: F401 (registers "streaming")

    detectors = {name: base.create(name, options) for name, options in config.detectors.items()}
    if config.failover.when:
        rules = [tuple(rule) for rule in config.failover.when]
    else:
        rules = [r for r in (tuple(x) for x in DEFAULT_RULES) if r[0] in detectors]
        rules = rules or [(name,) for name in detectors]
    return EnsemblePolicy(detectors, rules, config.failover.within_s)


class WatchService:
    def __init__(self, config: WatchConfig) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = WatchMetrics(self.registry)
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        self.recorded = 0  # entries ever recorded (recent keeps the last 200)
        self.source_status: dict[str, str] = {}
        self.last_samples: dict[str, Sample] = {}
        self.started_at = time.time()
        self.last_round_at: float | None = None
        self._log_lock = threading.Lock()
        self._log: IO[str] | None = None
        if config.decision_log:
            Path(config.decision_log).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(config.decision_log, "a", encoding="utf-8")  # noqa: SIM115
        self.sources: list[WatchSource] = [build_source(s) for s in config.sources]
        self.executor = ActionExecutor([build_actuator(a) for a in config.actuators],
                                       config.safety, self.record)
        self.admin = GuardedAdmin(config, self.executor, self.record)
        f = config.failover
        self.controller = FailoverController(
            self.admin, build_policy(config),
            ControllerConfig(cooldown_s=f.cooldown_s, max_cooldown_s=f.max_cooldown_s,
                             probation_s=f.probation_s, min_probe_attempts=f.min_probe_attempts,
                             max_probe_failure_ratio=f.max_probe_failure_ratio,
                             stable_s=f.stable_s, host_lag_s=f.host_lag_s,
                             host_share=f.host_share, host_window_s=f.host_window_s,
                             host_confirm_s=f.host_confirm_s),
            on_event=self._on_event, registry=self.registry)
        self._dirty = False
        self._restore_state()

    # -- the decision log ------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        """One line of the decision log (and of the view's recent list)."""
        entry = {"time": round(time.time(), 3), **entry}
        event = entry.get("event", "")
        if event in ("action_ok", "action_failed", "action_retry"):
            result = {"action_ok": "ok", "action_failed": "failed", "action_retry": "retry"}[event]
            self.metrics.actions.labels(entry["actuator"], entry["action"], result).inc()
        elif event == "refused":
            self.metrics.refused.labels(entry["action"]).inc()
        with self._log_lock:
            self.recorded += 1
            self.recent.append(entry)
            if self._log is not None:
                self._log.write(json.dumps(entry) + "\n")
                self._log.flush()
        if event in ("decision", "pin", "refused"):
            self._dirty = True

    def _on_event(self, event: FailoverEvent) -> None:
        self.record({"event": "decision", **event.to_json(), "dry_run": self.config.dry_run})

    # -- state ---------------------------------------------------------------------------------
    def _restore_state(self) -> None:
        if not self.config.state_file:
            return
        saved = load_state(self.config.state_file)
        for problem in saved.problems:
            self.record({"event": "state_problem", "problem": problem})
        taken = adopt_baselines(self.controller.policy.detectors, saved.detectors)
        self.admin.pins.update({k: v for k, v in saved.pins.items() if v in ("in", "out")})  # type: ignore[misc]
        self.admin.seen.update(saved.out)
        self.admin.replaying = True
        try:
            for provider in saved.out:
                self.controller.drain(provider, "state", "drained before watch restarted")
        finally:
            self.admin.replaying = False
        for entry in saved.events[-50:]:
            self.recent.append(entry)
        if saved.saved_at is not None:
            self.record({"event": "state_restored", "out": saved.out, "pins": saved.pins,
                         "baselines": taken, "saved_at": saved.saved_at})

    def save(self) -> None:
        if not self.config.state_file:
            return
        # called from the loop thread only, the one that feeds the detectors: a consistent copy
        save_state(self.config.state_file, set(self.admin.out), dict(self.admin.pins),
                   list(self.recent), dict(self.controller.policy.detectors))
        self._dirty = False

    # -- the loop ----------------------------------------------------------------------------------
    def poll_once(self, now: float | None = None) -> list[Sample]:
        """One round: poll every source, feed the controller; answers the samples."""
        now = time.time() if now is None else now
        round_samples: list[Sample] = []
        for source in self.sources:
            try:
                samples = source.poll(now)
            except Exception as exc:  # a source's bug or odd answer must not stop the others
                self.metrics.source_errors.labels(source.name).inc()
                message = (exc.message if isinstance(exc, EnvironmentProblem | InvalidInput)
                           else f"{type(exc).__name__}: {exc}")
                if self.source_status.get(source.name) != message:
                    self.record({"event": "source_error", "source": source.name,
                                 "error": message})
                self.source_status[source.name] = message
                continue
            if self.source_status.get(source.name, "ok") != "ok":
                self.record({"event": "source_ok", "source": source.name})
            self.source_status[source.name] = "ok"
            self.metrics.source_lag.labels(source.name).set(source.lag_s)
            self.metrics.samples.labels(source.name).inc(len(samples))
            round_samples.extend(samples)
        self.feed(round_samples)
        self.last_round_at = time.time()
        return round_samples

    def feed(self, samples: list[Sample]) -> float:
        """Give a round to the controller; answers the seconds it took to decide."""
        started = time.perf_counter()
        for sample in samples:
            self.admin.seen.add(sample.provider)
            self.last_samples[sample.provider] = sample
        self.controller.on_samples(samples)
        took = time.perf_counter() - started
        self.metrics.decision_s.observe(took)
        return took

    def start(self) -> None:
        from paystab.watch.adminapi import AdminServer

        for source in self.sources:
            source.start()
        self.executor.start()
        self.server = AdminServer(self)
        self.server.start()
        self.metrics.up.set(1)
        self.record({"event": "started", "admin": self.server.url,
                     "sources": [s.name for s in self.sources], "dry_run": self.config.dry_run,
                     "sources_urls": {s.name: getattr(s, "url", "") for s in self.sources}})

    def stop(self) -> None:
        self.metrics.up.set(0)
        for source in self.sources:
            source.stop()
        self.executor.stop()
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        self.save()
        self.record({"event": "stopped"})
        if self._log is not None:
            self._log.close()
            self._log = None

    def run(self, stop: threading.Event, max_duration_s: float | None = None,
            view: View | None = None) -> None:
        self.start()
        interval = self.config.interval_s
        started = time.monotonic()
        last_save = time.monotonic()
        rounds = 0
        try:
            while not stop.is_set():
                if max_duration_s is not None and time.monotonic() - started >= max_duration_s:
                    break
                rounds += 1
                self.poll_once()
                if self._dirty or time.monotonic() - last_save >= SAVE_EVERY_S:
                    self.save()
                    last_save = time.monotonic()
                if view is not None:
                    view.update()
                stop.wait(max(0.0, started + rounds * interval - time.monotonic()))
        finally:
            if view is not None:
                view.close()
            self.stop()

    def snapshot(self) -> dict[str, Any]:
        """What /state and the view show."""
        providers = sorted(set(self.last_samples) | self.admin.seen)
        return {
            "dry_run": self.config.dry_run,
            "uptime_s": round(time.time() - self.started_at, 1),
            "sources": dict(self.source_status),
            "providers": {p: {"phase": self.controller.state(p),
                              "pin": self.admin.pins.get(p),
                              "out": p in self.admin.out,
                              "last": (self.last_samples[p].to_json()
                                       if p in self.last_samples else None)}
                          for p in providers},
            "pending_actions": self.executor.pending,
            "recent": list(self.recent)[-20:],
        }
