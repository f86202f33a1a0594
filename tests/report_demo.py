"""A synthetic but realistic drill report, for docs, renderer tests and trying renderers.

:func:`demo_report` simulates the customer and provider side of a 60-s ``provider-timeout``
style drill at 100 payments/s without any network: cards split over three providers,
wallets over two; ``card-alpha`` hangs at 15 s (requests routed to it wait for the
gateway's 2-s response timeout and are retried elsewhere) until it is detected and
drained; ``wallet-paypay`` slows down by 900 ms at 42 s. Detections, drains and restores
follow, then :func:`paystab.slo.fill_report` computes traffic, timeline, incidents and the
SLO section exactly as a real drill does. ``severe=True`` makes detection slow and some
hung payments fail, so the hypotheses fail. Deterministic for a given seed.
"""

from __future__ import annotations

import math
import random

from paystab.report.model import (
    DetectionRecord,
    FailoverRecord,
    FaultRecord,
    HypothesisResult,
    Incident,
    ProviderPoint,
    ReconciliationRecord,
    Report,
)
from paystab.slo import RequestSample, fill_report
from paystab.stats_math import percentile

SHARES = {"card": {"card-alpha": 0.4, "card-bravo": 0.35, "card-charlie": 0.25},
          "wallet": {"wallet-paypay": 0.6, "wallet-kakao": 0.4}}
HYPOTHESES = ("availability >= 0.9999", "mttr_s <= 5", "max_ttd_s <= 2", "double_charges == 0",
              "lost_payments == 0", "orphans == 0")


def _events(severe: bool) -> tuple[list[FaultRecord], list[DetectionRecord], list[FailoverRecord]]:
    drain_alpha = 18.2 if severe else 15.6
    faults = [
        FaultRecord("alpha-hang", "provider.hang", "provider:card-alpha", {}, 15.0, 35.0,
                    "card-alpha accepts connections and never answers", provider="card-alpha"),
        FaultRecord("paypay-slow", "provider.latency", "provider:wallet-paypay",
                    {"latency_s": 0.9}, 42.0, 50.0, "wallet-paypay answers 900 ms later",
                    provider="wallet-paypay"),
    ]
    detections = [
        DetectionRecord("card-alpha", "hang", drain_alpha - 0.1,
                        "oldest in-flight request 0.5 s old", 9.1),
        DetectionRecord("card-alpha", "failure_rate", drain_alpha + 1.4,
                        "CUSUM of timeouts crossed h=5.2", 6.3),
        DetectionRecord("wallet-paypay", "latency", 42.6, "p95 1,010 ms vs baseline 60 ms", 7.7),
    ]
    failovers = [
        FailoverRecord("card-alpha", "drain", drain_alpha, "hang", "hang detected"),
        FailoverRecord("wallet-paypay", "drain", 42.7, "latency", "latency anomaly"),
        FailoverRecord("card-alpha", "restore", 38.5, "probe", "half-open probes healthy"),
        FailoverRecord("wallet-paypay", "restore", 53.0, "probe", "half-open probes healthy"),
    ]
    return faults, detections, failovers


def _drained(provider: str, t: float, failovers: list[FailoverRecord]) -> bool:
    state = False
    for f in sorted(failovers, key=lambda f: f.at_s):
        if f.provider == provider and f.at_s <= t:
            state = f.action == "drain"
    return state


