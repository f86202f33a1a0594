"""The runbook file as a pydantic model: which keys exist, their types, units and limits.

This is the one description of the runbook format: :mod:`paystab.chaos.runbook_load`
validates a file against it (then checks what needs the fault registry, the load profiles
and the target: kinds, parameters, names, the schedule, the blast radius) and turns it into
the :class:`~paystab.chaos.runbook.Runbook` dataclasses; ``paystab schema export`` writes
its JSON Schema (``runbook.schema.json``) for editors. Durations carry their unit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from paystab.config.types import Duration, Rate, Share, Strict
from paystab.loadtest.flow import Flow

WEEK_S = 7 * 86400.0
Name = Annotated[str, Field(min_length=1)]
Url = Annotated[str, Field(pattern=r"^https?://\S+$", description="http://HOST:PORT")]


class ProviderAddressModel(Strict):
    url: Url | None = None
    admin_url: Url | None = None


class ProcessModel(Strict):
    """How to find a process of the user's stack: exactly one of pid, pidfile, cmd."""

    pid: int | None = Field(default=None, ge=2)
    pidfile: Name | None = None
    cmd: Name | None = None
    restart: Name | None = Field(default=None, description="command that starts it again")

    @model_validator(mode="after")
    def _one_way(self) -> ProcessModel:
        if sum(x is not None for x in (self.pid, self.pidfile, self.cmd)) != 1:
            raise ValueError("say how to find the process (expected exactly one of pid, "
                             "pidfile, cmd)")
        return self


class TargetModel(Strict):
    """The reference stack (``reference``, with ``up --config`` options) or your own."""

    reference: Literal[True] | dict[str, Any] | None = None
    gateway_url: Url | None = None
    ready_file: Name | None = Field(default=None, description="ready file of your stack")
    providers: dict[str, ProviderAddressModel | None] | None = None
    containers: list[Name] | None = None
    processes: dict[str, ProcessModel] | None = None
    proxy_api: Url | None = None


class LoadModel(Strict):
    profile: Name = Field(default="steady", description="a load profile: steady, spike, ramp …")
    rate: Rate = Field(ge=0.01)
    duration: Duration = Field(ge=1.0, le=WEEK_S)
    min_duration: Duration | None = Field(default=None, ge=1.0, le=WEEK_S, description=(
        "the shortest --duration the hypotheses can still be judged in (default: 20s)"))
    users: int | None = Field(default=None, ge=1)
    params: dict[str, float | str] | None = Field(default=None, description=(
        "the profile's own parameters; those in seconds take a duration (10s)"))
    # What each arrival sends: at most one (the loader checks, at the second key's line). None:
    # the stack file's checkout (`paystab drill --stack`), else paystab's own payment. One given
    # wins over the stack file's.
    flow: Flow | None = Field(default=None, description=(
        "an inline checkout flow: the same model as the flow: of `paystab load --flow` files"))
    flow_file: Name | None = Field(default=None, description=(
        "a flow file (as for `paystab load --flow`), relative to the runbook"))
    locustfile: Name | None = Field(default=None, description=(
        "your Locust file (as for `paystab load -f`), relative to the runbook"))


CHECKOUT_KEYS = ("flow", "flow_file", "locustfile")


WhenChoice = Literal["before", "after"]


class ProbeModel(Strict):
    """One steady-state check: ``http`` (a URL or gateway path) or ``metric`` in bounds."""

    name: Name
    when: Literal["before", "after", "both"] | list[WhenChoice] | None = None
    http: Name | None = None
    expect_status: int = Field(default=200, ge=100, le=599)
    timeout: Duration = Field(default=2.0, ge=0.01, le=300.0)
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    tolerance: Share | None = Field(default=None, ge=0.0, le=100.0)

    @model_validator(mode="after")
    def _one_check(self) -> ProbeModel:
        if (self.http is None) == (self.metric is None):
            raise ValueError("a probe checks one thing (expected exactly one of http, metric)")
        if self.metric is None and any(v is not None for v in (self.min, self.max,
                                                                 self.tolerance)):
            raise ValueError("min, max and tolerance are for metric probes (expected metric: "
                             "NAME)")
        return self


class SteadyStateModel(Strict):
    window: Duration = Field(default=10.0, ge=1.0)
    probes: list[ProbeModel] | None = None


class FaultModel(Strict):
    name: Name | None = Field(default=None, description="unique in the runbook; default fault-N")
    at: Duration = Field(ge=0.0, description="when to inject, from the start of the load")
    duration: Duration | None = Field(default=None, ge=0.001, description=(
        "how long it lasts; default: to the end of the load"))
    kind: Name = Field(description="a fault kind (`paystab chaos kinds`)")
    target: Name
    params: dict[str, Any] | None = None


class AbortModel(Strict):
    when: Name = Field(description="METRIC OP NUMBER, e.g. availability < 0.9")
    window: Duration = Field(default=30.0, ge=1.0)


def _abort_tag(value: Any) -> str:
    return "text" if isinstance(value, str) else "map"


AbortItem = Annotated[
    Annotated[str, Tag("text"), Field(description="METRIC OP NUMBER [over DURATION]")]
    | Annotated[AbortModel, Tag("map")],
    Discriminator(_abort_tag),
]


class RunbookModel(Strict):
    """A drill: target, steady state, load, faults on a schedule, aborts, hypotheses."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$",
                      description="lowercase letters, digits, - _ .")
    description: Name
    seed: int | None = Field(default=None, ge=0)
    target: TargetModel | None = None
    steady_state: SteadyStateModel | None = None
    load: LoadModel
    faults: list[FaultModel] | None = None
    abort_when: list[AbortItem] | None = None
    hypotheses: list[Name] | None = Field(default=None, description=(
        "assertions on the report, e.g. availability >= 99.9%"))
    allow: list[Name] | None = Field(default=None, description=(
        "the blast radius: HOST:PORT, provider:NAME, container:NAME, pid:N …"))
