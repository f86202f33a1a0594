"""Steady-state probes: is the stack healthy before the drill, and again after it?

HTTP probes are checked against the live stack before the load and after the faults are
cleared; metric probes against the drill's own customer traffic — "before" over the window
that ends when the first fault is injected, "after" over the last window of the load —
with ``tolerance`` comparing the two. Each outcome becomes a report hypothesis
(``steady_state.before: <name>``), so JUnit and the HTML show them with the rest.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from paystab.chaos.runbook import Probe, Runbook
from paystab.drill.recorder import Recorder
from paystab.httpclient import get_status
from paystab.report.model import HypothesisResult


@dataclass
class ProbeOutcome:
    name: str
    when: str
    ok: bool
    observed: float | int | str | None
    expected: str

    def as_hypothesis(self) -> HypothesisResult:
        return HypothesisResult(f"steady_state.{self.when}: {self.name} ({self.expected})", self.observed, self.ok)


def http_probes(probes: Sequence[Probe], gateway_url: str, when: str,
                token: str | None = None) -> list[ProbeOutcome]:
    """GET each HTTP probe (through ``paystab.httpclient``). ``token`` goes only to probes
    on the gateway itself (a path, or a URL with the gateway's origin), never elsewhere."""
    out = []
    for probe in probes:
        if probe.http is None or when not in probe.when:
            continue
        url = probe.http if "://" in probe.http else gateway_url.rstrip("/") + "/" + probe.http.lstrip("/")
        status = get_status(url, probe.timeout_s, token if _same_origin(url, gateway_url) else None)
        out.append(ProbeOutcome(probe.name, when, status == probe.expect_status, status,
                                f"HTTP {probe.expect_status} from {url}"))
    return out


def _same_origin(url: str, base: str) -> bool:
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _bounds(probe: Probe) -> str:
    parts = []
    if probe.min is not None:
        parts.append(f">= {probe.min:g}")
    if probe.max is not None:
        parts.append(f"<= {probe.max:g}")
    return " and ".join(parts) or "measured"


def metric_probes(runbook: Runbook, recorder: Recorder, duration_s: float) -> list[ProbeOutcome]:
    window = runbook.steady_state.window_s
    first_fault = min((s.at_s for s in runbook.faults), default=duration_s)
    before_end = max(min(first_fault, duration_s), 0.0)
    out = []
    for probe in runbook.steady_state.probes:
        if probe.metric is None:
            continue
        before = recorder.window(before_end, min(window, before_end) or window).get(probe.metric)
        after = recorder.window(duration_s, window).get(probe.metric)
        if "before" in probe.when:
            out.append(ProbeOutcome(probe.name, "before", probe.within_bounds(before), before, _bounds(probe)))
        if "after" in probe.when:
            ok = probe.within_bounds(after) and probe.within_tolerance(before, after)
            expected = _bounds(probe)
            if probe.tolerance is not None:
                shown = "n/a" if before is None else f"{before:.4g}"
                expected += f", within {probe.tolerance:.0%} of before ({shown})"
            out.append(ProbeOutcome(probe.name, "after", ok, after, expected))
    return out
