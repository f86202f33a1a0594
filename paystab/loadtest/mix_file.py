"""``paystab load --mix FILE``: the typed model of a mix file, and its validation.

Apart from :mod:`paystab.loadtest.mix` so that a run with the built-in mix starts without
pydantic and the configuration layer: only a mix read from a file or a load plan needs them.
"""

from __future__ import annotations

from pydantic import Field

from paystab.config.problems import Problems, did_you_mean
from paystab.config.types import Strict
from paystab.config.yaml12 import Loc
from paystab.exceptions import InvalidInput
from paystab.loadtest.mix import METHODS, Market, MethodShare, PaymentMix, default_methods


class MarketModel(Strict):
    currency: str = Field(min_length=1)
    country: str = Field(min_length=1)
    weight: float = Field(ge=0.0)
    median_amount: int = Field(ge=1, le=10**9, description="minor units")
    sigma: float = Field(default=0.8, ge=0.0, le=5.0, description="log-normal spread")
    brand: str | None = Field(default=None, description="wallet brand: paypay, kakaopay …")


class MethodModel(Strict):
    weight: float = Field(ge=0.0)
    markets: list[MarketModel]


class MixModel(Strict):
    """``paystab load --mix FILE``: method shares, their markets, the decline-card share."""

    decline_share: float = Field(default=0.03, ge=0.0, le=1.0)
    methods: dict[str, MethodModel] | None = Field(default=None, description=(
        "card, wallet, bank_transfer, konbini -> weight and markets; default: the built-in mix"))


def mix_from_value(value: object, lines: dict[Loc, int], source: str) -> PaymentMix:
    """Validate a parsed mix (YAML or JSON) into :class:`PaymentMix`; all errors at once."""
    problems = Problems(source, lines)
    methods_raw = value.get("methods") if isinstance(value, dict) else None
    for name in methods_raw if isinstance(methods_raw, dict) else ():
        if name not in METHODS:
            problems.add(("methods", name), f"unknown method {name!r}"
                         f"{did_you_mean(str(name), METHODS)}", "one of: " + ", ".join(METHODS))
    model = problems.validated(MixModel, value)
    problems.raise_if_any()
    methods = default_methods() if not model.methods else {
        name: MethodShare(m.weight, tuple(
            Market(currency=k.currency, country=k.country, weight=k.weight,
                   median_amount=k.median_amount, sigma=k.sigma, brand=k.brand)
            for k in m.markets))
        for name, m in model.methods.items()}
    try:
        return PaymentMix(methods=methods, decline_share=model.decline_share)
    except InvalidInput as exc:  # the checks across methods (PaymentMix.__post_init__)
        problems.add(tuple(exc.field.split(".")) if exc.field else (), exc.problem, exc.expected)
        problems.raise_if_any()
        raise
