"""adyen: Adyen's Checkout API, as the official SDKs call it (versions v68 to v72).

A *routed* dialect (``dialects/routes.py``): the simulator serves ``POST /payments``,
``/payments/details``, ``/payments/{pspReference}/captures | refunds | cancels |
reversals`` and ``/paymentMethods`` under every version prefix from ``/v68`` to ``/v72``
(the routes and their handlers are in ``adyen_routes.py``). JSON both ways, ``X-API-Key``
authentication (a wrong key: 401 ``{"status", "errorCode": "000", "message", "errorType":
"security"}``), ``Idempotency-Key`` optional (the same key replays the stored answer). A
refusal is HTTP 200 with ``resultCode`` Refused / Error / Cancelled, ``refusalReason`` and
``refusalReasonCode`` (``adyen_codes.py``, with the ``holderName`` /
``RequestedTestAcquirerResponseCode`` test triggers); konbini and bank transfer answer
``PresentToShopper`` with a voucher action, wallets ``RedirectShopper`` (the outcome comes
from ``/payments/details``). Validation errors are 422 ``{"status", "errorCode",
"message", "errorType": "validation"}``, server errors 500 ``errorType "internal"``.
Modifications answer 201 ``{"status": "received"}``; their outcome travels in standard
notifications (``adyen_notify.py``), HMAC-signed as the SDK's validator checks them.

The gateway side charges with ``POST /v71/payments`` and voids a late success with
``/payments/{pspReference}/reversals``. Adyen has no look-up by idempotency key (a real
integration learns outcomes from notifications); the simulator adds one, outside Adyen's
API, for the gateway's timeout path: ``GET /{version}/payments/by-idempotency-key/{key}``
and ``POST …/{key}/reversals | refunds``.
"""

from __future__ import annotations

import base64
import hmac
import zlib
from typing import Any

from paystab.stack.dialects._support import (
    UNKNOWN,
    DialectBase,
    as_int,
    as_str,
    dumps,
    json_reply,
    quote_key,
    require_json,
    scramble,
)
from paystab.stack.dialects.adyen_codes import (
    ASYNC_TYPES,
    BY_CODE,
    TYPE_METHODS,
    TYPE_WALLETS,
    WALLET_TYPES,
    Refusal,
    refusal_for,
    requested_refusal,
)
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    REFUNDED,
    VOIDED,
    Card,
    ChargeRequest,
    HttpCall,
    HttpReply,
    InboundCall,
    ProviderAnswer,
    SimOutcome,
)
from paystab.stack.dialects.forced import with_forced_code

VERSIONS = tuple(f"v{n}" for n in range(68, 73))
GATEWAY_VERSION = "v71"
MERCHANT_ACCOUNT = "PaystabJP_ECOM"
# The key the gateway sends, and what a simulator with no configured secret accepts.
TEST_API_KEY = "AQEpaystab_test_api_key"
_BASE = f"/{GATEWAY_VERSION}/payments"
_RR_PREFIX = "Ab02b4c0!"  # redirectResult tokens: opaque to the shop, like Adyen's


def error_doc(status: int, code: str, message: str, kind: str) -> HttpReply:
    return json_reply(status, {"status": status, "errorCode": code, "message": message,
                               "errorType": kind})


def validation_error(code: str, message: str) -> HttpReply:
    return error_doc(422, code, message, "validation")


def redirect_result(key: str) -> str:
    return _RR_PREFIX + base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def key_of_redirect_result(token: str) -> str | None:
    if not token.startswith(_RR_PREFIX):
        return None
    raw = token[len(_RR_PREFIX):]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _card(pm: dict[str, Any]) -> Card:
    """Plain test fields, or Adyen's unencrypted test values (``test_4111…``)."""
    def field(plain: str, encrypted: str) -> str:
        value = pm.get(plain)
        if value is None:
            value = pm.get(encrypted)
            if isinstance(value, str) and value.startswith("test_"):
                value = value[5:]
        return str(value) if value is not None else ""

    return Card(field("number", "encryptedCardNumber"),
                as_int(field("expiryMonth", "encryptedExpiryMonth"), "expiryMonth"),
                as_int(field("expiryYear", "encryptedExpiryYear"), "expiryYear"),
                field("cvc", "encryptedSecurityCode"))


