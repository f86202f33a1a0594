"""The ``paystab watch`` config file: one typed model, errors as ``file:line: field: problem``.

A watch config names where telemetry comes from (``sources``), which detectors judge it and
when they may move traffic (``detectors``, ``failover``), what moving traffic means for this
stack (``actuators``) and the limits on doing so (``safety``). The file is YAML 1.2
(:mod:`paystab.config.yaml12`, shared by every config file: ``NO`` stays a string); the
values go to the pydantic model below, and every validation error is reported at once with the line it came from.
:func:`json_schema` is the schema shipped as ``watch.schema.json`` for editors.
Durations carry their unit (``500ms``, ``1s``, ``5m``) and land in ``*_s`` fields as seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from paystab.config.problems import did_you_mean, fields_at
from paystab.config.yaml12 import Loc, line_of, load_file_with_lines, load_with_lines, loc_text
from paystab.exceptions import InvalidInput
from paystab.net import is_loopback_host
from paystab.units import parse_duration_s


def _duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration needs a unit, e.g. 500ms, 1s, 5m")
    if isinstance(value, int | float) and value == 0:
        return 0.0
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; expected a duration with a unit, e.g. 500ms, 1s, 5m") from None


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(us|ms|s|m|h|d)\s*)+$",
                    "description": "a duration with its unit: 500ms, 1s, 5m, 1h"}),
]
ProviderName = Annotated[str, Field(min_length=1, max_length=200)]
_URL = re.compile(r"^https?://[^\s/]+(/[^\s]*)?$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):[0-9]{1,5}$")


def _url(value: Any) -> Any:
    if isinstance(value, str) and not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL (expected e.g. http://127.0.0.1:9090)")
    return value


def _host_port(value: Any) -> Any:
    if isinstance(value, str) and not _HOST_PORT.match(value):
        raise ValueError(f"{value!r} is not HOST:PORT (expected e.g. 127.0.0.1:4318; port 0 "
                         "picks a free one)")
    return value


Url = Annotated[str, BeforeValidator(_url),
                WithJsonSchema({"type": "string", "pattern": _URL.pattern, "format": "uri"})]
HostPort = Annotated[str, BeforeValidator(_host_port),
                     WithJsonSchema({"type": "string", "pattern": _HOST_PORT.pattern})]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSpec(Strict):
    """A provider of the watched stack and the payment methods it serves."""

    name: ProviderName
    methods: list[str] = Field(default_factory=list, description="methods it serves; the "
                               "last healthy provider of a method is never drained")


# -- sources ------------------------------------------------------------------------------------
class PromQueries(Strict):
    """PromQL per series, one value per provider label. ``attempts``/``failures``/``timeouts``
    are cumulative counters (watch takes the deltas); the others are instant values and may
    use ``$window`` (the ``window_s`` range) and ``$provider_label``."""

    attempts: str | None = None
    failures: str | None = Field(default=None, description="failures excluding customer declines")
    timeouts: str | None = None
    p50: str | None = Field(default=None, description="seconds")
    p95: str | None = Field(default=None, description="seconds")
    p99: str | None = Field(default=None, description="seconds")
    inflight: str | None = None
    oldest_inflight_age: str | None = Field(default=None, description="seconds")
    loop_lag: str | None = Field(default=None, description=(
        "seconds the stack's own event loop or workers are running late (a stalled, CPU-starved "
        "host): one value for the whole stack, the largest series is taken. With it, a stall "
        "that ages every provider's calls at once is not read as a provider hang"))


class PrometheusSource(Strict):
    kind: Literal["prometheus"]
    name: str = "prometheus"
    url: Url
    preset: Literal["paystab", "otel_http_client", "none"] = "none"
    provider_label: str | None = Field(default=None, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    queries: PromQueries = PromQueries()
    window_s: Duration = Field(default=5.0, gt=0, description="range of rate()/histogram_quantile()")
    timeout_s: Duration = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _needs_queries(self) -> PrometheusSource:
        if self.preset == "none" and (self.queries.attempts is None
                                      or self.queries.failures is None):
            raise ValueError("without a preset, queries.attempts and queries.failures are needed")
        if self.preset == "none" and self.provider_label is None:
            raise ValueError("without a preset, provider_label is needed")
        return self


class OtlpSource(Strict):
    kind: Literal["otlp"]
    name: str = "otlp"
    listen: HostPort = "127.0.0.1:4318"
    preset: Literal["paystab", "otel_semconv"] = "otel_semconv"
    provider_attribute: str | None = Field(default=None, description="span/metric attribute naming the "
                                           "provider (preset: paystab.payment.provider or "
                                           "server.address)")
    error_attribute: str | None = Field(default=None, description="attribute set on failed attempts")
    decline_pattern: str | None = Field(default=None, description="regex on the error attribute: "
                                        "matches are customer declines, not failures")
    token_env: str | None = Field(default=None, description="environment variable holding a bearer "
                                  "token the exporters must send (needed off loopback)")
    stale_after_s: Duration = Field(default=10.0, gt=0, description="no telemetry for this long is an error")

    @field_validator("decline_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class MetricsUrlSource(Strict):
    kind: Literal["metrics_url"]
    name: str = "metrics"
    url: Url
    token_env: str | None = None
    timeout_s: Duration = Field(default=2.0, gt=0)


Source = Annotated[PrometheusSource | OtlpSource | MetricsUrlSource, Field(discriminator="kind")]


# -- actuators ----------------------------------------------------------------------------------
Action = Literal["drain", "restore"]
TEMPLATE_FIELDS = ("provider", "action", "enabled", "reason", "detector", "time", "time_unix")


def _template(value: str) -> str:
    """A template must only name the fields an action fills (checked at load, not at 3 am)."""
    try:
        value.format_map(dict.fromkeys(TEMPLATE_FIELDS, "x"))
    except (KeyError, ValueError, IndexError) as exc:
        raise ValueError(f"bad template {value!r} ({type(exc).__name__}: {exc}); placeholders "
                         f"are {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}, and {{{{ "
                         "}} are literal braces") from None
    return value


Template = Annotated[str, AfterValidator(_template)]


class GatewayActuator(Strict):
    kind: Literal["gateway"]
    name: str = "gateway"
    url: Url
    token_env: str | None = None
    actions: list[Action] = ["drain", "restore"]


class WebhookActuator(Strict):
    """An HTTP call per action. ``url``, header values and ``body`` are templates with
    ``{provider}``, ``{action}``, ``{enabled}`` (false on drain), ``{reason}``, ``{detector}``,
    ``{time}``; values are JSON-escaped in the body and URL-quoted in the URL."""

    kind: Literal["webhook"]
    name: str = "webhook"
    url: Annotated[Url, AfterValidator(_template)]
    method: Literal["POST", "PUT", "PATCH", "DELETE", "GET"] = "POST"
    headers: dict[str, Template] = Field(default_factory=dict)
    body: Template | None = None
    timeout_s: Duration = Field(default=5.0, gt=0)
    actions: list[Action] = ["drain", "restore"]


class CommandActuator(Strict):
    """A program per action: ``argv`` elements are templates (as the webhook's); no shell."""

    kind: Literal["command"]
    name: str = "command"
    argv: list[Template] = Field(min_length=1)
    timeout_s: Duration = Field(default=10.0, gt=0)
    actions: list[Action] = ["drain", "restore"]


class AlertmanagerActuator(Strict):
    """Alerts pushed to Alertmanager's API v2 (``POST /api/v2/alerts``): a drain fires
    ``alertname`` for the provider, a restore resolves it."""

    kind: Literal["alertmanager"]
    name: str = "alertmanager"
    url: Url
    alertname: str = "PaystabProviderDrained"
    labels: dict[str, str] = Field(default_factory=dict)
    timeout_s: Duration = Field(default=5.0, gt=0)
    actions: list[Action] = ["drain", "restore"]


Actuator = Annotated[GatewayActuator | WebhookActuator | CommandActuator | AlertmanagerActuator,
                     Field(discriminator="kind")]


# -- policy and safety -------------------------------------------------------------------------
class Failover(Strict):
    when: list[list[str]] | None = Field(default=None, description="rules: detectors that must all "
                                         "agree; default [[failure_rate], [hang], [latency]]")
    within_s: Duration = Field(default=10.0, ge=0)
    cooldown_s: Duration = Field(default=10.0, gt=0)
    max_cooldown_s: Duration = Field(default=300.0, gt=0)
    probation_s: Duration = Field(default=10.0, gt=0)
    min_probe_attempts: int = Field(default=20, ge=0)
    max_probe_failure_ratio: float = Field(default=0.02, ge=0, le=1)
    stable_s: Duration = Field(default=60.0, ge=0)
    # The host guard: when the slowness is the watcher's or the stack's host, not a provider
    host_lag_s: Duration = Field(default=0.25, gt=0, description=(
        "event-loop lag (a source's loop_lag) from which any hang/latency detection is put "
        "down to the host and nothing is drained"))
    host_share: float = Field(default=0.5, gt=0, le=1, description=(
        "share of the other providers carrying traffic that, detected or timing out within "
        "host_window_s as well, makes a detection the host's"))
    host_window_s: Duration = Field(default=2.0, ge=0, description="\"at the same time\" for host_share")
    host_confirm_s: Duration = Field(default=0.25, ge=0, description=(
        "a hang/latency decision waits this long for its peers before it drains (0: at once)"))


class Safety(Strict):
    max_actions: int = Field(default=3, ge=0, description="drains allowed per `per_s` (restores are free)")
    per_s: Duration = Field(default=300.0, gt=0)
    retries: int = Field(default=3, ge=0, description="retries of a failed action")
    backoff_s: Duration = Field(default=0.5, gt=0, description="first retry delay; doubles each time")


class AdminApi(Strict):
    listen: HostPort = "127.0.0.1:9097"
    token_env: str | None = Field(default=None, description="environment variable with the bearer token; "
                                  "required when listening off loopback")


class WatchConfig(Strict):
    interval_s: Duration = Field(default=1.0, ge=0.05, le=60)
    providers: list[ProviderSpec] = Field(default_factory=list)
    sources: list[Source] = Field(min_length=1)
    detectors: dict[str, dict[str, Any]] = Field(default=
        {"failure_rate": {}, "hang": {}, "latency": {}},
        description="detector name -> options (see `paystab detect` detector options)")
    failover: Failover = Failover()
    actuators: list[Actuator] = Field(default_factory=list)
    safety: Safety = Safety()
    admin: AdminApi = AdminApi()
    state_file: str | None = Field(default=None, description="decisions and baselines; relative to the "
                                   "config file")
    decision_log: str | None = Field(default=None, description="JSONL of every decision and action")
    dry_run: bool = False

    @model_validator(mode="after")
    def _cross_checks(self) -> WatchConfig:
        names = [p.name for p in self.providers]
        if len(set(names)) != len(names):
            raise ValueError("providers: a provider is listed twice")
        for rule in self.failover.when or []:
            for name in rule:
                if name not in self.detectors and name != "alertmanager":
                    raise ValueError(f"failover.when names detector '{name}' that is not "
                                     f"configured (configured: {', '.join(sorted(self.detectors))})")
        host = self.admin.listen.rpartition(":")[0].strip("[]")
        if not is_loopback_host(host) and self.admin.token_env is None:
            raise ValueError("admin.listen is not loopback: set admin.token_env")
        return self


# -- loading ------------------------------------------------------------------------------------
class WatchConfigInvalid(InvalidInput):
    """Every problem of a watch config at once; ``problems`` keeps them one per entry."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        head = f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the watch config"
        super().__init__(head + ":\n  " + "\n  ".join(problems), source=source,
                         hint="`paystab watch schema` prints the JSON Schema of this file")


def _problems(exc: ValidationError, source: str, lines: dict[Loc, int]) -> list[tuple[int, str]]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if loc[:1] == ("detectors",) and len(loc) > 1:
            continue  # the detector checks below say it better
        path, line = line_of(loc, lines)
        where = source if line is None else f"{source}:{line}"
        field = loc_text(path)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message += did_you_mean(str(loc[-1]), fields_at(WatchConfig, loc[:-1]))
        out.append((line or 0, f"{where}: {field + ': ' if field else ''}{message}"))
    return out


def _detector_problems(detectors: dict[str, Any], source: str, lines: dict[Loc, int]
                       ) -> list[tuple[int, str]]:
    from paystab.anomaly import base, streaming  # noqa: F401 (registers "streaming")

    out = []
    known = base.names()
    for name, options in detectors.items():
        line = lines.get(("detectors", name))
        where = source if line is None else f"{source}:{line}"
        if name not in known:
            out.append((line or 0, f"{where}: detectors.{name}: unknown detector (expected one "
                        f"of {', '.join(known)})"))
            continue
        if options is not None and not isinstance(options, dict):
            out.append((line or 0, f"{where}: detectors.{name}: expected a mapping of options"))
            continue
        try:
            base.create(name, options or {})
        except InvalidInput as exc:
            sub = lines.get(("detectors", name, exc.field or ""), line)
            where = source if sub is None else f"{source}:{sub}"
            out.append((sub or 0, f"{where}: detectors.{name}{'.' + exc.field if exc.field else ''}"
                        f": {exc.problem}" + (f" (expected {exc.expected})" if exc.expected else "")))
    return out


def parse_config(value: Any, lines: dict[Loc, int], source: str) -> WatchConfig:
    """Validate ``value``; every problem (model and detector options) is reported at once."""
    problems: list[tuple[int, str]] = []
    config: WatchConfig | None = None
    try:
        config = WatchConfig.model_validate(value)
    except ValidationError as exc:
        problems.extend(_problems(exc, source, lines))
    detectors = value.get("detectors") if isinstance(value, dict) else None
    if isinstance(detectors, dict):
        problems.extend(_detector_problems(detectors, source, lines))
    if problems:
        problems.sort(key=lambda p: p[0])
        raise WatchConfigInvalid(source, [text for _, text in problems])
    assert config is not None
    return config


def load_config(path: str | Path) -> WatchConfig:
    """Read, parse and validate a watch config; relative paths become relative to it."""
    value, lines = load_file_with_lines(path)
    config = parse_config(value, lines, str(path))
    base_dir = Path(path).resolve().parent
    updates: dict[str, Any] = {}
    for key in ("state_file", "decision_log"):
        given = getattr(config, key)
        if given is not None and not Path(given).is_absolute():
            updates[key] = str(base_dir / given)
    return config.model_copy(update=updates) if updates else config


def config_from_text(text: str, source: str = "<watch config>") -> WatchConfig:
    value, lines = load_with_lines(text, source)
    return parse_config(value, lines, source)


def json_schema() -> dict[str, Any]:
    schema = WatchConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "paystab watch config"
    return schema


SCHEMA_PATH = Path(__file__).with_name("watch.schema.json")


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
