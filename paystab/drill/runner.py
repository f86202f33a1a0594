"""The drill runner: one runbook, start to verdict.

Order of play: load and validate the runbook (exit 2 before anything starts) → bring up
the target → check faults against the blast radius → HTTP steady-state probes → start the
series sampler feeding the failover controller → load with the fault schedule running
beside it → clear every fault → let the gateway settle in-doubt attempts → probes after →
reconcile ledgers → SLO math → hypotheses → verdict → reports. Ctrl-C, SIGTERM and
``abort_when`` stop the load early: faults are cleared, a partial report is written and
the verdict is ``aborted`` (exit 3).

The drill process runs Locust, which patches the process with gevent; everything here is
synchronous code that cooperates through the patched ``threading``/``time``/sockets.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from paystab.chaos.base import Fault
from paystab.chaos.runbook import FaultStep, Runbook
from paystab.drill.apparatus import LoopLagProbe, harness_figures, judge
from paystab.drill.detection import DrillDetection, builtin_detection, load_watch, watch_detection
from paystab.drill.probes import ProbeOutcome, http_probes, metric_probes
from paystab.drill.recorder import Recorder
from paystab.drill.scaling import scaled
from paystab.drill.stack_target import StackTarget, not_applicable
from paystab.drill.target import ReferenceTarget, RemoteTarget, Target
from paystab.exceptions import Aborted, EnvironmentProblem, Inconclusive
from paystab.report.live import ActiveFault, LiveSnapshot, LiveView, ProviderState
from paystab.report.model import (
    DetectionRecord,
    FailoverRecord,
    FaultRecord,
    HypothesisResult,
    Report,
)
from paystab.stack.endpoints import StackEndpoints
from paystab.stackfile.load import load_stack

log = logging.getLogger("paystab.drill")


@dataclass
class DrillOptions:
    runbook: str = "provider-timeout"
    target_url: str | None = None
    ready_file: str | None = None  # describes the user's stack (provider admin URLs, ledgers)
    duration_s: float | None = None
    rps: float | None = None
    seed: int | None = None
    out_dir: Path = Path("paystab-drill")
    live: bool = True
    sample_interval_s: float = 0.1
    # Detect and fail over with these `paystab watch` parts instead of the built-in ones.
    watch_config: Path | None = None
    # A stack file (or a ready file read as one) describing the stack to start and drill.
    stack_file: Path | None = None
    command_line: str = ""  # as typed, for the report's provenance


@dataclass
class _Run:
    """Mutable state shared by the drill's cooperating loops."""

    t0_wall: float = 0.0
    t0_mono: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    abort_reason: str | None = None
    interrupted_by: str | None = None
    fault_error: BaseException | None = None
    active: dict[str, tuple[FaultStep, float]] = field(default_factory=dict)
    on_halt: Callable[[float], None] = lambda wall: None  # told when the drill stops early

    def halt(self) -> None:
        """Stop the load early (interrupt, abort_when, a fault that failed)."""
        self.on_halt(time.time())
        self.stop.set()


