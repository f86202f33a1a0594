"""The outcome of a load run as plain data: summary, windows, thresholds, records.

Built once from the sink after the run has drained; the terminal view, ``--json`` and
``--csv`` only render it. JSON schema ``paystab.load/v1``::

  {"schema", "target", "run_id", "started_at" (ISO 8601), "profile": {profile, rate,
   duration_s, peak_rate, params}, "seed", "users", "processes", "elapsed_s", "window_s",
   "interrupted", "passed", "summary": Summary, "windows": [Summary + index],
   "thresholds": [{expr, observed, ok, ok_run, breaches: [{window, start_s, end_s,
   observed}]}], "generator": {issued, dropped, max_lag_ms, cpu_s, requests_per_cpu_s,
   interrupted_checkouts, callback_errors}, "expected_peak"?, "peak_ratio"?,
   "workers"? (``--master`` runs: expected, joined, complete, flow, workers, lost, refused)}

Times ``*_s`` inside summaries and windows are seconds from the run start.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from paystab.loadtest.plan import LoadPlan
from paystab.loadtest.records import CheckoutRecord, RecordSink
from paystab.loadtest.stats import Summary, Window, summarize, windows
from paystab.loadtest.thresholds import Threshold, ThresholdResult, evaluate

SCHEMA = "paystab.load/v1"


@dataclass
class LoadResult:
    plan: LoadPlan
    target_url: str
    started_at: float  # epoch s of t=0
    elapsed_s: float
    window_s: float
    summary: Summary
    windows: list[Window]
    thresholds: list[ThresholdResult]
    records: list[CheckoutRecord]
    processes: int = 1
    interrupted: bool = False
    generator: dict[str, Any] = field(default_factory=dict)
    expected_peak: float | None = None
    workers: dict[str, Any] | None = None  # a --master run: who joined, who was lost

    @property
    def passed(self) -> bool:
        return all(t.ok for t in self.thresholds)

    @property
    def breached(self) -> list[ThresholdResult]:
        return [t for t in self.thresholds if not t.ok]

    def breach_message(self) -> str:
        return "thresholds breached:\n  " + "\n  ".join(t.describe() for t in self.breached)

    def to_json(self) -> dict[str, Any]:
        profile = self.plan.make_profile()
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "target": self.target_url,
            "run_id": self.plan.run_id,
            "started_at": datetime.fromtimestamp(self.started_at, UTC).isoformat(),
            "profile": profile.describe(),
            "seed": self.plan.seed,
            "users": self.plan.users,
            "processes": self.processes,
            "elapsed_s": round(self.elapsed_s, 3),
            "window_s": self.window_s,
            "interrupted": self.interrupted,
            "passed": self.passed,
            "summary": self.summary.to_json(),
            "windows": [w.to_json() for w in self.windows],
            "thresholds": [t.to_json() for t in self.thresholds],
            "generator": self.generator,
        }
        if self.expected_peak:
            data["expected_peak"] = self.expected_peak
            data["peak_ratio"] = profile.peak_rate() / self.expected_peak
        if self.workers is not None:
            data["workers"] = self.workers
        return data

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")


def build_result(
    plan: LoadPlan, sink: RecordSink, *, target_url: str, run_start: float, elapsed_s: float,
    thresholds: list[Threshold], window_s: float, processes: int = 1,
    interrupted: bool = False, harness_cpu_s: float = 0.0, interrupted_checkouts: int = 0,
    expected_peak: float | None = None,
) -> LoadResult:
    """Summaries over the run (every record, every drop) and its windows, then thresholds."""
    records = sorted(sink.records, key=lambda r: r.started_at)
    span_s = plan.duration_s if not interrupted else max(min(elapsed_s, plan.duration_s), 1e-3)
    run = summarize(records, sink.dropped_total, 0.0, span_s)
    series = windows(records, sink.dropped_by_tick, run_start, span_s, window_s)
    issued = sum(s.issued for s in sink.sources.values())
    generator = {
        "issued": issued,
        "dropped": sink.dropped_total,
        "max_lag_ms": round(max((s.max_lag_ms for s in sink.sources.values()), default=0.0), 3),
        "cpu_s": round(harness_cpu_s, 4),
        "requests_per_cpu_s": round(run.requests / harness_cpu_s, 1) if harness_cpu_s > 0
        else None,
        "interrupted_checkouts": interrupted_checkouts,
        "callback_errors": sink.callback_errors,
    }
    return LoadResult(
        plan=plan, target_url=target_url, started_at=run_start, elapsed_s=elapsed_s,
        window_s=window_s, summary=run, windows=series,
        thresholds=evaluate(thresholds, run, series), records=records, processes=processes,
        interrupted=interrupted, generator=generator, expected_peak=expected_peak,
    )


def format_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"
