"""Stripe's wire conventions, shared by the client and server halves of the ``stripe`` dialect.

* Form bodies with bracket notation (``metadata[order]=7``, ``expand[]=x``,
  ``payment_method_types[0]=card``) ↔ nested dicts and lists (:func:`decode_form`).
* The error object: ``{"error": {"type", "code", "decline_code", "message", "param", …}}``
  with Stripe's HTTP statuses (400 invalid request, 401 bad key, 402 card error, 404
  missing, 429 rate limit, 500 api error) and a ``Request-Id`` header on every answer.
* The documented test cards and test payment methods (docs.stripe.com/testing), each with
  the ``code``/``decline_code`` Stripe answers, and the map between Stripe decline codes and
  the unified taxonomy (``stack/errors.py``).
* Webhook signatures: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>``,
  what ``stripe.Webhook.construct_event`` verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from typing import Any
from urllib.parse import unquote

from paystab.stack.dialects.base import HttpReply

JSON_CT = "application/json"
API_VERSION = "2024-06-20"
DEFAULT_SECRET_KEY = "sk_test_paystab"

# card number → (error code, decline code, unified code); docs.stripe.com/testing
TEST_DECLINES: dict[str, tuple[str, str, str]] = {
    "4000000000000002": ("card_declined", "generic_decline", "declined.do_not_honor"),
    "4000000000009995": ("card_declined", "insufficient_funds", "declined.insufficient_funds"),
    "4000000000009987": ("card_declined", "lost_card", "declined.fraud"),
    "4000000000009979": ("card_declined", "stolen_card", "declined.fraud"),
    "4000000000000069": ("expired_card", "expired_card", "declined.expired_card"),
    "4000000000000127": ("incorrect_cvc", "incorrect_cvc", "declined.invalid_data"),
    "4000000000000119": ("processing_error", "processing_error", "declined.issuer_unavailable"),
    "4000000000006975": ("card_declined", "card_velocity_exceeded", "declined.limit_exceeded"),
    "4100000000000019": ("card_declined", "fraudulent", "declined.fraud"),
}
# test payment method id → card number (its brand and outcome follow from the number)
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_mastercard_debit": "5200828282828210",
    "pm_card_amex": "378282246310005",
    "pm_card_jcb": "3566002020360505",
    "pm_card_jp": "4000003920000003",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_radarBlock": "4100000000000019",
}
TEST_TOKENS = {"tok_" + pm.removeprefix("pm_card_"): number
               for pm, number in TEST_PAYMENT_METHODS.items()}

# unified decline → (error code, decline code) for declines not caused by a test card
DECLINES: dict[str, tuple[str, str]] = {
    "declined.insufficient_funds": ("card_declined", "insufficient_funds"),
    "declined.do_not_honor": ("card_declined", "do_not_honor"),
    "declined.expired_card": ("expired_card", "expired_card"),
    "declined.fraud": ("card_declined", "fraudulent"),
    "declined.invalid_data": ("incorrect_number", "incorrect_number"),
    "declined.limit_exceeded": ("card_declined", "card_velocity_exceeded"),
    "declined.not_supported": ("card_declined", "card_not_supported"),
    "declined.issuer_unavailable": ("card_declined", "issuer_not_available"),
}
# Stripe decline code (or error code) → unified, for the gateway's client half
UNIFIED_BY_DECLINE: dict[str, str] = {
    **{decline: unified for unified, (_, decline) in DECLINES.items()},
    **{decline: unified for _, decline, unified in TEST_DECLINES.values()},
    "generic_decline": "declined.do_not_honor", "call_issuer": "declined.do_not_honor",
    "do_not_try_again": "declined.do_not_honor", "pickup_card": "declined.fraud",
    "restricted_card": "declined.fraud", "security_violation": "declined.fraud",
    "incorrect_number": "declined.invalid_data", "invalid_number": "declined.invalid_data",
    "invalid_cvc": "declined.invalid_data", "invalid_expiry_month": "declined.invalid_data",
    "invalid_expiry_year": "declined.invalid_data", "incorrect_zip": "declined.invalid_data",
    "withdrawal_count_limit_exceeded": "declined.limit_exceeded",
    "currency_not_supported": "declined.not_supported",
    "transaction_not_allowed": "declined.not_supported",
    "try_again_later": "declined.issuer_unavailable",
    "reenter_transaction": "declined.issuer_unavailable",
    "authentication_required": "declined.do_not_honor",
}
DECLINE_MESSAGES = {
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "incorrect_number": "Your card number is incorrect.",
    "insufficient_funds": "Your card has insufficient funds.",
}


_ids = random.Random()  # object ids need to be unique, not secret (os.urandom per id is not free)


def new_id(prefix: str) -> str:
    return f"{prefix}_{_ids.getrandbits(96):024x}"


def new_secret(prefix: str) -> str:
    """A secret (client secret, webhook signing secret): from the OS's CSPRNG."""
    return f"{prefix}_{secrets.token_hex(16)}"


