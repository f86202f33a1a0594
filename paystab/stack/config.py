"""``paystab up --config FILE``: the reference stack's settings from YAML.

Every key is optional; what is given overrides the defaults of ``stack/catalog.py``.
Providers are overridden by name (or added, given a dialect and methods), or removed with
``enabled: false``. Durations carry units. The file is read as YAML 1.2 and validated
against :class:`StackConfigModel` (shipped as ``stack-config.schema.json``); every error
names the file, line and field, all of them at once::

    seed: 7
    trace_sample_ratio: 0.1
    routing:
      response_timeout: 2s
      connect_timeout: 250ms
      breaker: {failure_ratio: 0.05, window: 10s, min_calls: 20, open_for: 5s}
    providers:
      card-alpha: {latency: {median: 40ms, sigma: 0.35}, fee_bps: 240}
      card-charlie: {enabled: false}
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator

from paystab.config.problems import Problems, did_you_mean
from paystab.config.types import Duration, Strict, one_of
from paystab.config.yaml12 import Loc, load_file_with_lines
from paystab.stack.catalog import (
    BreakerSettings,
    LatencyModel,
    ProviderSpec,
    RoutingSettings,
    StackSettings,
    default_providers,
)
from paystab.stack.errors import DECLINE_CODES

Method = Literal["card", "wallet", "bank_transfer", "konbini"]
Currency = Literal["JPY", "USD", "EUR", "KRW", "SGD", "IDR", "BRL", "GBP"]
CardBrand = Literal["visa", "mastercard", "jcb", "amex"]
WalletBrand = Literal["paypay", "kakaopay", "grabpay"]
_B = BreakerSettings()
_R = RoutingSettings()


class BreakerModel(Strict):
    failure_ratio: float = Field(default=_B.failure_ratio, ge=0.0, le=1.0)
    window: Duration = Field(default=_B.window_s, ge=1, le=3600)
    min_calls: int = Field(default=_B.min_calls, ge=1, le=100000)
    open_for: Duration = Field(default=_B.open_s, ge=0.1, le=3600)
    half_open_probes: int = Field(default=_B.half_open_probes, ge=1, le=1000)


class RoutingModel(Strict):
    connect_timeout: Duration = Field(default=_R.connect_timeout_ms / 1000, ge=0.001, le=600)
    response_timeout: Duration = Field(default=_R.response_timeout_ms / 1000, ge=0.001, le=600)
    status_lookup_timeout: Duration = Field(default=_R.status_lookup_timeout_ms / 1000,
                                            ge=0.001, le=600)
    exploration_share: float = Field(default=_R.exploration_share, ge=0.0, le=1.0)
    healthy_failure_ratio: float = Field(default=_R.healthy_failure_ratio, ge=0.0, le=0.5)
    retry_budget_ratio: float = Field(default=_R.retry_budget_ratio, ge=0.0, le=10.0)
    retry_budget_min_per_s: float = Field(default=_R.retry_budget_min_per_s, ge=0.0, le=10000.0)
    latency_weight: float = Field(default=_R.latency_weight, ge=0.0, le=1.0)
    fee_weight: float = Field(default=_R.fee_weight, ge=0.0, le=1.0)
    max_attempts: int = Field(default=_R.max_attempts, ge=1, le=10)
    max_concurrency: int = Field(default=_R.max_concurrency, ge=1, le=1_000_000)
    health_window: Duration = Field(default=_R.health_window_s, ge=1, le=3600)
    health_block: Duration = Field(default=_R.health_block_s, ge=0.1, le=600)
    breaker: BreakerModel = BreakerModel()

    def settings(self) -> RoutingSettings:
        b = self.breaker
        return RoutingSettings(
            exploration_share=self.exploration_share,
            healthy_failure_ratio=self.healthy_failure_ratio,
            health_window_s=self.health_window, health_block_s=self.health_block,
            latency_weight=self.latency_weight, fee_weight=self.fee_weight,
            connect_timeout_ms=self.connect_timeout * 1000.0,
            response_timeout_ms=self.response_timeout * 1000.0,
            status_lookup_timeout_ms=self.status_lookup_timeout * 1000.0,
            retry_budget_ratio=self.retry_budget_ratio,
            retry_budget_min_per_s=self.retry_budget_min_per_s,
            max_attempts=self.max_attempts, max_concurrency=self.max_concurrency,
            breaker=BreakerSettings(failure_ratio=b.failure_ratio, window_s=b.window,
                                    min_calls=b.min_calls, open_s=b.open_for,
                                    half_open_probes=b.half_open_probes))


class LatencyOverride(Strict):
    median: Duration | None = Field(default=None, ge=0, le=60)
    sigma: float | None = Field(default=None, ge=0.0, le=3.0)
    max: Duration | None = Field(default=None, ge=0.001, le=600)


def _dialect(name: str) -> str:
    from paystab.stack.dialects import DIALECTS  # the dialect modules load on demand

    return one_of(DIALECTS, "dialect")(name)


DeclineCode = Annotated[str, AfterValidator(one_of(DECLINE_CODES, "decline code")),
                        WithJsonSchema({"type": "string", "enum": list(DECLINE_CODES)})]


class ProviderOverride(Strict):
    """Changes to a built-in provider, or a new one (then ``dialect`` and ``methods``)."""

    enabled: bool = True
    dialect: Annotated[str, AfterValidator(_dialect)] | None = Field(
        default=None, description="a provider API dialect (stripe, adyen, paypay, komoju …)")
    methods: list[Method] | None = None
    currencies: list[Currency] | None = None
    countries: list[Annotated[str, Field(min_length=1)]] | None = None
    card_brands: list[CardBrand] | None = None
    wallet_brands: list[WalletBrand] | None = None
    fee_bps: int | None = Field(default=None, ge=0, le=10000)
    backup: bool | None = None
    latency: LatencyOverride | None = None
    decline_mix: dict[DeclineCode, Annotated[float, Field(ge=0.0, le=1.0)]] | None = None
    async_completion: Duration | None = Field(default=None, ge=0, le=3600)
    port: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("decline_mix")
    @classmethod
    def _shares(cls, mix: dict[str, float] | None) -> dict[str, float] | None:
        if mix and sum(mix.values()) > 1.0:
            raise ValueError("the shares add up to more than 1")
        return mix


class StackConfigModel(Strict):
    """``paystab up --config``: overrides of the reference stack's defaults."""

    seed: int | None = Field(default=None, ge=0)
    trace_sample_ratio: float = Field(default=StackSettings().trace_sample_ratio, ge=0.0, le=1.0)
    routing: RoutingModel = RoutingModel()
    providers: dict[str, ProviderOverride | None] = Field(default_factory=dict)


