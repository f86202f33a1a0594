"""What the reference stack is made of: provider specs and routing settings.

The defaults describe a Japan-first shop with cross-border reach: four card acquirers (one
of them takes JCB) plus a backup, three wallets (PayPay-, KakaoPay- and GrabPay-like) and
two konbini / bank-transfer providers that complete asynchronously. ``paystab up --config``
overrides any of it from YAML (see ``stack/config.py``). Some speak a real PSP's API, so the
official SDKs accept them: card-bravo Adyen Checkout (``adyen``), wallet-paypay PayPay OPA
(``paypay``), konbini-east KOMOJU (``komoju``); the others keep their own dialects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

METHODS = ("card", "wallet", "bank_transfer", "konbini")
CARD_BRANDS = ("visa", "mastercard", "jcb", "amex")
WALLET_BRANDS = ("paypay", "kakaopay", "grabpay")
CURRENCIES = ("JPY", "USD", "EUR", "KRW", "SGD", "IDR", "BRL", "GBP")
COUNTRIES = ("JP", "US", "NL", "DE", "FR", "KR", "SG", "ID", "BR", "GB")
# Currencies with no minor unit still use integer amounts; the API does not care.

# A few percent of ordinary traffic declines, as in production card traffic.
DEFAULT_DECLINE_MIX: dict[str, float] = {
    "declined.insufficient_funds": 0.012,
    "declined.do_not_honor": 0.008,
    "declined.expired_card": 0.003,
    "declined.invalid_data": 0.003,
    "declined.fraud": 0.002,
}
WALLET_DECLINE_MIX: dict[str, float] = {
    "declined.insufficient_funds": 0.015,
    "declined.limit_exceeded": 0.005,
    "declined.fraud": 0.002,
}
ASYNC_DECLINE_MIX: dict[str, float] = {"declined.invalid_data": 0.005}


@dataclass(frozen=True)
class LatencyModel:
    """Log-normal service time: ``median_ms * exp(sigma * N(0,1))``, capped."""

    median_ms: float = 40.0
    sigma: float = 0.35
    max_ms: float = 1500.0


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    dialect: str
    methods: tuple[str, ...]
    currencies: tuple[str, ...] = CURRENCIES
    countries: tuple[str, ...] | None = None  # None = any country
    card_brands: tuple[str, ...] = ()
    wallet_brands: tuple[str, ...] = ()
    fee_bps: int = 250  # fee in basis points of the amount; routing prefers cheaper
    backup: bool = False  # only routed to when the primaries cannot serve
    latency: LatencyModel = field(default_factory=LatencyModel)
    decline_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DECLINE_MIX))
    async_completion_s: float = 2.0  # pending → captured after this long (konbini, transfer)
    port: int = 0  # 0 = ephemeral

    def supports(self, method: str, currency: str, country: str, brand: str | None) -> bool:
        if method not in self.methods or currency not in self.currencies:
            return False
        if self.countries is not None and country not in self.countries:
            return False
        # A card no known scheme claims (Discover, UnionPay, all zeros) is taken by nobody:
        # better refused up front than declined "not supported" by every acquirer in turn.
        if method == "card" and brand not in self.card_brands:
            return False
        return not (method == "wallet" and brand is not None and brand not in self.wallet_brands)


def default_providers() -> list[ProviderSpec]:
    cards = ("visa", "mastercard")
    return [
        ProviderSpec("card-alpha", "stripe", ("card",), card_brands=cards, fee_bps=220),
        ProviderSpec("card-bravo", "adyen", ("card",), card_brands=(*cards, "amex"), fee_bps=240,
                     latency=LatencyModel(median_ms=45.0)),
        ProviderSpec("card-charlie", "charlie", ("card",), card_brands=cards, fee_bps=260,
                     latency=LatencyModel(median_ms=55.0, sigma=0.4)),
        ProviderSpec("card-delta", "delta", ("card",), card_brands=(*cards, "jcb"), fee_bps=270,
                     latency=LatencyModel(median_ms=50.0)),
        ProviderSpec("card-backup", "echo", ("card",), card_brands=(*cards, "jcb", "amex"),
                     fee_bps=320, backup=True, latency=LatencyModel(median_ms=70.0, sigma=0.3)),
        ProviderSpec("wallet-paypay", "paypay", ("wallet",), currencies=("JPY",),
                     wallet_brands=("paypay",), fee_bps=200, decline_mix=dict(WALLET_DECLINE_MIX),
                     latency=LatencyModel(median_ms=60.0)),
        ProviderSpec("wallet-kakao", "kakao", ("wallet",), currencies=("KRW", "JPY"),
                     wallet_brands=("kakaopay", "paypay"), fee_bps=210,
                     decline_mix=dict(WALLET_DECLINE_MIX), latency=LatencyModel(median_ms=65.0)),
        ProviderSpec("wallet-grab", "grab", ("wallet",), currencies=("SGD", "IDR", "JPY", "KRW"),
                     wallet_brands=("grabpay", "kakaopay", "paypay"), fee_bps=220,
                     decline_mix=dict(WALLET_DECLINE_MIX), latency=LatencyModel(median_ms=70.0)),
        ProviderSpec("konbini-east", "komoju", ("konbini", "bank_transfer"),
                     currencies=("JPY",), fee_bps=150, decline_mix=dict(ASYNC_DECLINE_MIX),
                     latency=LatencyModel(median_ms=80.0)),
        ProviderSpec("konbini-west", "furikomi", ("konbini", "bank_transfer"),
                     currencies=("JPY", "EUR", "BRL"), fee_bps=160,
                     decline_mix=dict(ASYNC_DECLINE_MIX), latency=LatencyModel(median_ms=90.0)),
    ]


@dataclass(frozen=True)
class BreakerSettings:
    failure_ratio: float = 0.05  # open above 5 % failures (the seeds' circuit-break level)
    window_s: float = 10.0
    min_calls: int = 20
    open_s: float = 5.0  # before the first half-open probe
    half_open_probes: int = 5  # successes needed to close again


@dataclass(frozen=True)
class RoutingSettings:
    exploration_share: float = 0.02  # keep measuring providers that are not the best
    healthy_failure_ratio: float = 0.01  # failure ratios up to this count as fully healthy
    health_window_s: float = 30.0  # "recent blocks" the health score looks at
    health_block_s: float = 5.0
    latency_weight: float = 0.15
    fee_weight: float = 0.10
    connect_timeout_ms: float = 250.0
    response_timeout_ms: float = 2000.0
    status_lookup_timeout_ms: float = 300.0
    retry_budget_ratio: float = 0.2  # at most ~20 % extra attempts over first attempts
    retry_budget_min_per_s: float = 10.0  # so a quiet stack can still retry
    max_attempts: int = 3
    max_concurrency: int = 1024  # payments in flight before shedding with 503
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


@dataclass(frozen=True)
class StackSettings:
    providers: list[ProviderSpec] = field(default_factory=default_providers)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    trace_sample_ratio: float = 0.1  # successes; errors are always kept
    seed: int | None = None


def card_brand(number: str) -> str | None:
    """The scheme of a card number from its BIN (enough for routing)."""
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4] or 0) <= 2720:
        return "mastercard"
    if 3528 <= int(number[:4] or 0) <= 3589:
        return "jcb"
    return None


# Test cards (README): the simulators answer these deterministically.
TEST_CARDS: dict[str, str] = {
    "4242424242424242": "approved",
    "4000000000009995": "declined.insufficient_funds",
    "4000000000000002": "declined.do_not_honor",
    "4000000000000069": "declined.expired_card",
    "4100000000000019": "declined.fraud",
}


