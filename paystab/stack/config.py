"""``paystab up --config FILE``: the reference stack's settings from YAML.

Every key is optional; what is given overrides the defaults of ``stack/catalog.py``.
Providers are overridden by name (or added, given a dialect and methods), or removed with
``enabled: false``. Durations carry units. Errors name the file, line and field::

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

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from paystab.stack.catalog import (
    CARD_BRANDS,
    CURRENCIES,
    METHODS,
    WALLET_BRANDS,
    BreakerSettings,
    LatencyModel,
    ProviderSpec,
    RoutingSettings,
    StackSettings,
    default_providers,
)
from paystab.stack.errors import DECLINE_CODES
from paystab.yamlsrc import Node, load_yaml

_ROUTING_DURATIONS = {"connect_timeout": "connect_timeout_ms", "response_timeout": "response_timeout_ms",
                      "status_lookup_timeout": "status_lookup_timeout_ms"}
_ROUTING_FLOATS = {"exploration_share": (0.0, 1.0),
                   "healthy_failure_ratio": (0.0, 0.5), "retry_budget_ratio": (0.0, 10.0),
                   "retry_budget_min_per_s": (0.0, 10000.0), "latency_weight": (0.0, 1.0),
                   "fee_weight": (0.0, 1.0)}
_ROUTING_INTS = {"max_attempts": (1, 10), "max_concurrency": (1, 1_000_000)}


def _routing(node: Node) -> RoutingSettings:
    node.only_keys({*_ROUTING_DURATIONS, *_ROUTING_FLOATS, *_ROUTING_INTS, "breaker",
                    "health_window", "health_block"})
    values: dict[str, object] = {}
    for key, attr in _ROUTING_DURATIONS.items():
        if node.has(key):
            values[attr] = node.field(key).as_duration_s(lo=0.001, hi=600) * 1000.0
    for key, (lo, hi) in _ROUTING_FLOATS.items():
        if node.has(key):
            values[key] = node.field(key).as_float(lo, hi)
    for key, (ilo, ihi) in _ROUTING_INTS.items():
        if node.has(key):
            values[key] = node.field(key).as_int(ilo, ihi)
    if node.has("health_window"):
        values["health_window_s"] = node.field("health_window").as_duration_s(lo=1, hi=3600)
    if node.has("health_block"):
        values["health_block_s"] = node.field("health_block").as_duration_s(lo=0.1, hi=600)
    if node.has("breaker"):
        b = node.field("breaker")
        b.only_keys({"failure_ratio", "window", "min_calls", "open_for", "half_open_probes"})
        defaults = BreakerSettings()

        def pick(key: str, read: Callable[[Node], float], default: float) -> float:
            return read(b.field(key)) if b.has(key) else default

        values["breaker"] = BreakerSettings(
            failure_ratio=pick("failure_ratio", lambda n: n.as_float(0.0, 1.0), defaults.failure_ratio),
            window_s=pick("window", lambda n: n.as_duration_s(lo=1, hi=3600), defaults.window_s),
            min_calls=int(pick("min_calls", lambda n: n.as_int(1, 100000), defaults.min_calls)),
            open_s=pick("open_for", lambda n: n.as_duration_s(lo=0.1, hi=3600), defaults.open_s),
            half_open_probes=int(pick("half_open_probes", lambda n: n.as_int(1, 1000), defaults.half_open_probes)),
        )
    return replace(RoutingSettings(), **values)  # type: ignore[arg-type]


def _string_list(node: Node, allowed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(e.as_choice(allowed) for e in node.elements())


def _provider(name: str, node: Node, base: ProviderSpec | None) -> ProviderSpec | None:
    node.only_keys({"enabled", "dialect", "methods", "currencies", "countries", "card_brands",
                    "wallet_brands", "fee_bps", "backup", "latency", "decline_mix",
                    "async_completion", "port"})
    if node.has("enabled") and not node.field("enabled").as_bool():
        return None
    if base is None:
        if not node.has("dialect") or not node.has("methods"):
            raise node.error(f"new provider '{name}' needs 'dialect' and 'methods'")
        base = ProviderSpec(name, node.field("dialect").as_str(),
                            _string_list(node.field("methods"), METHODS))
    values: dict[str, object] = {}
    if node.has("dialect"):
        from paystab.stack.dialects import DIALECTS

        values["dialect"] = node.field("dialect").as_choice(tuple(DIALECTS))
    if node.has("methods"):
        values["methods"] = _string_list(node.field("methods"), METHODS)
    if node.has("currencies"):
        values["currencies"] = _string_list(node.field("currencies"), CURRENCIES)
    if node.has("countries"):
        values["countries"] = tuple(e.as_str() for e in node.field("countries").elements())
    if node.has("card_brands"):
        values["card_brands"] = _string_list(node.field("card_brands"), CARD_BRANDS)
    if node.has("wallet_brands"):
        values["wallet_brands"] = _string_list(node.field("wallet_brands"), WALLET_BRANDS)
    if node.has("fee_bps"):
        values["fee_bps"] = node.field("fee_bps").as_int(0, 10000)
    if node.has("backup"):
        values["backup"] = node.field("backup").as_bool()
    if node.has("port"):
        values["port"] = node.field("port").as_int(0, 65535)
    if node.has("async_completion"):
        values["async_completion_s"] = node.field("async_completion").as_duration_s(lo=0, hi=3600)
    if node.has("latency"):
        lat = node.field("latency")
        lat.only_keys({"median", "sigma", "max"})
        current = base.latency
        values["latency"] = LatencyModel(
            median_ms=lat.field("median").as_duration_s(lo=0, hi=60) * 1000 if lat.has("median") else current.median_ms,
            sigma=lat.field("sigma").as_float(0.0, 3.0) if lat.has("sigma") else current.sigma,
            max_ms=lat.field("max").as_duration_s(lo=0.001, hi=600) * 1000 if lat.has("max") else current.max_ms,
        )
    if node.has("decline_mix"):
        mix: dict[str, float] = {}
        for code, share in node.field("decline_mix").items():
            if code not in DECLINE_CODES:
                raise share.error(f"unknown decline code '{code}'", expected="one of " + ", ".join(DECLINE_CODES))
            mix[code] = share.as_float(0.0, 1.0)
        if sum(mix.values()) > 1.0:
            raise node.field("decline_mix").error("the shares add up to more than 1")
        values["decline_mix"] = mix
    return replace(base, **values)  # type: ignore[arg-type]


def load_stack_config(path: str | Path) -> StackSettings:
    root = load_yaml(path)
    root.only_keys({"seed", "trace_sample_ratio", "routing", "providers"})
    settings = StackSettings()
    values: dict[str, object] = {}
    if root.has("seed"):
        values["seed"] = root.field("seed").as_int(0)
    if root.has("trace_sample_ratio"):
        values["trace_sample_ratio"] = root.field("trace_sample_ratio").as_float(0.0, 1.0)
    if root.has("routing"):
        values["routing"] = _routing(root.field("routing"))
    if root.has("providers"):
        by_name = {p.name: p for p in default_providers()}
        for name, node in root.field("providers").items():
            spec = _provider(name, node, by_name.get(name))
            if spec is None:
                by_name.pop(name, None)
            else:
                by_name[name] = spec
        if not by_name:
            raise root.field("providers").error("every provider is disabled", expected="at least one")
        values["providers"] = list(by_name.values())
    return replace(settings, **values)  # type: ignore[arg-type]
