"""The failover controller: detections in, drain / half-open probe / restore out.

Per provider it walks ``active -> drained -> probing -> active``:

* **drain** when the ensemble policy decides (or an Alertmanager alert fires), through the
  gateway admin API — unless that would leave a payment method of the provider without any
  other active provider: then it **degrades** instead (keeps it, records why), because a
  degraded provider serves more customers than no provider at all;
* after a **cool-down** (and, for a drain that came from an alert, once the alert resolved)
  it restores the provider **half-open**: traffic flows again while the controller watches
  its series for ``probation_s``; the detectors' evidence is reset first;
* the probe **fails** on a detection, or when ``PROBE_FAST_FAILURES`` (two) or more
  failures exceed ``max_probe_failure_ratio`` of the attempts — at once (half-open, like a
  breaker) when they exceed it of ``min_probe_attempts`` already, else at the end. It
  **passes** (``probe_ok``) once ``probation_s`` is over with ``min_probe_attempts``
  attempts, or after ``3 x probation_s`` with fewer. A lone failure never fails a probe:
  drained on one, a healthy provider whose last failure fell inside its fault was drained
  11 s after the fault cleared, every attempt since having succeeded (a false failover in
  ``provider-error-burst``). A failed probe drains again and the cool-down **doubles** (up
  to ``max_cooldown_s``); it returns to its base only after ``stable_s`` of confirmed
  health. That is the hysteresis: a flapping provider is tried less and less often, never
  toggled at sample rate.

**Host-wide slowness is not a provider's fault.** Before draining, the controller asks
whether the host explains the detection, and if so it **holds** (keeps the provider, records
why) instead:

* a slowness detection (``hang``, ``latency``) while the gateway's event loop lags by
  ``host_lag_s`` or more (the sampler carries the gauge into every sample): a blocked loop
  makes every provider look slow;
* any detection while at least ``host_share`` of the other providers carrying traffic were
  detected too, or timed out attempts, within ``host_window_s``: every provider anomalous
  together is the host, the network or the load generator — draining one would only move
  its traffic onto the others. (A region outage of 3 wallets among 8 providers, with error
  bursts and no timeouts elsewhere, stays below that share.) Decisions are taken once a
  whole round of samples is in, so the providers of one round are judged together.

A slowness decision waits ``host_confirm_s`` (two or three 100 ms rounds) before it is acted
on, so the peers of a host-wide event have time to show it; a real hang is still drained well
within half the gateway timeout of being detected.

Every decision is a :class:`FailoverEvent` (time, provider, action, detector, reason) kept in
``events`` and passed to ``on_event``; actions are ``drain``, ``restore`` (the half-open
restore through the admin API), ``probe_ok`` (probation passed), ``degrade`` and ``hold``. Methods are
thread-safe (the webhook server calls them from its threads). Given a ``registry``, the
controller also counts ``paystab_detections_total{provider,detector}`` and
``paystab_controller_actions_total{provider,action}`` and sets ``paystab_detector_score``
(names in ``collector/names.py``) for whoever serves that registry.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from paystab.anomaly.admin_client import GatewayAdmin
from paystab.anomaly.base import Detection
from paystab.anomaly.ensemble import Decision, EnsemblePolicy, default_policy
from paystab.collector import names
from paystab.collector.sampler import SeriesSource, run_sampler
from paystab.collector.series import Sample
from paystab.exceptions import EnvironmentProblem

# Failures on probation that fail it, at once (when above the allowed ratio): two, not one,
# so a single unlucky failure of a healthy provider (baseline ~0.5 %) does not re-drain it.
PROBE_FAST_FAILURES = 2


@dataclass(frozen=True)
class ControllerConfig:
    cooldown_s: float = 10.0
    max_cooldown_s: float = 300.0
    probation_s: float = 10.0
    min_probe_attempts: int = 20
    max_probe_failure_ratio: float = 0.02
    stable_s: float = 60.0
    host_lag_s: float = 0.25  # loop lag that explains any slowness detection
    host_share: float = 0.5  # share of the other busy providers detected at the same time
    host_window_s: float = 2.0  # "at the same time"
    host_confirm_s: float = 0.25  # a slowness decision waits this long for its peers


SLOWNESS_DETECTORS = frozenset({"hang", "latency"})


@dataclass(frozen=True)
class FailoverEvent:
    time: float
    provider: str
    action: str  # drain | restore | probe_ok | degrade | hold
    detector: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Track:
    phase: str = "active"  # active | drained | probing
    since: float = 0.0
    cooldown_s: float = 0.0
    needs_resolve: bool = False
    probe_attempts: int = 0
    probe_failures: int = 0
    degraded_at: float | None = None
    held_at: float | None = None
    healthy_since: float | None = None


@dataclass
class FailoverController:
    admin: GatewayAdmin
    policy: EnsemblePolicy = field(default_factory=default_policy)
    config: ControllerConfig = field(default_factory=ControllerConfig)
    on_event: Callable[[FailoverEvent], None] | None = None
    clock: Callable[[], float] = time.time
    events: list[FailoverEvent] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    registry: CollectorRegistry | None = None
    _tracks: dict[str, _Track] = field(default_factory=dict)
    _round: dict[str, Sample] = field(default_factory=dict)  # the latest sample per provider
    _detected_at: dict[str, float] = field(default_factory=dict)
    _timeout_at: dict[str, float] = field(default_factory=dict)
    _pending: dict[str, tuple[Decision, float]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _metrics: tuple[Counter, Counter, Gauge] | None = None

    def __post_init__(self) -> None:
        if self.registry is not None:
            self._metrics = (
                Counter(names.DETECTIONS_TOTAL.removesuffix("_total"), "Detections by detector",
                        ["provider", "detector"], registry=self.registry),
                Counter(names.CONTROLLER_ACTIONS_TOTAL.removesuffix("_total"),
                        "Failover controller decisions", ["provider", "action"],
                        registry=self.registry),
                Gauge(names.DETECTOR_SCORE, "Score of the last detection (>= 1: past threshold)",
                      ["provider", "detector"], registry=self.registry),
            )

    def _record(self, found: Iterable[Detection]) -> None:
        for detection in found:
            self.detections.append(detection)
            self._detected_at[detection.provider] = detection.at
            if self._metrics is not None:
                self._metrics[0].labels(detection.provider, detection.detector).inc()
                self._metrics[2].labels(detection.provider, detection.detector).set(detection.score)

    # -- inputs ---------------------------------------------------------------------------
    def on_samples(self, samples: Iterable[Sample]) -> None:
        """Feed one round of samples (one per provider) from the sampler."""
        latest = None
        with self._lock:
            samples = list(samples)
            for sample in samples:
                self._round[sample.provider] = sample
                if sample.timeouts > 0:
                    self._timeout_at[sample.provider] = sample.time
            decisions = []
            for sample in samples:
                latest = sample.time if latest is None else max(latest, sample.time)
                track = self._track(sample.provider)
                if track.phase == "drained":
                    continue  # nothing to learn from a provider that gets no traffic
                if track.phase == "probing":
                    track.probe_attempts += sample.attempts
                    track.probe_failures += sample.failures
                found, decision = self.policy.feed(sample)
                self._record(found)
                if decision is not None:
                    decisions.append(decision)
            # decided once the whole round is known: detections of several providers in one
            # round are one host-wide event, not a drain of whichever came first
            for decision in decisions:
                self._decide(decision)
            self.tick(latest if latest is not None else self.clock())

    def on_detection(self, detection: Detection) -> None:
        """A detection from elsewhere (another process, a test): apply the policy. Its
        source confirmed it, so it is acted on at once (host-wide checks still apply)."""
        with self._lock:
            self._record([detection])
            decision = self.policy.note(detection)
            if decision is not None and self._track(decision.provider).phase != "drained":
                self._act(decision, decision.at)

    def drain(self, provider: str, detector: str, reason: str, at: float | None = None,
              wait_for_resolve: bool = False) -> FailoverEvent | None:
        """Drain now (Alertmanager firing); answers the event recorded (drain or degrade).

        The alarm that asks for it is a detection too (score 1: at its rule's threshold), so
        ``paystab_detections_total`` counts Alertmanager's alarms beside the detectors'."""
        with self._lock:
            now = self.clock() if at is None else at
            self._record([Detection(provider, detector, now, 1.0, reason)])
            return self._drain(provider, detector, reason, now, wait_for_resolve)

    def resolve(self, provider: str, at: float | None = None) -> None:
        """The alert that drained ``provider`` resolved: it may be probed after the cool-down."""
        with self._lock:
            self._track(provider).needs_resolve = False
            self.tick(self.clock() if at is None else at)

    def state(self, provider: str) -> str:
        with self._lock:
            return self._track(provider).phase

    # -- the state machine ------------------------------------------------------------------
    def _track(self, provider: str) -> _Track:
        track = self._tracks.get(provider)
        if track is None:
            track = self._tracks[provider] = _Track(cooldown_s=self.config.cooldown_s)
        return track

    def _decide(self, decision: Decision) -> None:
        track = self._track(decision.provider)
        if track.phase == "drained":
            return
        if set(decision.rule) <= SLOWNESS_DETECTORS and self.config.host_confirm_s > 0:
            if decision.provider not in self._pending:
                self._pending[decision.provider] = (decision,
                                                    decision.at + self.config.host_confirm_s)
            return
        self._act(decision, decision.at)

    def _settle(self, now: float) -> None:
        """Act on the slowness decisions whose confirmation time has come."""
        for provider, (decision, due) in list(self._pending.items()):
            if now >= due:
                del self._pending[provider]
                if self._track(provider).phase != "drained":
                    self._act(decision, now)

    def _act(self, decision: Decision, now: float) -> None:
        why = self.host_explains(decision, now)
        if why is None:
            self._drain(decision.provider, decision.detector, decision.reason, now, False)
            return
        track = self._track(decision.provider)
        if track.held_at is not None and now - track.held_at < self.config.cooldown_s:
            return  # one hold event per cool-down, not one per detection
        track.held_at = now
        self._emit(now, decision.provider, "hold", decision.detector,
                   f"not drained: {why} ({decision.reason})")

    def host_explains(self, decision: Decision, now: float) -> str | None:
        """Why host-wide slowness explains ``decision``, or None when it does not."""
        cfg = self.config
        provider = decision.provider
        lag = max((s.loop_lag_s for s in self._round.values()), default=0.0)
        if set(decision.rule) <= SLOWNESS_DETECTORS and lag >= cfg.host_lag_s:
            return f"the gateway's event loop lags {lag:.2f}s, so every provider looks slow"
        return self._peers_explain(provider, now)

    def _peers_explain(self, provider: str, now: float) -> str | None:
        """Why the other providers' state explains an anomaly of ``provider`` (at least
        ``host_share`` of the busy others detected or timing out lately), or None."""
        cfg = self.config
        others = [p for p, s in self._round.items()
                  if p != provider and (s.attempts > 0 or s.inflight > 0)
                  and self._track(p).phase != "drained"]
        also = [p for p in others
                if now - max(self._detected_at.get(p, -math.inf),
                             self._timeout_at.get(p, -math.inf)) <= cfg.host_window_s]
        if others and also and len(also) >= cfg.host_share * len(others):
            return (f"{len(also)} of {len(others)} other providers were anomalous at the same "
                    f"time ({', '.join(sorted(also))}): the host, not {provider}")
        return None

    def _emit(self, now: float, provider: str, action: str, detector: str, reason: str
              ) -> FailoverEvent:
        event = FailoverEvent(now, provider, action, detector, reason)
        self.events.append(event)
        if self._metrics is not None:
            self._metrics[1].labels(provider, action).inc()
        if self.on_event is not None:
            self.on_event(event)
        return event

    def _drain(self, provider: str, detector: str, reason: str, now: float,
               wait_for_resolve: bool) -> FailoverEvent | None:
        track = self._track(provider)
        if track.phase == "drained":
            track.needs_resolve = track.needs_resolve or wait_for_resolve
            return None
        blocked = self._last_healthy_methods(provider)
        if blocked is None:
            return None  # admin API unreachable: recorded in errors, retried on next alarm
        if blocked:
            if track.degraded_at is not None and now - track.degraded_at < track.cooldown_s:
                return None
            track.degraded_at = now
            return self._emit(now, provider, "degrade", detector,
                              f"not drained: last healthy provider for {', '.join(blocked)}; "
                              f"kept in service degraded ({reason})")
        try:
            self.admin.drain(provider, f"{detector}: {reason}")
        except EnvironmentProblem as exc:
            self.errors.append(f"drain {provider}: {exc.message}")
            return None
        if track.phase == "probing":
            track.cooldown_s = min(self.config.max_cooldown_s, track.cooldown_s * 2.0)
            reason = f"half-open probe failed: {reason}"
        elif track.healthy_since is not None and now - track.healthy_since >= self.config.stable_s:
            track.cooldown_s = self.config.cooldown_s
        track.phase, track.since = "drained", now
        track.needs_resolve = wait_for_resolve
        track.healthy_since = None
        return self._emit(now, provider, "drain", detector, reason)

    def _last_healthy_methods(self, provider: str) -> list[str] | None:
        """Methods ``provider`` serves that no other healthy provider serves; ``None`` when
        the gateway cannot tell us."""
        try:
            states = self.admin.providers()
        except EnvironmentProblem as exc:
            self.errors.append(f"providers: {exc.message}")
            return None
        mine = next((p for p in states if p.get("name") == provider), None)
        if mine is None:
            return []
        blocked = []
        for method in mine.get("methods") or []:
            others = [
                p for p in states
                if p.get("name") != provider and method in (p.get("methods") or [])
                and p.get("state", "active") == "active"
                and self._track(str(p.get("name"))).phase == "active"
            ]
            if not others:
                blocked.append(str(method))
        return blocked

    def tick(self, now: float) -> None:
        """Act on confirmed slowness decisions, advance cool-downs and probations to ``now``
        (called after each round)."""
        with self._lock:
            self._settle(now)
            for provider, track in self._tracks.items():
                if track.phase == "drained":
                    if now - track.since >= track.cooldown_s and not track.needs_resolve:
                        self._probe(provider, track, now)
                elif track.phase == "probing":
                    self._judge_probe(provider, track, now)

    def _probe(self, provider: str, track: _Track, now: float) -> None:
        try:
            self.admin.restore(provider, "half-open probe after cool-down")
        except EnvironmentProblem as exc:
            self.errors.append(f"restore {provider}: {exc.message}")
            return
        self.policy.reset(provider)
        track.phase, track.since = "probing", now
        track.probe_attempts = track.probe_failures = 0
        self._emit(now, provider, "restore", "controller",
                   f"half-open: back in service on probation for {self.config.probation_s:g}s "
                   f"after a {track.cooldown_s:g}s cool-down")

    def _judge_probe(self, provider: str, track: _Track, now: float) -> None:
        cfg = self.config
        elapsed = now - track.since
        n, f = track.probe_attempts, track.probe_failures
        if f >= PROBE_FAST_FAILURES and f > cfg.max_probe_failure_ratio * max(n, cfg.min_probe_attempts):
            # Half-open, as a circuit breaker is: failures on probation end it at once. Waiting
            # for min_probe_attempts while the gateway's own routing sends a recovering provider
            # a trickle (6 attempts in 30 s were seen) judged it long after its fault had
            # cleared, on evidence from the fault, and drained a provider healthy by then.
            self._fail_probe(provider, track, n, f, now)
            return
        if elapsed < cfg.probation_s:
            return
        if n < cfg.min_probe_attempts and elapsed < 3 * cfg.probation_s:
            return  # a trickle: wait for more evidence, up to 3 x probation_s
        if f >= PROBE_FAST_FAILURES and f > cfg.max_probe_failure_ratio * n:
            self._fail_probe(provider, track, n, f, now)
            return
        # A lone failure passes, whatever the ratio says: against a trickle it is a large one
        # (1 in 8 > 2 %), and judged at the end of a 3 x probation_s wait it is stale — in
        # provider-error-burst it fell at 44 s, inside the fault, the four attempts after the
        # fault cleared at 45 s all succeeded, and the drain came at 56 s (a false failover).
        # If the provider is still failing, its next failure on probation, or the detectors
        # that keep watching it once active, drain it again.
        track.phase, track.healthy_since = "active", now
        self._emit(now, provider, "probe_ok", "controller",
                   f"probation passed: {f} failures in {n} attempts over {elapsed:.1f}s")


    def _fail_probe(self, provider: str, track: _Track, n: int, f: int, now: float) -> None:
        """Drain a provider that failed its probe — unless its peers failed with it: then the
        host failed them all, the evidence says nothing about this provider, and its
        probation starts again. (A starved host failed attempts at five providers in one
        round; the four active ones were held as host-wide, the one on probation was drained
        on the same evidence, 12 s after its fault had cleared.)"""
        reason = f"{f} failures in {n} attempts on probation"
        why = self._peers_explain(provider, now)
        if why is None:
            self._drain(provider, "controller", reason, now, False)
            return
        track.since, track.probe_attempts, track.probe_failures = now, 0, 0
        if track.held_at is None or now - track.held_at >= self.config.cooldown_s:
            track.held_at = now
            self._emit(now, provider, "hold", "controller",
                       f"probation restarted, not drained: {why} ({reason})")


def watch(
    source: SeriesSource,
    controller: FailoverController,
    stop: threading.Event,
    interval_s: float = 0.1,
    max_duration_s: float = 24 * 3600.0,
) -> int:
    """Sample ``source`` every ``interval_s`` and feed ``controller`` until ``stop``."""

    def on_error(exc: Exception) -> None:
        controller.errors.append(f"sampler: {exc}")

    return run_sampler(source, interval_s, controller.on_samples, stop, max_duration_s, on_error)