def parse_payment(doc: dict[str, Any], key: str) -> tuple[ChargeRequest, Refusal | None]:
    """A ``/payments`` body → the charge, and the refusal its test fields ask for.

    Raises ValueError naming the field Adyen would complain about.
    """
    amount, pm = doc.get("amount"), doc.get("paymentMethod")
    if not isinstance(amount, dict) or not isinstance(pm, dict):
        raise ValueError("amount and paymentMethod objects are required")
    as_str(doc.get("merchantAccount"), "merchantAccount")
    kind = as_str(pm.get("type", "scheme"), "paymentMethod.type")
    card, brand, refusal = None, None, None
    if kind in ("scheme", "card"):
        method = "card"
        card = _card(pm)
        extra = doc.get("additionalData")
        requested = extra.get("RequestedTestAcquirerResponseCode") if isinstance(
            extra, dict) else None
        refusal = requested_refusal(pm.get("holderName"), requested)
    elif kind in TYPE_METHODS:
        method = TYPE_METHODS[kind]
    else:
        method, brand = "wallet", TYPE_WALLETS.get(kind, kind)
    shopper = doc.get("shopperReference")
    request = ChargeRequest(
        idempotency_key=key,
        payment_id=as_str(doc.get("reference"), "reference"),
        amount=as_int(amount.get("value"), "amount.value"),
        currency=as_str(amount.get("currency"), "amount.currency"),
        method=method,
        country=str(doc.get("countryCode", "")),
        card=card,
        wallet_brand=brand,
        customer_id=str(shopper) if shopper else None,
    )
    forced = None if refusal is None or refusal.unified == "approved" else refusal.unified
    return with_forced_code(request, forced), refusal


def payment_doc(outcome: SimOutcome, refusal: Refusal | None, merchant: str,
                pm_type: str | None = None) -> dict[str, Any]:
    """The ``/payments`` (and ``/payments/details``) answer for ``outcome``."""
    doc: dict[str, Any] = {
        "pspReference": outcome.provider_ref, "merchantReference": outcome.payment_id,
        "amount": {"value": outcome.amount, "currency": outcome.currency},
    }
    code = outcome.code
    if code in ("approved", VOIDED, REFUNDED):
        doc["resultCode"] = "Authorised"
        doc["additionalData"] = {"authCode": f"{zlib.crc32(outcome.provider_ref.encode()) % 10**6:06d}"}
        if code != "approved":
            doc["additionalData"]["paystabModification"] = "cancel" if code == VOIDED else \
                "refund"
    elif code == "pending":
        kind = ASYNC_TYPES.get(outcome.method, "econtext_stores")
        doc["resultCode"] = "PresentToShopper"
        doc["action"] = {"type": "voucher", "paymentMethodType": kind,
                         "reference": outcome.provider_ref[-12:],
                         "totalAmount": doc["amount"], "merchantName": merchant}
    else:
        reason = refusal if refusal is not None and refusal.unified == code else \
            refusal_for(code)
        doc.update(resultCode=reason.result, refusalReason=reason.reason,
                   refusalReasonCode=reason.code)
    if pm_type is not None:
        doc["paymentMethod"] = {"type": pm_type}
    return doc


def modification_doc(kind: str, outcome: SimOutcome, merchant: str, reference: str | None,
                     amount: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "merchantAccount": merchant, "paymentPspReference": outcome.provider_ref,
        "pspReference": modification_ref(kind, outcome.provider_ref),
        "reference": reference or outcome.payment_id, "status": "received",
    }
    if amount is not None:
        doc["amount"] = amount
    return doc


