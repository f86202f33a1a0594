"""SLO arithmetic for drills: customer traffic, error budget, incidents, provider SLAs.

Pure functions over plain records, no I/O. A drill hands over what each customer
experienced (:class:`RequestSample`: arrival time, outcome, latency) plus the report's
faults, detections, failovers and provider series; :func:`fill_report` writes the results
into the :class:`~paystab.report.model.Report` that every renderer reads. Definitions
(also in docs/report.md):

* **availability** = answered / requests, where approved, declined *and* pending are
  answers (a decline is a correct answer, not an outage); **failure_rate** = failed /
  requests. Latency percentiles are over every request (failed ones too: the customer
  waited), linear interpolation between closest ranks (numpy's default).
* **timeline**: 1-s buckets by *arrival* time, so the requests that arrive while a fault
  hurts are charged to that second even when they finish later. A bucket is *healthy* when
  it has requests, its availability ≥ the target and its p95 ≤ the latency SLO; *unhealthy*
  when it has requests and misses either; *empty* otherwise.
* **error budget used** = failure_rate / (1 − target) over the drill (1.0 = the whole
  budget); **burn rate** = the same ratio per window (default 10 s).
* Per incident (one per fault), within its *horizon* — from injection until the next fault
  injected at or after this one is cleared (or the drill end): **TTD** = first detection −
  injection, **TTM** = first drain or degrade − injection (both only for the fault's
  provider when it has one). **TTR** = start of the first run of ``sustain_s`` consecutive
  healthy buckets after the impact − injection, where the impact begins at the first
  unhealthy bucket at/after the injection's bucket and ends at its last unhealthy bucket
  before such a run (a later, separate blip is not this incident). No unhealthy bucket in
  the horizon → TTR 0.0 (no customer impact). No sustained run starting before the horizon
  ends (or the drill ends first) → TTR null with a note. **impact_requests** = failed or
  over-latency-SLO requests arriving from injection to recovery (or the horizon).
* **MTTR** = mean TTR over incidents; null when there is no incident or any never
  recovered (an unrecovered outage has no finite mean).
* Provider **SLA attainment** = 1 − failures / attempts (customer declines are not
  failures) against 99.95 % (99.9 % in a promotion); the **health score** is defined in
  :func:`health_score`.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from paystab.report.model import (
    BurnWindow,
    DetectionRecord,
    ErrorBudget,
    FailoverRecord,
    FalseFailover,
    FalseFailovers,
    FaultRecord,
    Incident,
    ProviderHealth,
    ProviderPoint,
    Report,
    SloSummary,
    SloTargets,
    TimelinePoint,
    Traffic,
)
from paystab.stats_math import percentile

__all__ = ["BurnWindow", "ErrorBudget", "ProviderHealth", "RequestSample", "SloSummary",
           "SloTargets", "burn_rates", "error_budget", "fill_report", "health_score",
           "incident", "mttr", "provider_health", "report_variables", "samples_from_checkouts",
           "timeline", "traffic"]

OUTCOMES = ("approved", "declined", "pending", "failed")
BUCKET_S = 1.0  # the timeline resolution; TTR is measured in whole buckets
MITIGATIONS = ("drain", "degrade")


@dataclass(frozen=True, slots=True)
class RequestSample:
    """What one customer saw: arrival ``t_s`` (from drill start), outcome, latency."""

    t_s: float
    outcome: str  # approved | declined | pending | failed
    latency_ms: float


class CheckoutLike(Protocol):
    """The fields of :class:`paystab.loadtest.records.CheckoutRecord` used here."""

    @property
    def started_at(self) -> float: ...
    @property
    def outcome(self) -> str: ...
    @property
    def latency_ms(self) -> float: ...


def samples_from_checkouts(records: Iterable[CheckoutLike],
                           start_epoch: float) -> list[RequestSample]:
    """Load-harness records (epoch times) → samples with times from the drill start."""
    return [RequestSample(r.started_at - start_epoch, r.outcome, r.latency_ms) for r in records]


def _counts(samples: Iterable[RequestSample]) -> tuple[dict[str, int], list[float]]:
    counts = dict.fromkeys(OUTCOMES, 0)
    latencies = []
    for s in samples:
        if s.outcome not in counts:
            raise ValueError(f"unknown outcome {s.outcome!r}; expected one of {OUTCOMES}")
        counts[s.outcome] += 1
        latencies.append(s.latency_ms)
    latencies.sort()
    return counts, latencies


def traffic(samples: Iterable[RequestSample], dropped_arrivals: int = 0) -> Traffic:
    """Totals, availability, failure rate and latency percentiles of ``samples``."""
    counts, latencies = _counts(samples)
    requests = len(latencies)
    return Traffic(
        requests=requests, approved=counts["approved"], declined=counts["declined"],
        failed=counts["failed"], pending=counts["pending"],
        availability=(requests - counts["failed"]) / requests if requests else None,
        failure_rate=counts["failed"] / requests if requests else None,
        p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99), dropped_arrivals=dropped_arrivals,
    )


def timeline(samples: Iterable[RequestSample], duration_s: float) -> list[TimelinePoint]:
    """1-s buckets by arrival time covering the drill (and any late arrival), empty ones too.

    Arrivals before 0 fall in the first bucket, so nothing the customers saw is dropped.
    """
    by_bucket: dict[int, list[RequestSample]] = {}
    for s in samples:
        by_bucket.setdefault(max(int(s.t_s // BUCKET_S), 0), []).append(s)
    count = max(math.ceil(duration_s / BUCKET_S), max(by_bucket, default=-1) + 1)
    points = []
    for index in range(count):
        counts, latencies = _counts(by_bucket.get(index, ()))
        points.append(TimelinePoint(
            t_s=index * BUCKET_S, requests=len(latencies), approved=counts["approved"],
            declined=counts["declined"], pending=counts["pending"], failed=counts["failed"],
            p50_ms=percentile(latencies, 50), p95_ms=percentile(latencies, 95),
            p99_ms=percentile(latencies, 99),
        ))
    return points


def bucket_state(point: TimelinePoint, targets: SloTargets) -> str:
    """``healthy`` | ``unhealthy`` | ``empty`` — see the module docstring."""
    if point.requests == 0:
        return "empty"
    availability = (point.requests - point.failed) / point.requests
    slow = point.p95_ms is not None and point.p95_ms > targets.latency_ms
    return "unhealthy" if availability < targets.availability or slow else "healthy"


# -- error budget ------------------------------------------------------------------------


def error_budget(totals: Traffic, target: float) -> ErrorBudget:
    allowance = 1.0 - target
    used = totals.failed / totals.requests / allowance if totals.requests else None
    return ErrorBudget(target, totals.requests, totals.failed,
                       totals.requests * allowance, used)


def burn_rates(points: Sequence[TimelinePoint], target: float,
               window_s: float = 10.0) -> list[BurnWindow]:
    """Burn rate per fixed window of the timeline (the last one may be shorter)."""
    per_window = max(round(window_s / BUCKET_S), 1)
    windows = []
    for first in range(0, len(points), per_window):
        chunk = points[first:first + per_window]
        requests = sum(p.requests for p in chunk)
        failed = sum(p.failed for p in chunk)
        rate = failed / requests / (1.0 - target) if requests else None
        windows.append(BurnWindow(chunk[0].t_s, chunk[-1].t_s + BUCKET_S, requests, failed, rate))
    return windows


# -- incidents ---------------------------------------------------------------------------


def fault_provider(fault: FaultRecord, providers: Collection[str]) -> str | None:
    """The provider a fault hits: its ``provider`` field, a ``provider:NAME`` target, or a
    target that is a known provider name; None when it hits no single provider."""
    if fault.provider:
        return fault.provider
    if fault.target.startswith("provider:"):
        return fault.target.split(":", 1)[1]
    return fault.target if fault.target in providers else None


def incident_horizon(fault: FaultRecord, faults: Sequence[FaultRecord], duration_s: float) -> float:
    """When this fault's incident stops owning what happens: the next fault injected at
    or after this one is cleared (overlapping faults share their impact), else the end."""
    cleared = fault.cleared_at_s if fault.cleared_at_s is not None else math.inf
    later = [f.injected_at_s for f in faults if f is not fault and f.injected_at_s >= cleared]
    return min([*later, max(duration_s, fault.injected_at_s)])


def _first_at(times: Iterable[float], start: float, end: float) -> float | None:
    hits = [t for t in times if start <= t < end]
    return min(hits) - start if hits else None


def _recovery(points: Sequence[TimelinePoint], injected: float, horizon: float,
              targets: SloTargets) -> tuple[float | None, float | None]:
    """(impact start, recovery time): (None, injected) without impact; recovery None when
    no sustained healthy run starts before the horizon."""
    states = [bucket_state(p, targets) for p in points]
    first = max(int(injected // BUCKET_S), 0)
    last = min(math.ceil(horizon / BUCKET_S), len(points))  # buckets starting before horizon
    bad = next((i for i in range(first, last) if states[i] == "unhealthy"), None)
    if bad is None:
        return None, injected
    run = 0
    for index in range(bad + 1, len(points)):
        run = run + 1 if states[index] == "healthy" else 0
        start = index - run + 1
        if start >= last:
            break
        if run >= targets.sustain_s:
            return points[bad].t_s, points[start].t_s
    return points[bad].t_s, None


def incident(fault: FaultRecord, *, faults: Sequence[FaultRecord],
             detections: Sequence[DetectionRecord], failovers: Sequence[FailoverRecord],
             points: Sequence[TimelinePoint], samples: Sequence[RequestSample],
             duration_s: float, targets: SloTargets,
             known_providers: Collection[str] = ()) -> Incident:
    """TTD, TTM, TTR and impact of one fault (definitions in the module docstring)."""
    providers = {*known_providers, *(d.provider for d in detections),
                 *(f.provider for f in failovers)}
    who = fault_provider(fault, providers)
    injected = fault.injected_at_s
    horizon = incident_horizon(fault, faults, duration_s)
    ttd = _first_at((d.at_s for d in detections if who in (None, d.provider)), injected, horizon)
    ttm = _first_at((f.at_s for f in failovers if f.action in MITIGATIONS
                     and who in (None, f.provider)), injected, horizon)
    impact_start, recovered = _recovery(points, injected, horizon, targets)
    if impact_start is None:
        note = "no customer impact"
    elif recovered is not None:
        note = ""
    elif horizon < max(duration_s, injected):
        note = (f"not back within SLO for {targets.sustain_s} s in a row before the next "
                f"fault at {horizon:g} s")
    else:
        note = f"not back within SLO for {targets.sustain_s} s in a row before the drill ended"
    end = recovered if recovered is not None else horizon
    impact = sum(1 for s in samples if injected <= s.t_s < end
                 and (s.outcome == "failed" or s.latency_ms > targets.latency_ms))
    return Incident(
        fault_id=fault.id, ttd_s=ttd, ttm_s=ttm,
        ttr_s=None if recovered is None else recovered - injected,
        impact_requests=impact, provider=who, impact_start_s=impact_start,
        recovered_at_s=recovered, note=note,
    )


def mttr(incidents: Sequence[Incident]) -> float | None:
    ttrs = [i.ttr_s for i in incidents]
    if not ttrs or any(t is None for t in ttrs):
        return None
    return statistics.fmean(t for t in ttrs if t is not None)


# -- providers ---------------------------------------------------------------------------


SUCCESS_POINTS, LATENCY_POINTS, UPTIME_POINTS = 60.0, 25.0, 15.0
SCORE_FAILURE_FLOOR = 0.05  # a failure rate at the breaker threshold scores no success points
SCORE_KEEP = 80.0  # the seeds: drop a channel scoring below this three months running


def health_score(success: float, p95_ms: float | None, drained_fraction: float,
                 latency_ms: float = 500.0) -> float:
    """0..100: 60 × (1 − failure rate / 5 %) + 25 × min(1, latency SLO / p95)
    + 15 × (1 − fraction of time drained), each part clipped at 0.

    The success part dominates, reaching 0 at the 5 % circuit-breaker threshold: 1 %
    failures (the alert threshold) with fast answers and no drain scores 88; 2 % scores 76,
    below the 80 the seeds use to drop a channel.
    """
    success_part = SUCCESS_POINTS * max(0.0, 1.0 - (1.0 - success) / SCORE_FAILURE_FLOOR)
    latency_part = LATENCY_POINTS * (1.0 if not p95_ms else min(1.0, latency_ms / p95_ms))
    uptime_part = UPTIME_POINTS * max(0.0, 1.0 - drained_fraction)
    return success_part + latency_part + uptime_part


def drained_s(provider: str, failovers: Sequence[FailoverRecord], end_s: float) -> float | None:
    """Seconds ``provider`` spent drained (drain → restore, or → ``end_s``); None without
    drain/restore events for it."""
    events = sorted((f for f in failovers if f.provider == provider
                     and f.action in ("drain", "restore")), key=lambda f: f.at_s)
    total, since = 0.0, None
    for event in events:
        if event.action == "drain" and since is None:
            since = event.at_s
        elif event.action == "restore" and since is not None:
            total, since = total + event.at_s - since, None
    return None if not events else total + (max(end_s - since, 0.0) if since is not None else 0.0)


def provider_health(points: Sequence[ProviderPoint], targets: SloTargets,
                    failovers: Sequence[FailoverRecord] = (),
                    duration_s: float | None = None) -> list[ProviderHealth]:
    """Per-provider SLA attainment and health score, by provider name. Time drained comes
    from the drain/restore events when there are any, else from the sampled flags."""
    by_provider: dict[str, list[ProviderPoint]] = {}
    for p in points:
        by_provider.setdefault(p.provider, []).append(p)
    total = sum(p.attempts for p in points)
    rows = []
    for name in sorted(by_provider):
        series = sorted(by_provider[name], key=lambda p: p.t_s)
        gaps = [b.t_s - a.t_s for a, b in itertools.pairwise(series)]
        # Each point stands for the interval until the next; the last for the typical one.
        lengths = [*gaps, statistics.median(gaps) if gaps else BUCKET_S]
        span = duration_s if duration_s else sum(lengths)
        drained = drained_s(name, failovers, span)
        if drained is None:
            drained = sum(length for p, length in zip(series, lengths, strict=True) if p.drained)
        attempts = sum(p.attempts for p in series)
        failures = sum(p.failures for p in series)
        weighted = [(p.p95_ms, p.attempts) for p in series if p.p95_ms is not None and p.attempts]
        weight = sum(w for _, w in weighted)
        p95 = sum(v * w for v, w in weighted) / weight if weight else None
        success = 1.0 - failures / attempts if attempts else None
        rows.append(ProviderHealth(
            provider=name, attempts=attempts, failures=failures, success=success,
            sla_target=targets.sla, sla_met=None if success is None else success >= targets.sla,
            p95_ms=p95, share=attempts / total if total else 0.0, minutes_drained=drained / 60,
            health_score=None if success is None else health_score(
                success, p95, drained / span if span > 0 else 0.0, targets.latency_ms),
        ))
    return rows


# -- false failovers ---------------------------------------------------------------------
# Seconds after a fault clears during which a drain of its provider still counts as caused
# by it: the detector reads 1-s samples and the controller acts on the next one.
FALSE_FAILOVER_GRACE_S = 5.0


def false_failovers(report: Report, grace_s: float = FALSE_FAILOVER_GRACE_S) -> FalseFailovers:
    """Drains that no injected fault explains.

    A fault explains a drain of provider P at ``t`` when it hits P (or hits no single
    provider: the gateway, a whole method) and ``injected_at_s <= t <= cleared_at_s +
    grace_s``; a fault never cleared lasts to the end of the drill. Everything else —
    a drain at cold start, under host-wide slowness, during a flash sale — is false.
    """
    known = {p.provider for p in report.provider_timeline} | {f.provider for f in report.failovers}
    windows = [(fault_provider(f, known), f.injected_at_s,
                (report.duration_s if f.cleared_at_s is None else f.cleared_at_s) + grace_s)
               for f in report.faults]
    events = [
        FalseFailover(f.provider, f.at_s, f.detector, f.reason, f.action)
        for f in report.failovers
        if f.action == "drain" and not any(
            who in (None, f.provider) and start <= f.at_s <= end for who, start, end in windows)
    ]
    return FalseFailovers(count=len(events), grace_s=grace_s, events=events)


def fill_report(report: Report, samples: Sequence[RequestSample], *,
                targets: SloTargets | None = None, dropped_arrivals: int = 0) -> Report:
    """Compute traffic, timeline, incidents, MTTR and the ``slo`` section into ``report``.

    Reads ``report.duration_s``, ``faults``, ``detections``, ``failovers`` and
    ``provider_timeline``, so call it once those are final; returns the same report.
    """
    targets = targets or SloTargets()
    report.traffic = traffic(samples, dropped_arrivals)
    report.timeline = timeline(samples, report.duration_s)
    report.incidents = [
        incident(f, faults=report.faults, detections=report.detections,
                 failovers=report.failovers, points=report.timeline, samples=samples,
                 duration_s=report.duration_s, targets=targets,
                 known_providers={p.provider for p in report.provider_timeline})
        for f in sorted(report.faults, key=lambda f: f.injected_at_s)
    ]
    report.mttr_s = mttr(report.incidents)
    report.false_failovers = false_failovers(report)
    report.slo = SloSummary(
        targets=targets,
        error_budget=error_budget(report.traffic, targets.availability),
        burn_rates=burn_rates(report.timeline, targets.availability, targets.burn_window_s),
        providers=provider_health(report.provider_timeline, targets, report.failovers,
                                  report.duration_s),
    ).to_json()
    return report


def report_variables(report: Report) -> dict[str, Any]:
    """Every variable a hypothesis may name, as observed in ``report``.

    The hypothesis variables come from :data:`paystab.chaos.hypothesis.VARIABLES` (one
    definition for runbooks and reports); the SLO extras below come from ``report.slo``.
    """
    from paystab.chaos.hypothesis import VARIABLES

    data = report.to_json()
    values = {name: getter(data) for name, (getter, _) in VARIABLES.items()}
    summary = SloSummary.from_json(report.slo)
    scores = [p.health_score for p in summary.providers if p.health_score is not None]
    values.update({
        "pending": report.traffic.pending,
        "dropped_arrivals": report.traffic.dropped_arrivals,
        "incidents": len(report.incidents),
        "unrecovered_incidents": sum(1 for i in report.incidents if i.ttr_s is None),
        "impact_requests": sum(i.impact_requests for i in report.incidents),
        "error_budget_used": summary.error_budget.used if summary.error_budget else None,
        "max_burn_rate": summary.max_burn_rate,
        "providers_below_sla": sum(1 for p in summary.providers if p.sla_met is False),
        "min_health_score": min(scores) if scores else None,
    })
    return values
