"""The unified error taxonomy: every provider answer maps to one code.

A code says what happened (``approved``, ``pending``, ``declined.*``, ``error.*``), whether
trying again (elsewhere) can help (``retryable``), and whether it says something about the
provider's health (``counts_against_provider``). Customer declines never count against a
provider nor against availability: a decline is a correct answer. Each dialect module maps
its provider's own encoding onto these codes; nothing else in paystab knows a dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["approved", "declined", "pending", "error"]


@dataclass(frozen=True, slots=True)
class UnifiedCode:
    code: str
    outcome: Outcome
    retryable: bool
    counts_against_provider: bool
    description: str

    @property
    def error_type(self) -> str:
        """The label value for metrics: the suffix of ``error.*``, else ``none``."""
        return self.code.split(".", 1)[1] if self.outcome == "error" else "none"


def _c(code: str, outcome: Outcome, retryable: bool, counts: bool, description: str) -> UnifiedCode:
    return UnifiedCode(code, outcome, retryable, counts, description)


CODES: dict[str, UnifiedCode] = {
    c.code: c
    for c in (
        _c("approved", "approved", False, False, "captured by the provider"),
        _c("pending", "pending", False, False, "accepted; completes asynchronously (konbini, bank transfer)"),
        # Customer declines: the customer must act; never the provider's fault.
        _c("declined.insufficient_funds", "declined", False, False, "not enough funds"),
        _c("declined.do_not_honor", "declined", False, False, "issuer refused without a reason"),
        _c("declined.expired_card", "declined", False, False, "card expired"),
        _c("declined.fraud", "declined", False, False, "blocked as suspected fraud"),
        _c("declined.invalid_data", "declined", False, False, "card number, CVC or other data wrong"),
        _c("declined.limit_exceeded", "declined", False, False, "card or wallet limit reached"),
        # Declines another route can fix: retry elsewhere, still not the provider's fault.
        _c("declined.not_supported", "declined", True, False, "provider does not take this method, brand or currency"),
        _c("declined.issuer_unavailable", "declined", True, False, "issuer or bank in maintenance"),
        # Provider-side errors: retry elsewhere (per policy) and count against the provider.
        _c("error.timeout", "error", True, True, "no answer in time; outcome unknown"),
        _c("error.connect", "error", True, True, "could not connect; the provider never saw it"),
        _c("error.provider_5xx", "error", True, True, "provider answered a server error"),
        _c("error.rate_limited", "error", True, True, "provider throttled the request"),
        _c("error.malformed", "error", True, True, "answer could not be understood"),
        _c("error.unknown", "error", True, True, "answer not mapped to any code"),
    )
}

DECLINE_CODES = tuple(c for c in CODES if c.startswith("declined."))
ERROR_CODES = tuple(c for c in CODES if c.startswith("error."))


def lookup(code: str) -> UnifiedCode:
    """The :class:`UnifiedCode` for ``code``; unknown codes are ``error.unknown``."""
    return CODES.get(code) or CODES["error.unknown"]
