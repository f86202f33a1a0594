"""The stack file as a pydantic model: one description of a payment stack paystab can drill.

A stack file says how load reaches the stack (``checkout``: a declarative flow, a flow file
or the user's locustfile), which paystab PSP simulators stand in for its PSPs and how the
stack is pointed at them (``simulators``, ``service.env``), what to start (``service``),
where its telemetry is and how its failover switch is thrown (``telemetry``, ``failover``:
the very parts ``paystab watch`` runs), its ledgers, and the blast radius of faults outside
the simulators. The parts reuse the models of the files they come from (the watch config's
sources, actuators, failover policy and safety; ``paystab load --flow``'s flow) so one
stanza means the same thing in every file. The loader (:mod:`.load`) fills ``${env:…}``,
checks the rest, and reports every problem at once as ``file:line: field: problem``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator, model_validator

from paystab.config.types import Duration, Strict, one_of
from paystab.ledgers.spec import LedgersSpec
from paystab.loadtest.flow import Flow
from paystab.watch.config import (
    Actuator,
    Failover,
    ProviderSpec,
    Safety,
    Source,
)
from paystab.watch.config import Duration as WatchDuration

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Method = Literal["card", "wallet", "bank_transfer", "konbini"]
Url = Annotated[str, Field(pattern=r"^https?://\S+$", description="http://HOST:PORT[/path]")]
Path = Annotated[str, Field(min_length=1, description="a file; relative to the stack file")]


def _dialects() -> tuple[str, ...]:
    from paystab.stack.dialects import DIALECTS  # the dialect modules load on demand

    return tuple(sorted(DIALECTS))


def _dialect(name: str) -> str:
    return one_of(_dialects(), "dialect")(name)


Dialect = Annotated[str, AfterValidator(_dialect), WithJsonSchema({
    "type": "string", "description": "the PSP API the simulator speaks: stripe, adyen, paypay, "
    "komoju (the official SDKs accept these), or one of paystab's own dialects"})]


class ServiceSpec(Strict):
    """The stack's own service, started after the simulators and stopped after the drill.

    No shell: ``command`` is an argv, run in the stack file's folder, in a session of its
    own, killed if paystab dies. ``env`` values (and ``command`` elements) may use
    ``${simulators.NAME.url|api_key|webhook_secret|ca_file|admin_url}``."""

    command: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    env: dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)], str] = Field(default_factory=dict)
    health: Url | None = Field(default=None, description="GET answers 2xx once the service is "
                               "ready (default: checkout.base_url answers at all)")
    start_timeout: Duration = Field(default=30.0, gt=0, le=600)
    stop_timeout: Duration = Field(default=10.0, gt=0, le=600, description="SIGTERM, then "
                                   "SIGKILL after this long")
    inherit_env: bool = Field(default=True, description="start from paystab's environment "
                              "(PATH, HOME …) and add env on top")


class CheckoutSpec(Strict):
    """How load reaches the stack: at most one of ``flow``, ``flow_file``, ``locustfile``;
    none of them means paystab's own payment API (``POST /v1/payments``)."""

    base_url: Url
    flow: Flow | None = Field(default=None, description="the same model as the flow: of "
                              "`paystab load --flow` files")
    flow_file: Path | None = None
    locustfile: Path | None = None

    @model_validator(mode="after")
    def _one_way(self) -> CheckoutSpec:
        given = [k for k in ("flow", "flow_file", "locustfile") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} both say how to check out (expected at "
                             "most one of flow, flow_file, locustfile)")
        return self

    @property
    def kind(self) -> str:
        if self.flow is not None:
            return "flow"
        if self.flow_file is not None:
            return "flow_file"
        if self.locustfile is not None:
            return "locustfile"
        return "paystab"


class SimulatorSpec(Strict):
    """A paystab PSP simulator standing in for one of the stack's PSPs."""

    name: str = Field(pattern=NAME_PATTERN, description="the provider name as the stack's "
                      "metrics and failover switch know it; runbook fault targets use it")
    dialect: Dialect
    methods: list[Method] = Field(default_factory=lambda: list[Method](["card"]), min_length=1)
    env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN, description=(
        "the variable the service reads this PSP's base URL from (documentation when there "
        "is no service: block)"))
    tls: bool = Field(default=False, description=(
        "serve HTTPS with a local CA (its PEM: ${simulators.NAME.ca_file}); the simulators "
        "run in one process, so the same for all of them"))
    latency_median: Duration | None = Field(default=None, ge=0, le=60)
    decline_mix: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] | None = Field(
        default=None, description="unified decline code -> share of charges, e.g. "
        "declined.insufficient_funds: 0.01 (default: the simulator's)")


class TelemetrySpec(Strict):
    """Where detection reads the stack's telemetry (the `paystab watch` sources)."""

    interval_s: WatchDuration = Field(default=0.5, ge=0.05, le=60)
    providers: list[ProviderSpec] = Field(default_factory=list, description=(
        "default: the simulators' names and methods"))
    sources: list[Source] = Field(min_length=1)
    detectors: dict[str, dict[str, Any]] = Field(
        default={"failure_rate": {}, "hang": {}, "latency": {}},
        description="detector name -> options (see `paystab detect` detector options)")


class FailoverSpec(Failover):
    """How the stack's failover switch is thrown: the watch failover policy, actuators and
    safety caps. Without actuators (or with ``dry_run``) detection only reports."""

    actuators: list[Actuator] = Field(default_factory=list)
    safety: Safety = Safety()
    dry_run: bool = False


class LoadLimits(Strict):
    """How hard the stack may be drilled: the runbooks' rates were set for paystab's
    reference gateway, and a stack that serves fewer checkouts per second would fail a drill
    on its own capacity rather than on the fault."""

    max_rps: Annotated[float, Field(gt=0, le=1_000_000, description=(
        "the highest arrival rate (checkouts/s) this stack is drilled at: a runbook whose load "
        "peaks above it runs with its whole shape scaled down to peak here (the report says "
        "so); --rps on the command line wins"))]


class FaultsSpec(Strict):
    allow: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, description=(
        "the blast radius beyond the simulators: HOST:PORT, provider:NAME, container:NAME, "
        "pid:N … (the simulators named here are always allowed)"))

    @field_validator("allow")
    @classmethod
    def _entries(cls, items: list[str]) -> list[str]:
        from paystab.chaos.allow import FORMS, normalize

        for item in items:
            try:
                normalize(item)
            except ValueError as exc:
                raise ValueError(f"{exc} (expected {FORMS})") from None
        return items


class StackFile(Strict):
    """A payment stack paystab can drill (``paystab drill RUNBOOK --stack FILE``).

    What one field cannot say alone (a simulator named twice, a template naming no
    simulator, actuators with nothing to detect) is checked by the loader, which knows the
    line of each value."""

    version: Literal[1] = 1
    name: str = Field(pattern=NAME_PATTERN, description="lowercase letters, digits, - _ .")
    description: str | None = None
    ready_file: Path | None = Field(default=None, description=(
        "a running stack described by this paystab ready file (`paystab up` writes both): "
        "nothing is started, its providers are the simulators"))
    service: ServiceSpec | None = None
    checkout: CheckoutSpec
    simulators: list[SimulatorSpec] = Field(default_factory=list)
    telemetry: TelemetrySpec | None = None
    failover: FailoverSpec | None = None
    ledgers: LedgersSpec | None = Field(default=None, description=(
        "merchant side (SQL, CSV, paystab's gateway) and PSP side (simulators, settlement "
        "reports), see docs/your-stack.md"))
    load: LoadLimits | None = None
    faults: FaultsSpec = FaultsSpec()