def request_id() -> str:
    return f"req_{_ids.getrandbits(56):014x}"


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def reply(status: int, doc: object, headers: dict[str, str] | None = None) -> HttpReply:
    return HttpReply(status, JSON_CT, dumps(doc),
                     {"Request-Id": request_id(), "Stripe-Version": API_VERSION, **(headers or {})})


def error(status: int, kind: str, message: str, code: str | None = None,
          param: str | None = None, **extra: Any) -> HttpReply:
    """Stripe's error object; ``kind`` is its ``type`` (invalid_request_error, card_error…)."""
    body: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        body["code"] = code
        body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param is not None:
        body["param"] = param
    body.update(extra)
    return reply(status, {"error": body})


def _unquote(text: str) -> str:
    if "+" in text:
        text = text.replace("+", " ")
    return unquote(text, errors="strict") if "%" in text else text


def _pairs(body: bytes | str) -> list[tuple[str, str]]:
    """``parse_qsl`` for forms, about twice as fast on bracket-heavy Stripe bodies."""
    try:
        text = body.decode() if isinstance(body, bytes) else body
        pairs = []
        for part in text.split("&"):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(part)
            key = key.replace("%5B", "[").replace("%5D", "]").replace("%5b", "[").replace(
                "%5d", "]")
            pairs.append((_unquote(key), _unquote(value)))
        return pairs
    except (UnicodeDecodeError, ValueError):
        raise ValueError("the request body is not application/x-www-form-urlencoded") from None


def decode_form(body: bytes | str, pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A form body in bracket notation as nested dicts and lists; ValueError if unreadable."""
    root: dict[str, Any] = {}
    lists = False  # only then are hashes with numeric keys turned into lists
    for key, value in (_pairs(body) if pairs is None else pairs):
        if "[" not in key:
            root[key] = value
            continue
        name, _, rest = key.partition("[")
        parts = [name, *(p.rstrip("]") for p in rest.split("["))]
        node = root
        for index, part in enumerate(parts):
            if part == "":  # a[] = append
                part = str(len(node))
                lists = True
            elif part[0].isdigit():
                lists = True
            if index == len(parts) - 1:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"parameter {key} mixes a value and a hash")
                node = child
    if not lists:
        return root
    result: dict[str, Any] = _listify(root)
    return result


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests with one Idempotency-Key "the same parameters".

    The exact body: an SDK retrying a request sends the same bytes (parsing the form a
    second time to compare parameters cost ~15 % of a charge's CPU time).
    """
    head = f"{method} {path.partition('?')[0]}\n".encode()
    return hashlib.sha256(head + body).hexdigest()


def sign_webhook(payload: bytes, secret: str, at: float) -> dict[str, str]:
    """The ``Stripe-Signature`` header for ``payload`` at unix time ``at``."""
    stamp = int(at)
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return {"Stripe-Signature": f"t={stamp},v1={mac.hexdigest()}"}


def redact_key(key: str) -> str:
    return f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"