def _provider(name: str, m: ProviderOverride, base: ProviderSpec | None) -> ProviderSpec | None:
    if base is None:
        if m.dialect is None or m.methods is None:
            return None  # reported by _unknown_providers
        base = ProviderSpec(name, m.dialect, tuple(m.methods))
    lat = m.latency or LatencyOverride()
    return replace(
        base,
        dialect=base.dialect if m.dialect is None else m.dialect,
        methods=base.methods if m.methods is None else tuple(m.methods),
        currencies=base.currencies if m.currencies is None else tuple(m.currencies),
        countries=base.countries if m.countries is None else tuple(m.countries),
        card_brands=base.card_brands if m.card_brands is None else tuple(m.card_brands),
        wallet_brands=base.wallet_brands if m.wallet_brands is None else tuple(m.wallet_brands),
        fee_bps=base.fee_bps if m.fee_bps is None else m.fee_bps,
        backup=base.backup if m.backup is None else m.backup,
        async_completion_s=base.async_completion_s if m.async_completion is None
        else m.async_completion,
        port=base.port if m.port is None else m.port,
        latency=LatencyModel(
            median_ms=base.latency.median_ms if lat.median is None else lat.median * 1000,
            sigma=base.latency.sigma if lat.sigma is None else lat.sigma,
            max_ms=base.latency.max_ms if lat.max is None else lat.max * 1000),
        decline_mix=base.decline_mix if m.decline_mix is None else dict(m.decline_mix),
    )


def _unknown_providers(value: object, problems: Problems) -> None:
    """A provider name that is not built in needs ``dialect`` and ``methods``: most often it
    is a typo (``card-alfa``). Checked on the raw value, so it is reported with the rest."""
    providers = value.get("providers") if isinstance(value, dict) else None
    if not isinstance(providers, dict):
        return
    known = [p.name for p in default_providers()]
    for name, override in providers.items():
        given = override if isinstance(override, dict) else {}
        if name in known or given.get("enabled") is False:
            continue
        if "dialect" not in given or "methods" not in given:
            problems.add(("providers", name),
                         f"unknown provider '{name}'{did_you_mean(name, known)}; a new "
                         "provider needs 'dialect' and 'methods'",
                         "one of " + ", ".join(known) + ", or a new one with dialect and methods")


def stack_settings(value: object, lines: dict[Loc, int], source: str) -> StackSettings:
    """Validate a parsed stack config and apply it to the defaults; every problem at once."""
    problems = Problems(source, lines)
    _unknown_providers(value, problems)
    model = problems.validated(StackConfigModel, value)
    by_name = {p.name: p for p in default_providers()}
    for name, override in model.providers.items():
        if override is not None and not override.enabled:
            by_name.pop(name, None)
            continue
        spec = _provider(name, override or ProviderOverride(), by_name.get(name))
        if spec is not None:
            by_name[name] = spec
    if not by_name:
        problems.add(("providers",), "every provider is disabled", "at least one")
    problems.raise_if_any()
    return StackSettings(providers=list(by_name.values()) if model.providers
                         else default_providers(),
                         routing=model.routing.settings(),
                         trace_sample_ratio=model.trace_sample_ratio, seed=model.seed)


def load_stack_config(path: str | Path) -> StackSettings:
    value, lines = load_file_with_lines(path)
    return stack_settings(value, lines, str(path))

