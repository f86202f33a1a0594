"""The payment mix: what each checkout pays with, drawn deterministically from a seed.

A checkout's method, market (currency + country), wallet brand, card and amount come from a
counter-based generator keyed on ``(seed, stream, seq)``: the same seed gives the same
payments in the same order no matter which user takes an arrival, how fast the target
answers or whether some arrivals are dropped. ``stream`` separates worker processes.

Amounts are log-normal around a per-market median (minor units). A share of card payments
uses the decline test cards of the payment API, so every decline path is exercised. The
request body holds the card number: it is built here, sent, and never logged — ``Payment``
hides it from ``repr`` and nothing else in the harness reads it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import NamedTuple

from paystab.exceptions import InvalidInput

METHODS = ("card", "wallet", "bank_transfer", "konbini")

# The test cards of the payment API contract (ARCHITECTURE.md "The payment API").
DECLINE_TEST_CARDS: dict[str, str] = {
    "4000000000009995": "declined.insufficient_funds",
    "4000000000000002": "declined.do_not_honor",
    "4000000000000069": "declined.expired_card",
    "4100000000000019": "declined.fraud",
}
# Luhn-valid numbers that approve unless the target's own decline mix says otherwise.
APPROVING_CARDS: dict[str, tuple[str, ...]] = {
    "visa": ("4242424242424242", "4012888888881881"),
    "mastercard": ("5555555555554444", "5105105105105100"),
    "jcb": ("3530111333300000", "3566002020360505"),
}
CARD_BRAND_WEIGHTS: tuple[tuple[str, float], ...] = (("visa", 0.6), ("mastercard", 0.3),
                                                      ("jcb", 0.1))


@dataclass(frozen=True)
class Market:
    """Where a payment comes from; ``median_amount`` in minor units, ``sigma`` log-normal."""

    currency: str
    country: str
    weight: float
    median_amount: int
    sigma: float = 0.8
    brand: str | None = None  # wallet brand (paypay, kakaopay, grabpay); None for others


@dataclass(frozen=True)
class MethodShare:
    weight: float
    markets: tuple[Market, ...]


def default_methods() -> dict[str, MethodShare]:
    """The built-in mix: card, wallet, bank transfer and konbini in Japan and beyond."""
    return {
        "card": MethodShare(0.65, (
            Market("JPY", "JP", 0.40, 4000, 0.9), Market("USD", "US", 0.20, 4500),
            Market("EUR", "NL", 0.15, 3800), Market("KRW", "KR", 0.15, 45000),
            Market("SGD", "SG", 0.10, 6000),
        )),
        "wallet": MethodShare(0.20, (
            Market("JPY", "JP", 0.5, 3000, brand="paypay"),
            Market("KRW", "KR", 0.3, 30000, brand="kakaopay"),
            Market("SGD", "SG", 0.2, 3500, brand="grabpay"),
        )),
        "konbini": MethodShare(0.08, (Market("JPY", "JP", 1.0, 5000, 0.6),)),
        "bank_transfer": MethodShare(0.07, (
            Market("EUR", "NL", 0.6, 8000), Market("JPY", "JP", 0.4, 12000),
        )),
    }


@dataclass(frozen=True)
class PaymentMix:
    """Method shares, their markets, and the share of card payments using decline cards."""

    methods: dict[str, MethodShare] = field(default_factory=default_methods)
    decline_share: float = 0.03

    def __post_init__(self) -> None:
        if not 0.0 <= self.decline_share <= 1.0:
            raise InvalidInput(f"{self.decline_share} is out of range", field="decline_share",
                               expected="a share between 0 and 1")
        if not self.methods or sum(m.weight for m in self.methods.values()) <= 0:
            raise InvalidInput("no method has a positive weight", field="methods",
                               expected=f"weights for some of {', '.join(METHODS)}")
        for name, share in self.methods.items():
            if name not in METHODS:
                raise InvalidInput(f"unknown method {name!r}", field=f"methods.{name}",
                                   expected="one of: " + ", ".join(METHODS))
            if share.weight > 0 and not share.markets:
                raise InvalidInput("no markets", field=f"methods.{name}.markets",
                                   expected="at least one {currency, country, weight}")

    def to_json(self) -> dict[str, object]:
        return {
            "decline_share": self.decline_share,
            "methods": {
                name: {"weight": s.weight, "markets": [asdict(m) for m in s.markets]}
                for name, s in self.methods.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, object], source: str = "mix") -> PaymentMix:
        """The mix of :meth:`to_json` (a load plan's); errors name the field."""
        from paystab.loadtest.mix_file import mix_from_value

        return mix_from_value(data, {}, source)

    @classmethod
    def load(cls, path: str | Path) -> PaymentMix:
        """Read a mix from YAML 1.2 (every error names the file, line and field)."""
        from paystab.config.yaml12 import load_file_with_lines
        from paystab.loadtest.mix_file import mix_from_value

        value, lines = load_file_with_lines(path)
        return mix_from_value(value, lines, str(path))


class Payment(NamedTuple):
    """One checkout's payment. ``body`` holds the card number: never log it (``repr`` and
    ``str`` leave it out). A named tuple: one is made per checkout, at the generator's speed."""

    seq: int
    method: str
    currency: str
    country: str
    amount: int
    expected: str  # "approved", "declined.<reason>" for test cards, "" when up to the target
    body: bytes

    def __repr__(self) -> str:
        return (f"Payment(seq={self.seq}, method={self.method!r}, currency={self.currency!r}, "
                f"country={self.country!r}, amount={self.amount}, expected={self.expected!r})")

    def __str__(self) -> str:
        return self.__repr__()


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: a cheap, well-spread 64-bit hash."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _cumulative(weights: list[float]) -> list[float]:
    total = sum(weights)
    acc, out = 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(cumulative: list[float], u: float) -> int:
    return min(bisect.bisect_right(cumulative, u), len(cumulative) - 1)


_NORMAL_BITS = 16
_normal_table: list[float] = []


def _normal_quantiles() -> list[float]:
    """Standard normal quantiles at the midpoints of 2**16 equal-probability cells.

    A 16-bit uniform indexes this table to draw a normal deviate: the same distribution as
    Box–Muller to within 1/65536 in probability (tails to ±4.1 σ), at a list look-up's cost.
    """
    if not _normal_table:
        dist = NormalDist()
        cells = 1 << _NORMAL_BITS
        _normal_table.extend(dist.inv_cdf((i + 0.5) / cells) for i in range(cells))
    return _normal_table


_U16 = 1.0 / (1 << 16)


def _card_json(number: str) -> str:
    return f',"card":{{"number":"{number}","exp_month":12,"exp_year":2030,"cvc":"123"}}'


class PaymentFactory:
    """``payment(seq)``: the seq-th payment of a stream, a pure function of the key.

    Two 64-bit hashes of ``(seed, stream, seq)`` give every draw (16-bit uniforms for the
    choices and, through a quantile table, the log-normal amount), and the JSON body is assembled from
    fragments encoded once: a payment costs a few microseconds, which matters at the
    generator's top speed.
    """

    def __init__(self, mix: PaymentMix, seed: int, stream: int = 0) -> None:
        self.mix = mix
        self._key = _mix64(_mix64(seed & _MASK) ^ (stream * 0xD1B54A32D192ED03 & _MASK))
        active = [(n, s) for n, s in mix.methods.items() if s.weight > 0]
        self._methods = [n for n, _ in active]
        self._method_cdf = _cumulative([s.weight for _, s in active])
        self._markets = {n: s.markets for n, s in active}
        self._market_cdf = {n: _cumulative([m.weight for m in s.markets]) for n, s in active}
        self._fields = {
            (n, i): f'"currency":"{m.currency}","method":"{n}","country":"{m.country}"'
            for n, s in active for i, m in enumerate(s.markets)
        }
        self._wallet = {(n, i): f',"wallet":{{"brand":"{m.brand or "paypay"}"}}'
                        for n, s in active for i, m in enumerate(s.markets)}
        self._declines = sorted(DECLINE_TEST_CARDS)
        self._brand_cdf = _cumulative([w for _, w in CARD_BRAND_WEIGHTS])
        self._normal = _normal_quantiles()
        self._cards = {n: _card_json(n) for n in
                       [*self._declines, *(x for xs in APPROVING_CARDS.values() for x in xs)]}

    def payment(self, seq: int) -> Payment:
        h1 = _mix64(self._key ^ (seq & _MASK))
        h2 = _mix64(h1 ^ _GOLDEN)
        method = self._methods[_pick(self._method_cdf, (h1 & 0xFFFF) * _U16)]
        index = _pick(self._market_cdf[method], ((h1 >> 16) & 0xFFFF) * _U16)
        market = self._markets[method][index]
        normal = self._normal[h2 & 0xFFFF]
        amount = int(min(max(round(market.median_amount * math.exp(market.sigma * normal)), 1),
                         10**9))
        extra = ""
        expected = ""
        if method == "card":
            pick = h2 >> 52  # 12 bits (the normal deviate used the low 16)
            if ((h1 >> 32) & 0xFFFF) * _U16 < self.mix.decline_share:
                number = self._declines[pick % len(self._declines)]
                expected = DECLINE_TEST_CARDS[number]
            else:
                brand = CARD_BRAND_WEIGHTS[_pick(self._brand_cdf, (h1 >> 48) * _U16)][0]
                numbers = APPROVING_CARDS[brand]
                number = numbers[pick % len(numbers)]
                expected = "approved" if number == "4242424242424242" else ""
            extra = self._cards[number]
        elif method == "wallet":
            extra = self._wallet[(method, index)]
        body = (f'{{"amount":{amount},{self._fields[(method, index)]},'
                f'"customer_id":"c_{(h1 ^ h2) % 1_000_000}"{extra}}}')
        return Payment(seq, method, market.currency, market.country, amount, expected,
                       body.encode())