_MODIFICATION_PREFIX = {"captures": "C", "cancels": "N", "refunds": "R", "reversals": "V"}


def modification_ref(kind: str, psp: str) -> str:
    """A modification's own pspReference: distinct per (kind, payment); its first letter
    says the kind (R = refund)."""
    return _MODIFICATION_PREFIX[kind] + psp[1:]


class AdyenDialect(DialectBase):
    name = "adyen"
    charge_statuses = frozenset({200, 422})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({201, 404, 422})
    api_key = TEST_API_KEY  # what the gateway sends
    default_secret = TEST_API_KEY  # what a simulator requires unless configured otherwise

    def __init__(self) -> None:
        from paystab.stack.dialects.adyen_routes import adyen_routes

        self.routes = adyen_routes()

    # -- client side (the reference gateway) -------------------------------------------
    def _headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "X-API-Key": self.api_key}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def charge_call(self, request: ChargeRequest) -> HttpCall:
        method: dict[str, Any]
        if request.card is not None:
            card = request.card
            method = {"type": "scheme", "number": card.number,
                      "expiryMonth": f"{card.exp_month:02d}", "expiryYear": str(card.exp_year),
                      "cvc": card.cvc}
        elif request.method == "wallet":
            brand = request.wallet_brand or "wallet"
            method = {"type": WALLET_TYPES.get(brand, brand)}
        else:
            method = {"type": ASYNC_TYPES.get(request.method, request.method)}
        doc: dict[str, Any] = {
            "merchantAccount": MERCHANT_ACCOUNT, "reference": request.payment_id,
            "amount": {"value": request.amount, "currency": request.currency},
            "countryCode": request.country, "paymentMethod": method,
            "shopperInteraction": "Ecommerce",
        }
        if request.customer_id:
            doc["shopperReference"] = request.customer_id
        return HttpCall("POST", _BASE, self._headers(request.idempotency_key), dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        path = f"{_BASE}/by-idempotency-key/{quote_key(idempotency_key)}"
        return HttpCall("GET", path, self._headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        body = dumps({"merchantAccount": MERCHANT_ACCOUNT, "reference": idempotency_key})
        if provider_ref:
            path = f"{_BASE}/{quote_key(provider_ref)}/reversals"
        else:
            path = f"{_BASE}/by-idempotency-key/{quote_key(idempotency_key)}/reversals"
        return HttpCall("POST", path, self._headers(), body)

    def refund_call(self, idempotency_key: str) -> HttpCall:
        path = f"{_BASE}/by-idempotency-key/{quote_key(idempotency_key)}/refunds"
        return HttpCall("POST", path, self._headers(),
                        dumps({"merchantAccount": MERCHANT_ACCOUNT}))

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 422:
            return _validation_answer(doc)
        return _result_answer(doc)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        modification = (doc.get("additionalData") or {}).get("paystabModification")
        if modification is not None:
            code = VOIDED if modification == "cancel" else REFUNDED
            return ProviderAnswer(code, doc["pspReference"], modification)
        return _result_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        if status == 422:
            reason = doc.get("refusalReasonCode")
            if reason is None:  # e.g. 167: no such payment
                return ProviderAnswer(LOOKUP_NOT_FOUND if doc["errorCode"] == "167" else UNKNOWN,
                                      None, str(doc["errorCode"]))
            code = BY_CODE[str(reason)].unified if str(reason) in BY_CODE else UNKNOWN
            return ProviderAnswer(code, doc.get("pspReference"), str(doc["errorCode"]))
        if doc["status"] != "received":
            return ProviderAnswer(UNKNOWN, None, str(doc["status"]))
        code = REFUNDED if doc["pspReference"][0] == "R" else VOIDED
        return ProviderAnswer(code, doc["paymentPspReference"], str(doc["pspReference"])[0])

    # -- server side -------------------------------------------------------------------
    def authenticate(self, call: InboundCall) -> HttpReply | None:
        given = call.headers.get("x-api-key", "")
        expected = call.secret if call.secret is not None else None
        if expected is None:
            return None if given else _unauthorized()
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return _unauthorized()

    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        """The key-addressed view of the routes (the simulator serves ``routes``)."""
        found = self.routes.match(method, path)
        if found is None:
            return None
        route, params, _ = found
        return route.operation, params.get("key")

    def new_state(self, host: Any) -> Any:
        from paystab.stack.dialects.adyen_routes import AdyenState

        return AdyenState(host)

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        key = headers.get("idempotency-key", "")
        if not key:
            raise ValueError("Idempotency-Key is optional at Adyen; this parser needs one")
        return parse_payment(require_json(body), key)[0]

    def provider_ref(self, serial: int) -> str:
        # Adyen pspReferences: 16 characters, digits and capitals.
        return f"{scramble(serial) % 10**16:016d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        return json_reply(200, payment_doc(outcome, None, MERCHANT_ACCOUNT))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        return json_reply(200, payment_doc(outcome, None, MERCHANT_ACCOUNT))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        if outcome.code.startswith("declined.") or outcome.code.startswith("error."):
            return json_reply(422, {
                "status": 422, "errorCode": "167", "errorType": "validation",
                "message": "Original payment was refused: nothing to modify",
                "pspReference": outcome.provider_ref,
                "refusalReasonCode": refusal_for(outcome.code).code})
        kind = "refunds" if outcome.code == REFUNDED else "reversals"
        return json_reply(201, modification_doc(kind, outcome, MERCHANT_ACCOUNT, None, None))

    def render_bad_request(self, reason: str) -> HttpReply:
        return validation_error("101", reason)

    def render_no_route(self, method: str, path: str) -> HttpReply:
        return error_doc(404, "000", "HTTP Status Response - Not Found", "validation")

    def server_error(self) -> HttpReply:
        return error_doc(500, "901", "Internal error", "internal")

    def rate_limited(self) -> HttpReply:
        return error_doc(429, "429", "Too many requests", "throttling")


def _unauthorized() -> HttpReply:
    return error_doc(401, "000", "HTTP Status Response - Unauthorized", "security")


def _result_answer(doc: dict[str, Any]) -> ProviderAnswer:
    result = doc["resultCode"]
    ref = doc["pspReference"]
    if result == "Authorised":
        return ProviderAnswer("approved", ref, result)
    if result in ("PresentToShopper", "Pending", "Received", "RedirectShopper",
                  "IdentifyShopper", "ChallengeShopper"):
        return ProviderAnswer("pending", ref, result)
    if result in ("Refused", "Cancelled", "Error"):
        reason = str(doc.get("refusalReasonCode", "2" if result != "Error" else "4"))
        refusal = BY_CODE.get(reason)
        code = refusal.unified if refusal is not None else UNKNOWN
        return ProviderAnswer(code, ref, f"{result} {reason} {doc.get('refusalReason', '')}")
    return ProviderAnswer(UNKNOWN, ref, str(result))


def _validation_answer(doc: dict[str, Any]) -> ProviderAnswer:
    code = "declined.not_supported" if doc["errorCode"] == "905_1" else "declined.invalid_data"
    return ProviderAnswer(code, doc.get("pspReference"), f"{doc['errorCode']} {doc['message']}")


def _not_found(doc: dict[str, Any]) -> ProviderAnswer:
    if doc["status"] == 404:
        return ProviderAnswer(LOOKUP_NOT_FOUND, None, str(doc["errorCode"]))
    return ProviderAnswer(UNKNOWN, None, str(doc["errorCode"]))


def _missing_reply() -> HttpReply:
    return error_doc(404, "000", "No payment found for this idempotency key", "validation")
