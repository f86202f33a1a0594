"""Capacity search: the highest arrival rate at which the thresholds still hold.

One continuous run (connections stay warm) whose rate the search sets step by step. A step
runs at its rate for ``settle_s`` (not measured) then ``step_s`` (measured, by checkout start
time); then the rate drops to zero until the step's checkouts have ended (the watermark),
so every measured checkout is counted. A step is cut short once more checkouts are in
flight than the latency thresholds allow (the target is saturated: piling on only builds a
backlog), and after a failed step the search waits until a short probe at half the last
passing rate passes again, so one overloaded step cannot poison the next. The rate grows ×1.5 from ``start_rps`` until a
step fails (or ``max_rps`` passes), then bisects between the last pass and the first failure
until they are within ``tolerance``; the answer is measured once more to confirm it. The
search is bounded by ``max_time_s`` plus at most one capped drain; every step is kept as
the latency curve, with the headroom against an expected peak.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import gevent

from paystab.exceptions import InvalidInput
from paystab.loadtest.capacity_result import (
    DEFAULT_THRESHOLDS,
    CapacityResult,
    CapacityStep,
    validate_search,
)
from paystab.loadtest.plan import LoadPlan, RetryPolicy, default_users
from paystab.loadtest.runner import Harness, StopFlag, check_window
from paystab.loadtest.stats import Summary, dropped_between, summarize
from paystab.loadtest.target import QUIET_PROBE_S, check_reachable, healthz_s
from paystab.loadtest.thresholds import Threshold, evaluate, parse_thresholds

RECOVERY_MAX_S = 30.0  # after a failed step, wait at most this long for the target to recover


def saturation_limit_s(thresholds: Sequence[Threshold], retry: RetryPolicy) -> float:
    """A step is abandoned once in-flight checkouts exceed ``rate ×`` this many seconds.

    Twice the tightest upper latency bound (customers waiting that long on average cannot
    meet it), at least 0.5 s; half the client deadline when no latency threshold is set.
    """
    bounds = [t.value / 1000.0 for t in thresholds
              if t.metric == "latency" and t.op in ("<", "<=")]
    return max(2.0 * min(bounds), 0.5) if bounds else retry.deadline_s / 2


class _Search:
    """The steps of one search over one running harness."""

    def __init__(self, harness: Harness, thresholds: Sequence[Threshold], *, settle_s: float,
                 step_s: float, deadline: float, result: CapacityResult,
                 on_step: Callable[[CapacityStep], None] | None) -> None:
        self.harness = harness
        self.thresholds = thresholds
        self.settle_s = settle_s
        self.step_s = step_s
        self.deadline = deadline
        self.result = result
        self.on_step = on_step
        self.limit_s = saturation_limit_s(thresholds, harness.plan.retry)

    def _run_window(self, rate: float, settle_s: float, window_s: float,
                    ) -> tuple[Summary, tuple[str, ...]]:
        """``rate`` for settle + window (measured), then zero until its checkouts end."""
        harness, sink = self.harness, self.harness.sink
        harness.set_rate(rate)
        gevent.sleep(settle_s)
        t0 = time.time()
        saturated = False
        while time.time() < t0 + window_s:
            gevent.sleep(0.1)
            if time.time() - t0 >= 1.0 and sink.inflight > rate * self.limit_s:
                saturated = True  # stop piling a backlog onto a target that cannot keep up
                break
        t1 = time.time()
        harness.set_rate(0.0)
        wait_until = min(time.monotonic() + harness.plan.drain_s,
                         max(self.deadline, time.monotonic()) + 2.0)
        while sink.watermark() < t1 and time.monotonic() < wait_until:
            gevent.sleep(0.05)
        run_start = harness.session.run_start or t0
        chosen = [r for r in sink.records if t0 <= r.started_at < t1]
        summary = summarize(chosen, dropped_between(sink.dropped_by_tick, t0, t1),
                            t0 - run_start, t1 - run_start)
        breached = tuple(c.threshold.expr for c in evaluate(self.thresholds, summary)
                         if not c.ok)
        if saturated:
            breached += (f"saturated: > {self.limit_s:g} s of arrivals in flight",)
        if sink.watermark() < t1:
            breached += ("checkouts still in flight after the step",)
        return summary, breached

    def measure(self, rate: float, fallback_rate: float) -> bool:
        """One step of the curve; after a failure, wait for the target to recover."""
        summary, breached = self._run_window(rate, self.settle_s, self.step_s)
        step = CapacityStep(rate, summary, not breached, breached)
        self.result.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        if not step.ok:
            self.recover(fallback_rate)
        return step.ok

    def recover(self, probe_rate: float) -> None:
        """After a failed step, until a short probe at a rate that passed before passes again.

        An overloaded target keeps working off its backlog (timeouts, status look-ups,
        voids) after the load stops, and /healthz can look fine meanwhile; measuring the
        next step on it would blame that step for the previous one. Bounded by
        RECOVERY_MAX_S and the search deadline; unmeasured (not on the curve).
        """
        until = min(time.monotonic() + RECOVERY_MAX_S, self.deadline)
        while self.harness.sink.inflight and time.monotonic() < until:
            gevent.sleep(0.1)
        while time.monotonic() + 2.0 < until:
            if healthz_s(self.harness.target_url) < QUIET_PROBE_S:
                _, breached = self._run_window(probe_rate, 0.3, 1.5)
                if not breached:
                    return
            gevent.sleep(0.5)


def find_capacity(
    target_url: str, *, thresholds: Sequence[str] = DEFAULT_THRESHOLDS,
    start_rps: float = 50.0, max_rps: float = 2000.0, step_s: float = 5.0,
    settle_s: float = 2.0, max_time_s: float = 120.0, tolerance: float = 0.05,
    growth: float = 1.5, expected_peak: float | None = None, seed: int = 0,
    users: int | None = None, processes: int = 1, live: bool = False,
    stop_event: StopFlag | None = None, preflight: bool = True,
    on_step: Callable[[CapacityStep], None] | None = None,
) -> CapacityResult:
    """Ramp then bisect; returns the highest passing rate and every step (never raises on
    a failing target: a target below ``start_rps / 8`` reports capacity 0)."""
    validate_search(start_rps, max_rps, step_s, settle_s, max_time_s, tolerance, growth)
    parsed = parse_thresholds(list(thresholds))
    check_window(step_s)
    if expected_peak is not None and not expected_peak > 0:
        raise InvalidInput(f"{expected_peak:g} is not allowed", source="--expected-peak",
                           expected="a rate > 0")
    if preflight:
        check_reachable(target_url)
    # A checkout beyond a few seconds fails any sane latency threshold anyway; short client
    # deadlines keep an overloaded step from leaving a long backlog behind it.
    plan = LoadPlan(profile="steady", rate=max_rps, duration_s=max_time_s + 60.0,
                    users=users or default_users(max_rps), seed=seed,
                    retry=RetryPolicy(attempt_timeout_s=4.0, deadline_s=6.0))
    harness = Harness(target_url, plan, processes=processes, live=live)
    result = CapacityResult(0.0, None, list(thresholds), expected_peak=expected_peak,
                            max_rps=max_rps)
    began = time.monotonic()
    search = _Search(harness, parsed, settle_s=settle_s, step_s=step_s,
                     deadline=began + max_time_s, result=result, on_step=on_step)

    def time_for_step(steps: int = 1) -> bool:
        stopped = stop_event is not None and stop_event.is_set()
        return not stopped and time.monotonic() + steps * (settle_s + step_s) <= search.deadline

    try:
        harness.start()
        harness.set_rate(0.0)
        harness.wait_started()
        lo, hi = 0.0, None
        rate = start_rps
        while time_for_step():
            if search.measure(rate, max(lo, start_rps) / 2):
                lo = rate
                if rate >= max_rps:
                    break
                rate = min(rate * growth, max_rps)
            else:
                hi = rate
                break
        floor = start_rps / 8  # below this the target is simply not up to a test
        confirmed = hi is None
        while hi is not None and hi > floor and time_for_step():
            if hi - lo > tolerance * hi and (lo == 0 or time_for_step(2)):  # room to confirm
                mid = (lo + hi) / 2.0
                if search.measure(mid, max(lo, start_rps) / 2):
                    lo = mid
                else:
                    hi = mid
                continue
            if confirmed or lo == 0:
                break
            # One passing step can be luck (a quiet moment on a shared machine): measure
            # the answer again; if it fails now, fall back to the best rate below it.
            if search.measure(lo, lo / 2):
                confirmed = True
            else:
                hi = lo
                lo = max((s.rate for s in result.steps if s.ok and s.rate < lo), default=0.0)
        result.capacity_rps = lo
        result.first_failing_rps = hi
        result.interrupted = stop_event is not None and stop_event.is_set()
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        harness.stop()
        result.elapsed_s = time.monotonic() - began
    return result