def demo_report(seed: int = 7, *, severe: bool = False, duration_s: float = 60.0,
                rate: int = 100) -> Report:
    """The demo drill report (verdict from its hypotheses)."""
    rng = random.Random(seed)
    faults, detections, failovers = _events(severe)
    samples: list[RequestSample] = []
    attempts: dict[tuple[int, str], list[float]] = {}  # (second, provider) → attempt latencies
    failures: dict[tuple[int, str], int] = {}
    for second in range(int(duration_s)):
        for index in range(rate):
            t = second + (index + rng.random()) / rate
            method = "card" if rng.random() < 0.7 else "wallet"
            choices = {p: s for p, s in SHARES[method].items() if not _drained(p, t, failovers)}
            provider = rng.choices(list(choices), weights=list(choices.values()))[0]
            latency = rng.lognormvariate(math.log(45.0), 0.35)
            outcome = "declined" if rng.random() < 0.03 else "approved"
            hung = provider == "card-alpha" and 15.0 <= t < 35.0
            slow = provider == "wallet-paypay" and 42.0 <= t < 50.0
            key = (second, provider)
            attempts.setdefault(key, []).append(2000.0 if hung else latency + 900 * slow)
            if hung:
                failures[key] = failures.get(key, 0) + 1
                backup = "card-bravo"
                attempts.setdefault((second, backup), []).append(latency)
                latency += 2000.0 + rng.uniform(5, 40)  # response timeout, status look-up, retry
                if severe and rng.random() < 0.08:
                    outcome = "failed"
            elif slow:
                latency += 900.0
            if method == "wallet" and outcome == "approved" and rng.random() < 0.004:
                outcome = "pending"
            samples.append(RequestSample(t, outcome, latency))
    for second in range(int(duration_s)):  # a sampler reports every provider every interval
        for provider in (p for shares in SHARES.values() for p in shares):
            attempts.setdefault((second, provider), [])
    points = []
    for (second, provider), values in sorted(attempts.items()):
        values.sort()
        points.append(ProviderPoint(
            float(second), provider, attempts=len(values),
            failures=failures.get((second, provider), 0),
            timeouts=failures.get((second, provider), 0), p95_ms=percentile(values, 95),
            drained=_drained(provider, second + 0.5, failovers)))
    report = Report(
        runbook="provider-timeout", seed=seed, started_at="2025-03-14T10:00:00+09:00",
        duration_s=duration_s, faults=faults, detections=detections, failovers=failovers,
        reconciliation=ReconciliationRecord(0, 0, 0, 3, amount_mismatches=0),
        description="A card provider stops answering under 100 payments/s; the gateway must "
                    "detect it, drain it, keep customers served and lose no money.",
        target="reference stack (demo data)", provider_timeline=points,
        load={"profile": "steady", "target_rps": rate, "duration_s": duration_s},
    )
    fill_report(report, samples)
    _judge(report)
    return report


def _judge(report: Report) -> None:
    from paystab.chaos.hypothesis import Hypothesis

    data = report.to_json()
    for text in HYPOTHESES:
        result = Hypothesis.parse(text).evaluate(data)
        report.hypotheses.append(HypothesisResult(result.expr, result.observed, result.ok))
    report.verdict = "pass" if all(h.ok is not False for h in report.hypotheses) else "fail"


def aborted_report() -> Report:
    """A drill stopped by its abort condition: a fault never cleared, no recovery."""
    report = Report(
        runbook="region-outage", seed=3, started_at="2025-03-14T11:00:00+09:00",
        duration_s=12.0, verdict="aborted",
        abort_reason="availability over the last 10 s fell below the floor of 95 %",
        faults=[FaultRecord("wallets-down", "provider.error_burst", "method:wallet",
                            {"code": "SYSTEM_ERROR", "ratio": 1.0}, 4.0, None)],
        detections=[DetectionRecord("wallet-paypay", "failure_rate", 4.4, "CUSUM h=5.2")],
        failovers=[FailoverRecord("wallet-paypay", "degrade", 4.6, "failure_rate",
                                  "last healthy wallet provider: degrade, not drain")],
        reconciliation=ReconciliationRecord(0, 0, 0, 0, amount_mismatches=0),
        notes=["aborted by abort_when; every fault was cleared before the report was written"],
    )
    rng = random.Random(3)
    samples = [RequestSample(t / 50, "failed" if t / 50 >= 4.0 and rng.random() < 0.3
                             else "approved", rng.uniform(30, 90)) for t in range(600)]
    fill_report(report, samples)
    report.hypotheses = [HypothesisResult("availability >= 0.9999", report.traffic.availability,
                                          False),
                         HypothesisResult("mttr_s <= 60", None, False)]
    return report


def unmeasured_report() -> Report:
    """Every optional value null: no traffic reached the target, no ledgers to reconcile."""
    return Report(
        runbook="custom", seed=0, started_at="2025-03-14T12:00:00Z", duration_s=0.0,
        verdict="fail",
        faults=[FaultRecord("f1", "process.stop", "process:gateway", {}, 0.0, None)],
        incidents=[Incident("f1", None, None, None, note="not back within SLO")],
        hypotheses=[HypothesisResult("double_charges == 0", None, False)],
    )


def demo_variants() -> dict[str, Report]:
    """One report of each kind a renderer must handle, by name."""
    return {"pass": demo_report(), "fail": demo_report(severe=True),
            "aborted": aborted_report(), "unmeasured": unmeasured_report()}
