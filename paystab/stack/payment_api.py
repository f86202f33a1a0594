"""The payment API's request model: validation and RFC 9457 problem details.

Everything a client can get wrong is answered with a 4xx ``application/problem+json``
naming the field and what was expected; nothing a client sends can produce a 5xx. Card
numbers are validated (Luhn) but never echoed back, logged or fingerprinted in clear: the
idempotency fingerprint hashes the canonical body.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from paystab.stack.catalog import COUNTRIES, CURRENCIES, METHODS, WALLET_BRANDS, luhn_valid
from paystab.stack.dialects.base import Card

MAX_BODY_BYTES = 64 * 1024
MAX_AMOUNT = 10**9
PROBLEM_TYPE = "https://paystab.dev/problems/"
KNOWN_FIELDS = frozenset({"amount", "currency", "method", "country", "card", "wallet", "customer_id",
                          "description", "metadata"})
_CURRENCY_SET = frozenset(CURRENCIES)
_METHOD_SET = frozenset(METHODS)
_COUNTRY_SET = frozenset(COUNTRIES)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # for the fingerprint


class RequestProblem(Exception):
    """A client error; becomes problem+json with ``status``."""

    def __init__(self, status: int, slug: str, title: str, detail: str,
                 field: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.field = field
        self.retry_after_s = retry_after_s

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": PROBLEM_TYPE + self.slug, "title": self.title,
                               "status": self.status, "detail": self.detail}
        if self.field:
            out["field"] = self.field
        if instance:
            out["instance"] = instance
        return out


def invalid(field: str, detail: str) -> RequestProblem:
    return RequestProblem(422, "invalid-field", "Invalid request field", f"{field}: {detail}", field)


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    amount: int
    currency: str
    method: str
    country: str
    card: Card | None
    wallet_brand: str | None
    customer_id: str | None
    fingerprint: str  # sha256 of the canonical body: same key + other body → 422


def _int(body: dict[str, Any], key: str, lo: int, hi: int, path: str | None = None) -> int:
    value = body.get(key)
    name = path or key
    if value is None:
        raise invalid(name, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, f"expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise invalid(name, f"expected {lo}..{hi}, got {value}")
    return value


def _str(body: dict[str, Any], key: str, path: str | None = None, required: bool = True) -> str | None:
    value = body.get(key)
    name = path or key
    if value is None:
        if required:
            raise invalid(name, "is required")
        return None
    if not isinstance(value, str) or not value:
        raise invalid(name, f"expected a non-empty string, got {type(value).__name__}")
    return value


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], allowed_set: frozenset[str]) -> str:
    value = body.get(key)
    if type(value) is str and value in allowed_set:  # the common case, cheaply
        return value
    value = _str(body, key)
    raise invalid(key, f"expected one of {', '.join(allowed)}, got {value!r}")


def parse_payment(raw: bytes, content_type: str | None) -> PaymentRequest:
    """Validate a POST /v1/payments body. Raises :class:`RequestProblem`."""
    if not content_type or content_type.split(";")[0].strip().lower() != "application/json":
        raise RequestProblem(415, "unsupported-media-type", "Unsupported media type",
                             f"expected Content-Type application/json, got {content_type or 'none'}")
    if len(raw) > MAX_BODY_BYTES:
        raise RequestProblem(413, "body-too-large", "Request body too large",
                             f"the body is {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestProblem(400, "malformed-json", "Malformed JSON", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestProblem(400, "malformed-json", "Malformed JSON", "the body must be a JSON object")
    if not body.keys() <= KNOWN_FIELDS:
        unknown = next(str(k) for k in body if k not in KNOWN_FIELDS)
        raise invalid(unknown, "unknown field; known: " + ", ".join(sorted(KNOWN_FIELDS)))
    amount = _int(body, "amount", 1, MAX_AMOUNT)
    currency = _choice(body, "currency", CURRENCIES, _CURRENCY_SET)
    method = _choice(body, "method", METHODS, _METHOD_SET)
    country = _choice(body, "country", COUNTRIES, _COUNTRY_SET)
    customer_id = _str(body, "customer_id", required=False)
    if customer_id is not None and len(customer_id) > 255:
        raise invalid("customer_id", "at most 255 characters")
    card: Card | None = None
    wallet_brand: str | None = None
    if method == "card":
        raw_card = body.get("card")
        if not isinstance(raw_card, dict):
            raise invalid("card", "required for method=card: an object with number, exp_month, exp_year, cvc")
        number = _str(raw_card, "number", "card.number")
        assert number is not None
        number = number.replace(" ", "")
        if not luhn_valid(number) or not 13 <= len(number) <= 19:
            raise invalid("card.number", "not a valid card number (13-19 digits, Luhn check)")
        exp_month = _int(raw_card, "exp_month", 1, 12, "card.exp_month")
        exp_year = _int(raw_card, "exp_year", 2000, 2100, "card.exp_year")
        cvc = _str(raw_card, "cvc", "card.cvc")
        assert cvc is not None
        if not cvc.isdigit() or not 3 <= len(cvc) <= 4:
            raise invalid("card.cvc", "3 or 4 digits")
        card = Card(number, exp_month, exp_year, cvc)
    elif body.get("card") is not None:
        raise invalid("card", f"only for method=card, not {method}")
    if method == "wallet":
        wallet = body.get("wallet")
        if not isinstance(wallet, dict):
            raise invalid("wallet", "required for method=wallet: an object with brand")
        brand = _str(wallet, "brand", "wallet.brand")
        if brand not in WALLET_BRANDS:
            raise invalid("wallet.brand", f"expected one of {', '.join(WALLET_BRANDS)}, got {brand!r}")
        wallet_brand = brand
    elif body.get("wallet") is not None:
        raise invalid("wallet", f"only for method=wallet, not {method}")
    fingerprint = hashlib.sha256(_CANONICAL.encode(body).encode()).hexdigest()
    return PaymentRequest(amount, currency, method, country, card, wallet_brand, customer_id, fingerprint)


def validate_idempotency_key(value: str | None) -> str:
    if value is None or value == "":
        raise RequestProblem(400, "idempotency-key-missing", "Idempotency-Key required",
                             "send an Idempotency-Key header (1..255 characters) with every payment")
    if len(value) > 255 or not value.isprintable():
        raise RequestProblem(400, "idempotency-key-invalid", "Invalid Idempotency-Key",
                             "the Idempotency-Key must be 1..255 printable characters")
    return value
