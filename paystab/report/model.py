"""The drill report as data: schema ``paystab.report/v1`` plus the series behind the plots.

A drill fills a :class:`Report`; renderers (terminal, JSON, JUnit, HTML) only read it.
The ``slo`` section is a plain dict in the report (so it round-trips through JSON as is);
:class:`SloSummary` is its typed view, filled by :func:`paystab.slo.fill_report`.
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
    provider: str | None = None  # the provider it hits, when it hits one (TTD/TTM filter)


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
    provider: str | None = None  # detections/failovers counted only for it (None: any)
    impact_start_s: float | None = None  # first unhealthy 1-s bucket (None: no impact)
    recovered_at_s: float | None = None  # start of the sustained healthy run
    note: str = ""  # e.g. why ttr_s is null


@dataclass
class ReconciliationRecord:
    double_charges: int | None = None
    lost_payments: int | None = None
    orphans: int | None = None
    voided_late_successes: int | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    # after the findings (positional callers predate it): a live capture of another currency,
    # or less than the order
    amount_mismatches: int | None = None


@dataclass
class HypothesisResult:
    """One runbook assertion as judged. ``ok`` is ``None`` when it is not applicable: the
    target does not provide the data (a stack without ledgers to reconcile, say); such a
    hypothesis is shown, never failed and never silently passed. ``status`` says the same
    in words; ``expected`` carries why it could not be judged when not applicable."""

    expr: str
    observed: Any
    ok: bool | None
    expected: str = ""
    status: str = ""  # pass | fail | not_applicable; derived from ``ok`` when left empty

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "not_applicable" if self.ok is None else ("pass" if self.ok else "fail")

    @property
    def metric(self) -> str:
        """The report variable the expression judges (its first left-hand name)."""
        return self.expr.split(None, 1)[0] if self.expr else ""


@dataclass
class FalseFailover:
    """A drain with no injected fault on that provider to explain it (see ``FalseFailovers``)."""

    provider: str
    at_s: float
    detector: str = ""
    reason: str = ""
    action: str = "drain"


@dataclass
class FalseFailovers:
    """Drains outside every injected fault's window on the drained provider, plus ``grace_s``.

    A fault's window runs from its injection to its clearing (the end of the load when it is
    never cleared) plus the grace; a fault that names no provider (the gateway, a network
    path shared by all) explains drains of any provider. Bundled runbooks require 0.
    """

    count: int = 0
    grace_s: float = 0.0
    events: list[FalseFailover] = field(default_factory=list)


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
    verdict: str = "fail"  # pass | fail | aborted | inconclusive
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
    false_failovers: FalseFailovers = field(default_factory=FalseFailovers)
    # Why the measuring apparatus, not the stack, decided the run (verdict "inconclusive").
    inconclusive_reason: str | None = None
    harness: dict[str, Any] = field(default_factory=dict)  # load generator CPU, lag, drops
    # paystab version, host, runbook file and sha256, seed, command line (drill/provenance.py)
    provenance: dict[str, Any] = field(default_factory=dict)

    def judgement(self, metric: str) -> HypothesisResult | None:
        """The runbook hypothesis that judges ``metric`` (e.g. ``p95_ms``), if any."""
        for hypothesis in self.hypotheses:
            if hypothesis.metric in (metric, f"traffic.{metric}"):
                return hypothesis
        return None

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
            false_failovers=_false_failovers(data.get("false_failovers")),
            inconclusive_reason=data.get("inconclusive_reason"),
            harness=data.get("harness") or {},
            provenance=data.get("provenance") or {},
        )


def _false_failovers(raw: dict[str, Any] | None) -> FalseFailovers:
    if not raw:
        return FalseFailovers()
    names = {f.name for f in fields(FalseFailover)}
    events = [FalseFailover(**{k: v for k, v in e.items() if k in names})
              for e in raw.get("events") or []]
    return FalseFailovers(count=int(raw.get("count", len(events))),
                          grace_s=float(raw.get("grace_s", 0.0)), events=events)


# -- the "slo" section: written by paystab.slo.fill_report, read by the renderers --------


@dataclass(frozen=True)
class SloTargets:
    """The objectives a drill is judged against (defaults: the seed documents' targets)."""

    availability: float = 0.9999
    latency_ms: float = 500.0  # p95 per 1-s bucket
    sustain_s: int = 5  # healthy seconds in a row that count as recovered
    burn_window_s: float = 10.0
    provider_sla: float = 0.9995
    provider_sla_promotion: float = 0.999
    promotion: bool = False

    @property
    def sla(self) -> float:
        return self.provider_sla_promotion if self.promotion else self.provider_sla


@dataclass
class ErrorBudget:
    target: float
    requests: int
    failed: int
    allowed_failures: float  # requests × (1 − target)
    used: float | None  # failure_rate / (1 − target); 1.0 = all of it


@dataclass
class BurnWindow:
    start_s: float
    end_s: float
    requests: int
    failed: int
    burn_rate: float | None  # window failure rate / (1 − target); None without traffic


@dataclass
class ProviderHealth:
    provider: str
    attempts: int
    failures: int
    success: float | None  # 1 − failures / attempts (declines are not failures)
    sla_target: float
    sla_met: bool | None
    p95_ms: float | None  # attempt-weighted mean of the interval p95s
    share: float  # of all attempts in the drill
    minutes_drained: float
    health_score: float | None  # 0..100, see paystab.slo.health_score


def _build(kind: type, raw: Any) -> Any:
    names = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in (raw or {}).items() if k in names})


@dataclass
class SloSummary:
    """What ``Report.slo`` holds, typed; renderers read it through :meth:`from_json`."""

    targets: SloTargets = field(default_factory=SloTargets)
    error_budget: ErrorBudget | None = None
    burn_rates: list[BurnWindow] = field(default_factory=list)
    providers: list[ProviderHealth] = field(default_factory=list)

    @property
    def max_burn_rate(self) -> float | None:
        rates = [w.burn_rate for w in self.burn_rates if w.burn_rate is not None]
        return max(rates) if rates else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["max_burn_rate"] = self.max_burn_rate
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SloSummary:
        """Tolerant: a report written without an ``slo`` section gives empty tables."""
        data = data or {}
        budget = data.get("error_budget")
        return cls(
            targets=_build(SloTargets, data.get("targets")),
            error_budget=_build(ErrorBudget, budget) if budget else None,
            burn_rates=[_build(BurnWindow, w) for w in data.get("burn_rates") or []],
            providers=[_build(ProviderHealth, p) for p in data.get("providers") or []],
        )