class Drill:
    def __init__(self, options: DrillOptions, console: Console | None = None,
                 on_phase: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.console = console or Console(stderr=True)
        self.on_phase = on_phase or (lambda phase: None)
        self.view: LiveView | None = None
        self.phase = "starting"

    # -- the whole drill --------------------------------------------------------------------
    def run(self) -> Report:
        from paystab.chaos.bundled import find_runbook
        from paystab.chaos.runbook import load_runbook

        path = find_runbook(self.options.runbook)
        self._stack = None if self.options.stack_file is None else load_stack(self.options.stack_file)
        max_rps = None if self._stack is None or self._stack.spec.load is None \
            else self._stack.spec.load.max_rps
        runbook, notes = scaled(load_runbook(path), self.options.duration_s, self.options.rps,
                                self.options.seed, max_rps)
        # Locust patches the process with gevent on import: do it before any thread exists.
        from paystab.loadtest import runner as _locust_runner  # noqa: F401
        from paystab.loadtest.plan import build_plan

        build_plan(runbook.load.profile, runbook.load.rate_per_s, runbook.load.duration_s,
                   users=runbook.load.users, seed=runbook.seed, params=dict(runbook.load.params))

        self._watch_config = (None if self.options.watch_config is None
                              else load_watch(self.options.watch_config))  # exit 2 before the stack
        self._stack_target: StackTarget | None = None
        out = self.options.out_dir
        out.mkdir(parents=True, exist_ok=True)
        target = self._target(runbook, out)
        from paystab.drill.load_source import drill_load

        self._load = drill_load(runbook, self._stack_target)  # a bad locustfile: exit 2 here
        if self._load.note:
            notes = [*notes, self._load.note]
        run = _Run()
        report = Report(runbook=runbook.name, seed=runbook.seed,
                        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        description=runbook.description.strip(), notes=notes,
                        load={"profile": runbook.load.profile, "rate_per_s": runbook.load.rate_per_s,
                              "duration_s": runbook.load.duration_s})
        from paystab.drill.provenance import drill_provenance

        report.provenance = drill_provenance(path, runbook.seed, self.options.command_line)
        self._install_signals(run)
        try:
            self._set_phase("connecting to the target" if isinstance(target, RemoteTarget)
                            else "starting the stack")
            endpoints = target.start()
            report.target = target.describe()
            self._drill(runbook, target, endpoints, run, report)
        finally:
            self._set_phase("stopping")
            target.stop()
            self._restore_signals()
        return report

    def _target(self, runbook: Runbook, out: Path) -> Target:
        if self._stack is not None:
            self._stack_target = StackTarget(self._stack, out / "stack", runbook.seed)
            return self._stack_target
        if self.options.target_url or self.options.ready_file or not runbook.target.reference:
            return RemoteTarget(self.options.target_url or runbook.target.gateway_url,
                                self.options.ready_file or runbook.target.ready_file)
        return ReferenceTarget(out / "stack", dict(runbook.target.reference_options), runbook.seed)

    def _drill(self, runbook: Runbook, target: Target, endpoints: StackEndpoints, run: _Run,
               report: Report) -> None:
        from paystab.anomaly.controller import FailoverEvent

        ctx = runbook.target.context(endpoints)
        probe_results: list[ProbeOutcome] = []
        recorder = Recorder(time.time())
        run.on_halt = recorder.stop_at
        lag_probe = LoopLagProbe()

        def on_event(event: FailoverEvent) -> None:
            if event.action in ("drain", "restore", "degrade"):
                report.failovers.append(FailoverRecord(event.provider, event.action,
                                                       round(event.time - run.t0_wall, 3),
                                                       event.detector, event.reason))
            if event.action in ("drain", "restore"):
                recorder.set_drained(event.provider, event.action == "drain")

        if self.options.watch_config is not None:
            detection = watch_detection(self._watch_config, self.options.watch_config, on_event)
        elif self._stack_target is not None:
            detection = self._stack_target.detection(on_event)
        else:
            detection = builtin_detection(endpoints, on_event, self.options.sample_interval_s)
        report.notes.append(f"detection and failover: {detection.describe}")
        controller = detection.controller
        sampler_stop = threading.Event()

        def on_samples(samples: list[Any]) -> None:
            recorder.on_samples(samples)
            if not detection.feeds_controller:
                controller.on_samples(samples)

        try:
            result = self._under_faults(runbook, endpoints, ctx, run, report, recorder, detection,
                                        on_samples, sampler_stop, lag_probe, probe_results)
        finally:
            sampler_stop.set()
            detection.close()
        if run.fault_error is not None:
            raise EnvironmentProblem(f"a fault could not be injected: {run.fault_error}")
        self._conclude(runbook, target, endpoints, run, report, recorder, controller, result,
                       lag_probe, probe_results)

    def _under_faults(self, runbook: Runbook, endpoints: StackEndpoints, ctx: Any, run: _Run,
                      report: Report, recorder: Recorder, detection: DrillDetection,
                      on_samples: Callable[[list[Any]], None], sampler_stop: threading.Event,
                      lag_probe: LoopLagProbe, probe_results: list[ProbeOutcome]) -> Any:
        """Steady state before, then the load with the fault schedule and detection beside it."""
        from paystab.chaos.session import FaultSession
        from paystab.collector.sampler import run_sampler
        from paystab.loadtest.runner import run_load

        controller = detection.controller
        with FaultSession(allow=runbook.allow, context=ctx, handle_signals=False,
                          allow_source=runbook.source) as session:
            faults = session.prepare(runbook.fault_specs())  # blast radius: exit 2, nothing injected
            if self._stack_target is not None:
                self._stack_target.check_blast_radius(faults)
            self._set_phase("steady state (before)")
            probe_results += http_probes(self._probes(runbook), endpoints.gateway_url, "before",
                                         token=endpoints.admin_token)
            sampler = threading.Thread(target=run_sampler, name="paystab-sampler", daemon=True, args=(
                detection.source, detection.interval_s, on_samples, sampler_stop,
                runbook.load.duration_s + 600.0, lambda exc: controller.errors.append(str(exc))))
            run.t0_wall, run.t0_mono = time.time(), time.monotonic()
            recorder.t0_wall = run.t0_wall
            sampler.start()
            scheduler = threading.Thread(target=self._schedule, name="paystab-faults", daemon=True,
                                         args=(runbook, faults, session, run))
            scheduler.start()
            watcher = threading.Thread(target=self._watch, name="paystab-watch", daemon=True,
                                       args=(runbook, recorder, controller, run))
            watcher.start()
            self._set_phase("load")
            lag_probe.start()
            plan, user_classes = self._load.plan, self._load.user_classes
            try:
                result = run_load(endpoints.gateway_url, runbook.load.profile, runbook.load.rate_per_s,
                                  runbook.load.duration_s, seed=runbook.seed, users=runbook.load.users,
                                  params=runbook.load.params, on_record=recorder.on_checkout,
                                  stop_event=run.stop, live=False, plan=plan,
                                  user_classes=user_classes)
            finally:
                # Whatever ended the load, the scheduler injects nothing more: the session
                # is about to close, and a fault injected after clear_all() would outlive it.
                run.stop.set()
                lag_probe.stop()
                scheduler.join(timeout=5)
            report.duration_s = round(time.time() - run.t0_wall, 3)
            self._set_phase("clearing faults")
            session.clear_all()
            for event in session.timeline:
                report.faults.append(FaultRecord(
                    event.uid, event.kind, event.target, dict(event.params),
                    round(event.injected_at - run.t0_mono, 3),
                    None if event.cleared_at is None else round(event.cleared_at - run.t0_mono, 3),
                    event.description))
            sampler_stop.set()
            sampler.join(timeout=5)
        return result

    def _conclude(self, runbook: Runbook, target: Target, endpoints: StackEndpoints, run: _Run,
                  report: Report, recorder: Recorder, controller: Any, result: Any,
                  lag_probe: LoopLagProbe, probe_results: list[ProbeOutcome]) -> None:
        """After the load: detections, settling, probes after, reconciliation, SLOs, verdict."""
        from paystab.slo import fill_report

        report.detections = [DetectionRecord(d.provider, d.detector, round(d.at - run.t0_wall, 3), d.reason,
                                             d.score) for d in controller.detections]
        report.provider_timeline = recorder.provider_points()
        report.abort_reason = run.abort_reason or run.interrupted_by
        self._set_phase("settling and reconciling")
        if isinstance(target, ReferenceTarget):
            endpoints = target.refresh()
        left = target.settle()
        if left:
            report.notes.append(f"{left} in-doubt attempt(s) still unresolved after 30 s")
        probe_results += http_probes(self._probes(runbook), endpoints.gateway_url, "after",
                                     token=endpoints.admin_token)
        probe_results += metric_probes(runbook, recorder, report.duration_s)
        reconciliation = target.reconcile()
        if reconciliation is not None:
            report.reconciliation = reconciliation
        else:
            report.notes.append("the target has no ledgers to reconcile: reconciliation is null")
        dropped = int(result.summary.dropped)
        fill_report(report, recorder.samples, dropped_arrivals=dropped)
        report.hypotheses = [HypothesisResult(h["expr"], h["observed"], h["ok"], h.get("expected", ""))
                             for h in runbook.evaluate(report.to_json())]
        if self._stack_target is not None:
            report.hypotheses = not_applicable(report.hypotheses, runbook.hypotheses,
                                               self._stack_target.not_provided())
        report.hypotheses += [p.as_hypothesis() for p in probe_results]
        if controller.errors:
            report.notes.append(f"sampler/controller errors: {len(controller.errors)} (first: {controller.errors[0]})")
        if recorder.cut_off:
            report.notes.append(f"{recorder.cut_off} checkout(s) cut off by the stop are not counted "
                                "as customer failures")
        report.harness = harness_figures(result.generator, result.elapsed_s, recorder.generator_lags_ms,
                                          lag_probe)
        report.verdict, report.inconclusive_reason = verdict(
            report, interrupted=run.interrupted_by is not None, aborted=run.abort_reason is not None)

    def _probes(self, runbook: Runbook) -> Any:
        probes = runbook.steady_state.probes
        return probes if self._stack_target is None else self._stack_target.probes(probes)

    # -- loops beside the load ---------------------------------------------------------------
    def _schedule(self, runbook: Runbook, faults: list[Fault], session: Any, run: _Run) -> None:
        events: list[tuple[float, int, str]] = []
        for i, step in enumerate(runbook.faults):
            events.append((step.at_s, i, "inject"))
            events.append((step.clear_at_s(runbook.load.duration_s), i, "clear"))
        events.sort(key=lambda e: (e[0], e[2] == "inject"))
        injected: set[int] = set()
        for at_s, i, action in events:
            if run.stop.wait(max(0.0, run.t0_mono + at_s - time.monotonic())):
                return
            try:
                if action == "inject":
                    session.inject(faults[i])
                    injected.add(i)
                    run.active[faults[i].uid] = (runbook.faults[i], at_s)
                elif i in injected:
                    session.clear(faults[i])
                    run.active.pop(faults[i].uid, None)
            except Exception as exc:  # surfaced by the runner once the load stops
                run.fault_error = exc
                run.abort_reason = f"fault {runbook.faults[i].name} failed to {action}: {exc}"
                run.halt()
                return

    def _watch(self, runbook: Runbook, recorder: Recorder, controller: Any, run: _Run) -> None:
        """Every half second: abort conditions, and the live view's snapshot."""
        while not run.stop.wait(0.5):
            now_s = time.monotonic() - run.t0_mono
            for cond in runbook.abort_when:
                if now_s < cond.window_s:
                    continue  # not enough history to judge the window yet
                value = recorder.window(now_s, cond.window_s).get(cond.metric)
                if cond.triggered(value):
                    over = "" if " over " in cond.expr else f" over {cond.window_s:g}s"
                    run.abort_reason = f"abort_when {cond.expr}{over} (observed {value:.6g})"
                    run.halt()
                    return
            if self.view is not None:
                self.view.update(self._snapshot(runbook, recorder, controller, run, now_s))

    def _snapshot(self, runbook: Runbook, recorder: Recorder, controller: Any, run: _Run,
                  now_s: float) -> LiveSnapshot:
        total, failed = recorder.totals()
        last10 = recorder.window(now_s, 10.0)
        last2 = recorder.window(now_s, 2.0)
        faults = [ActiveFault(uid, step.spec.kind, step.spec.target, at_s,
                              step.clear_at_s(runbook.load.duration_s))
                  for uid, (step, at_s) in list(run.active.items())]
        rates = recorder.recent_provider_rates(now_s)
        providers = [ProviderState(name, controller.state(name) if hasattr(controller, "state") else "active",
                                   "closed", rate, success)
                     for name, (rate, success) in sorted(rates.items())]
        detections = [DetectionRecord(d.provider, d.detector, round(d.at - run.t0_wall, 2), d.reason)
                      for d in controller.detections[-5:]]
        return LiveSnapshot(elapsed_s=now_s, duration_s=runbook.load.duration_s, phase=self.phase,
                            target_rps=runbook.load.rate_per_s, current_rps=last2["rps"],
                            requests=total, failed=failed,
                            availability=(total - failed) / total if total else None,
                            availability_10s=last10["availability"], p95_ms=last10["p95_ms"],
                            active_faults=faults, providers=providers, detections=tuple(detections))

    # -- plumbing ----------------------------------------------------------------------------
    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self.on_phase(phase)

    def _install_signals(self, run: _Run) -> None:
        import gevent

        def interrupted(name: str) -> None:
            if run.interrupted_by is None:
                run.interrupted_by = f"interrupted by {name}"
                run.halt()

        self._signal_handlers = [gevent.signal_handler(s, interrupted, s.name)
                                 for s in (signal.SIGINT, signal.SIGTERM)]

    def _restore_signals(self) -> None:
        for handler in getattr(self, "_signal_handlers", []):
            handler.cancel()


def verdict(report: Report, *, aborted: bool, interrupted: bool = False) -> tuple[str, str | None]:
    """The verdict and, when ``inconclusive``, why.

    A person's interrupt wins: the run did not finish and nobody is blamed. Then the
    apparatus: when the load generator was the bottleneck, neither a pass, a fail nor an
    ``abort_when`` stop would be about the stack. Then an abort; then the hypotheses — a
    not-applicable one (``ok`` None) neither passes nor fails the drill.
    """
    if interrupted:
        return "aborted", None
    reason = judge(report.harness) if report.harness else None
    if reason is not None:
        if aborted:
            reason += f" (the drill stopped early: {report.abort_reason})"
        return "inconclusive", reason
    if aborted:
        return "aborted", None
    return ("pass" if all(h.ok is not False for h in report.hypotheses) else "fail"), None


def exit_for(report: Report) -> int:
    if report.verdict == "aborted":
        raise Aborted(f"drill aborted: {report.abort_reason or 'interrupted'}")
    if report.verdict == "inconclusive":
        raise Inconclusive(f"drill inconclusive: {report.inconclusive_reason}")
    return 0 if report.verdict == "pass" else 1
