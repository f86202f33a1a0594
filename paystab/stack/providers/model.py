"""How one simulated provider behaves when nothing is broken: latency and decisions.

Latency is log-normal (``median * exp(sigma * N(0,1))``, capped), as service times of real
PSPs are: a tight body and a long right tail. Decisions follow a fixed order, the way an
acquirer's checks run: unreadable card data (Luhn) → method / brand / currency / country
the provider does not take (``declined.not_supported``, retryable elsewhere) → an outcome a
PSP's own test convention fixed (``dialects/forced.py``) → the test cards of ARCHITECTURE.md,
answered deterministically → an expired card → the configured decline mix, drawn from a
seeded RNG → approved (or pending for konbini / bank transfer).
"""

from __future__ import annotations

import math
import random
import time

from paystab.cards import luhn_valid
from paystab.stack.catalog import TEST_CARDS, ProviderSpec, card_brand
from paystab.stack.dialects.base import ChargeRequest
from paystab.stack.dialects.forced import forced_code

ASYNC_METHODS = frozenset({"konbini", "bank_transfer"})


def provider_rng(seed: int | None, name: str, purpose: str) -> random.Random:
    """An RNG per provider and purpose: reproducible with a seed, independent of the others."""
    if seed is None:
        return random.Random()
    return random.Random(f"{seed}:{name}:{purpose}")


class ChargeModel:
    """Latency sampling and the charge decision for one :class:`ProviderSpec`."""

    def __init__(self, spec: ProviderSpec, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        self._median_s = max(0.0, spec.latency.median_ms) / 1000.0
        self._sigma = spec.latency.sigma
        self._max_s = spec.latency.max_ms / 1000.0
        # Cumulative thresholds, so one uniform draw picks the decline (or none).
        self._mix: list[tuple[float, str]] = []
        total = 0.0
        for code, share in spec.decline_mix.items():
            total += share
            self._mix.append((total, code))
        if total > 1.0 + 1e-9:
            raise ValueError(f"{spec.name}: decline mix adds up to {total:.3f} > 1")

    def latency_s(self) -> float:
        if self._median_s <= 0.0:
            return 0.0
        value = self._median_s * math.exp(self._sigma * self._rng.gauss(0.0, 1.0))
        return min(value, self._max_s)

    def decide(self, request: ChargeRequest) -> str:
        """The unified code this provider answers ``request`` with."""
        spec = self.spec
        method = request.method
        brand: str | None = None
        number = ""
        if method == "card":
            card = request.card
            if card is None or not luhn_valid(card.number):
                return "declined.invalid_data"
            number = card.number
            brand = card_brand(number)
            if brand is None:
                return "declined.not_supported"
        elif method == "wallet":
            brand = request.wallet_brand
        if not spec.supports(method, request.currency, request.country, brand):
            return "declined.not_supported"
        forced = forced_code(request)  # a PSP test convention (holderName, test card, header)
        if forced is not None:
            return forced
        if number:
            fixed = TEST_CARDS.get(number)
            if fixed is not None:
                return fixed
            assert request.card is not None
            now = time.gmtime()
            if (request.card.exp_year, request.card.exp_month) < (now.tm_year, now.tm_mon):
                return "declined.expired_card"
        draw = self._rng.random()
        for threshold, code in self._mix:
            if draw < threshold:
                return code
        return "pending" if method in ASYNC_METHODS else "approved"
