"""The parsed runbook: plain dataclasses the drill runner consumes.

A runbook (YAML, schema in docs/chaos.md and ARCHITECTURE.md "Runbooks") says which stack
to drill (:class:`TargetSpec`), how to tell it is healthy before and after
(:class:`SteadyState`), what load to put on it (:class:`LoadSpec`), which faults to inject
when (:class:`FaultStep`), when to stop early (:class:`AbortCondition`), what must hold in
the report (:class:`~paystab.chaos.hypothesis.Hypothesis`), the seed, and what it may
touch (:class:`~paystab.chaos.allow.AllowList`). Everything here is validated by
:func:`load_runbook` (in :mod:`paystab.chaos.runbook_load`); nothing here does I/O except
:meth:`TargetSpec.context`, which reads a ready file when the runbook names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paystab.chaos.allow import AllowList
from paystab.chaos.base import FaultContext, FaultSpec, ProcessRef, ProviderAddress
from paystab.chaos.hypothesis import Hypothesis
from paystab.comparison import holds
from paystab.stack.endpoints import StackEndpoints

# Measured over a sliding window of the drill's own traffic (steady-state probes, aborts).
WINDOW_METRICS: dict[str, str] = {
    "availability": "(approved + declined) / requests in the window",
    "failure_rate": "failed / requests in the window",
    "p50_ms": "median latency in the window",
    "p95_ms": "95th percentile latency in the window",
    "p99_ms": "99th percentile latency in the window",
    "rps": "completed requests per second in the window",
}


@dataclass(frozen=True)
class TargetSpec:
    """The stack to drill: paystab's reference stack (with options) or the user's own."""

    reference: bool = True
    reference_options: Mapping[str, Any] = field(default_factory=dict)  # for `paystab up`
    gateway_url: str | None = None
    ready_file: str | None = None  # a ready file describing the user's stack
    providers: Mapping[str, ProviderAddress] = field(default_factory=dict)
    containers: tuple[str, ...] = ()
    processes: Mapping[str, ProcessRef] = field(default_factory=dict)
    proxy_api: str | None = None

    def context(self, stack: StackEndpoints | None = None) -> FaultContext:
        """The fault context: the running stack's addresses, overridden by the runbook's."""
        if stack is None and self.ready_file:
            stack = StackEndpoints.read(self.ready_file)
        ctx = FaultContext.from_stack(stack) if stack is not None else FaultContext()
        for name, address in self.providers.items():
            known = ctx.providers.get(name, ProviderAddress())
            ctx.providers[name] = ProviderAddress(url=address.url or known.url,
                                                  admin_url=address.admin_url or known.admin_url)
        ctx.processes.update(self.processes)
        if self.proxy_api:
            ctx.proxy_api_url = self.proxy_api
        return ctx


@dataclass(frozen=True)
class Probe:
    """One steady-state check. ``http``: GET a URL (a path is on the gateway) and expect a
    status. ``metric``: a :data:`WINDOW_METRICS` value over the steady-state window within
    ``min``/``max``, and — after the drill — within ``tolerance`` (relative) of its value
    before."""

    name: str
    when: tuple[str, ...] = ("before", "after")
    http: str | None = None
    expect_status: int = 200
    timeout_s: float = 2.0
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    tolerance: float | None = None
    line: int | None = None

    def within_bounds(self, value: float | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def within_tolerance(self, before: float | None, after: float | None) -> bool:
        """Has the metric come back to where it was? Only the bad direction counts: a
        metric with only a ``max`` (latency) may end lower than it began, one with only a
        ``min`` (availability) higher; with both or neither, either way counts."""
        if self.tolerance is None:
            return True
        if before is None or after is None:
            return False
        allowed = self.tolerance * max(abs(before), 1e-9)
        if self.max is not None and self.min is None:
            return after - before <= allowed
        if self.min is not None and self.max is None:
            return before - after <= allowed
        return abs(after - before) <= allowed


@dataclass(frozen=True)
class SteadyState:
    window_s: float = 10.0
    probes: tuple[Probe, ...] = ()


@dataclass(frozen=True)
class LoadSpec:
    """The load shape: ``paystab.loadtest.profiles.make_profile(profile, rate_per_s,
    duration_s, params)`` builds it (validated at load); ``params`` are the profile's own
    (``factor``, ``start_s`` … for ``spike``), durations already in seconds."""

    profile: str = "steady"
    rate_per_s: float = 50.0
    duration_s: float = 60.0
    users: int | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    # The shortest ``--duration`` the hypotheses can still be judged in (fault schedule,
    # detector warm-up and recovery windows scale with the duration; these do not).
    min_duration_s: float = 20.0
    # What each arrival sends, when the runbook says (``load.flow``, ``flow_file`` or
    # ``locustfile``); None: the stack file's checkout (``drill --stack``), else paystab's payment.
    checkout: LoadCheckout | None = None


@dataclass(frozen=True)
class LoadCheckout:
    """The runbook's own checkout: ``kind`` is the key it was given under (``flow``,
    ``flow_file``, ``locustfile``); ``flow`` the checked flow as JSON (for both flow keys:
    a flow file is read when the runbook loads); ``locustfile`` an absolute path, imported
    only when the drill starts (importing Locust gevent-patches the process)."""

    kind: str
    flow: Mapping[str, Any] | None = None
    locustfile: str | None = None
    line: int | None = None

    def describe(self) -> str:
        if self.kind == "locustfile":
            return f"load.locustfile ({self.locustfile})"
        name = (self.flow or {}).get("name", "flow")
        return f"load.{self.kind} (flow '{name}')"


@dataclass(frozen=True)
class FaultStep:
    """A fault on the schedule: inject at ``at_s``, clear after ``duration_s`` (None =
    at the end of the load). ``spec`` is ready for ``FaultSession.prepare``."""

    spec: FaultSpec
    at_s: float
    duration_s: float | None
    line: int | None = None  # of the entry; target_line: of its target, for messages
    target_line: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def clear_at_s(self, load_duration_s: float) -> float:
        end = load_duration_s if self.duration_s is None else self.at_s + self.duration_s
        return min(end, load_duration_s)


@dataclass(frozen=True)
class AbortCondition:
    """Stop the drill (verdict ``aborted``) when ``metric op threshold`` over the last
    ``window_s`` seconds, e.g. availability < 0.9 over 30 s."""

    expr: str
    metric: str
    op: str
    threshold: float
    window_s: float
    line: int | None = None

    def triggered(self, value: float | None) -> bool:
        return value is not None and holds(self.op, value, self.threshold)


@dataclass(frozen=True)
class Runbook:
    name: str
    description: str
    source: str
    seed: int
    target: TargetSpec
    steady_state: SteadyState
    load: LoadSpec
    faults: tuple[FaultStep, ...]
    abort_when: tuple[AbortCondition, ...]
    hypotheses: tuple[Hypothesis, ...]
    allow: AllowList

    def fault_specs(self) -> list[FaultSpec]:
        return [step.spec for step in self.faults]

    def evaluate(self, report: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The report's ``hypotheses`` list: every assertion with what was observed."""
        return [h.evaluate(report).to_json() for h in self.hypotheses]


def load_runbook(path: str | Path) -> Runbook:
    """Read and validate a runbook file (see :mod:`paystab.chaos.runbook_load`)."""
    from paystab.chaos.runbook_load import load_runbook_file

    return load_runbook_file(path)
