"""The drill report as data: schema ``paystab.report/v1`` plus the series behind the plots.

A drill fills a :class:`Report`; renderers (terminal, JSON, JUnit, HTML) only read it.
``to_json()`` gives exactly the schema of ``shared/design/report.schema.json`` — required
fields first, then extra fields the schema allows (``timeline``, ``provider_timeline``,
``slo``, …) that the HTML report plots from. ``from_json()`` reads it back, so
``paystab report REPORT.json`` can re-render any saved report.

Times ``*_s`` are seconds from the drill start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA = "paystab.report/v1"


@dataclass
class Traffic:
    requests: int = 0
    approved: int = 0
    declined: int = 0
    failed: int = 0
    availability: float | None = None  # (approved + declined + pending) / requests
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    pending: int = 0
    failure_rate: float | None = None  # failed / requests
    dropped_arrivals: int = 0  # arrivals the load generator could not send in time


@dataclass
class FaultRecord:
    id: str
    kind: str
    target: str
    params: dict[str, Any]
    injected_at_s: float
    cleared_at_s: float | None = None
    description: str = ""


@dataclass
class DetectionRecord:
    provider: str
    detector: str
    at_s: float
    reason: str
    score: float | None = None


@dataclass
class FailoverRecord:
    provider: str
    action: str  # drain | restore | degrade
    at_s: float
    detector: str = ""
    reason: str = ""


@dataclass
class Incident:
    fault_id: str
    ttd_s: float | None  # first detection − injection
    ttm_s: float | None  # first drain − injection
    ttr_s: float | None  # injection → customer side back within SLO, sustained
    impact_requests: int = 0  # failed or over-SLO-latency requests during the incident


@dataclass
class ReconciliationRecord:
    double_charges: int | None = None
    lost_payments: int | None = None
    orphans: int | None = None
    voided_late_successes: int | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class HypothesisResult:
    expr: str
    observed: Any
    ok: bool
    expected: str = ""


@dataclass
class TimelinePoint:
    """One second of customer-side traffic, bucketed by arrival time."""

    t_s: float
    requests: int = 0
    approved: int = 0
    declined: int = 0
    pending: int = 0
    failed: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @property
    def availability(self) -> float | None:
        return (self.requests - self.failed) / self.requests if self.requests else None


@dataclass
class ProviderPoint:
    """One sampling interval of one provider, as the gateway saw it."""

    t_s: float
    provider: str
    attempts: int = 0
    failures: int = 0  # provider-side errors; customer declines excluded
    timeouts: int = 0
    p95_ms: float | None = None
    oldest_inflight_age_s: float | None = None
    drained: bool = False


@dataclass
class Report:
    runbook: str
    seed: int
    started_at: str  # ISO 8601 with time zone
    verdict: str = "fail"  # pass | fail | aborted
    duration_s: float = 0.0
    traffic: Traffic = field(default_factory=Traffic)
    faults: list[FaultRecord] = field(default_factory=list)
    detections: list[DetectionRecord] = field(default_factory=list)
    failovers: list[FailoverRecord] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    mttr_s: float | None = None
    reconciliation: ReconciliationRecord = field(default_factory=ReconciliationRecord)
    hypotheses: list[HypothesisResult] = field(default_factory=list)
    # -- beyond the required schema ------------------------------------------------------
    description: str = ""
    target: str = "reference stack"
    abort_reason: str | None = None
    timeline: list[TimelinePoint] = field(default_factory=list)
    provider_timeline: list[ProviderPoint] = field(default_factory=list)
    slo: dict[str, Any] = field(default_factory=dict)  # targets, error budget, burn rates, SLA
    load: dict[str, Any] = field(default_factory=dict)  # profile, target rate, dropped arrivals
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data = {"schema": SCHEMA, **data}
        for point, raw in zip(self.timeline, data["timeline"], strict=True):
            raw["availability"] = point.availability
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        def build(kind: type, raw: dict[str, Any]) -> Any:
            names = {f.name for f in fields(kind)}
            return kind(**{k: v for k, v in raw.items() if k in names})

        return cls(
            runbook=data["runbook"], seed=int(data["seed"]), started_at=data["started_at"],
            verdict=data["verdict"], duration_s=float(data["duration_s"]),
            traffic=build(Traffic, data["traffic"]),
            faults=[build(FaultRecord, f) for f in data["faults"]],
            detections=[build(DetectionRecord, d) for d in data["detections"]],
            failovers=[build(FailoverRecord, f) for f in data["failovers"]],
            incidents=[build(Incident, i) for i in data["incidents"]],
            mttr_s=data["mttr_s"],
            reconciliation=build(ReconciliationRecord, data["reconciliation"]),
            hypotheses=[build(HypothesisResult, h) for h in data["hypotheses"]],
            description=data.get("description", ""), target=data.get("target", ""),
            abort_reason=data.get("abort_reason"),
            timeline=[build(TimelinePoint, p) for p in data.get("timeline", [])],
            provider_timeline=[build(ProviderPoint, p) for p in data.get("provider_timeline", [])],
            slo=data.get("slo", {}), load=data.get("load", {}), notes=data.get("notes", []),
        )
