"""bravo: an Adyen-like card acquirer.

JSON in both directions; the idempotency key travels in the ``Idempotency-Key`` header and
the payment id as ``reference``. A refusal is **HTTP 200** with ``resultCode: "Refused"``,
a ``refusalReason`` and a numeric ``refusalReasonCode``; asynchronous methods answer
``resultCode: "PresentToShopper"`` with a voucher action. A method/currency the account
cannot take is HTTP 422 ``errorCode "905_1"``; other validation errors 422 ``errorCode
"101"``; server errors 500 ``{"status", "errorCode", "message", "errorType"}``.
Modifications (cancel, refund) answer 201 ``{"status": "received"}``.
"""

from __future__ import annotations

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
    split_target,
)
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    REFUNDED,
    VOIDED,
    Card,
    ChargeRequest,
    HttpCall,
    HttpReply,
    ProviderAnswer,
    SimOutcome,
)

_BASE = "/v71/payments"
_MERCHANT = "PaystabJP_ECOM"
# unified decline → (refusalReasonCode, refusalReason); not_supported is a 422 instead
_REFUSALS = {
    "declined.do_not_honor": ("2", "Refused"),
    "declined.expired_card": ("6", "Expired Card"),
    "declined.invalid_data": ("8", "Invalid Card Number"),
    "declined.issuer_unavailable": ("9", "Issuer Unavailable"),
    "declined.insufficient_funds": ("12", "Not enough balance"),
    "declined.fraud": ("20", "FRAUD"),
    "declined.limit_exceeded": ("28", "Withdrawal amount exceeded"),
    "declined.not_supported": ("23", "Transaction Not Permitted"),
}
_BY_REFUSAL = {code: unified for unified, (code, _) in _REFUSALS.items()}
_TYPES = {"konbini": "econtext_stores", "bank_transfer": "bank_transfer_JP"}
_METHODS = {v: k for k, v in _TYPES.items()}


class BravoDialect(DialectBase):
    name = "bravo"
    charge_statuses = frozenset({200, 422})
    void_statuses = frozenset({201, 404, 422})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        method: dict[str, Any]
        if request.card is not None:
            card = request.card
            method = {"type": "scheme", "number": card.number,
                      "expiryMonth": f"{card.exp_month:02d}", "expiryYear": str(card.exp_year),
                      "cvc": card.cvc}
        elif request.method == "wallet":
            method = {"type": request.wallet_brand or "wallet"}
        else:
            method = {"type": _TYPES.get(request.method, request.method)}
        doc: dict[str, Any] = {
            "merchantAccount": _MERCHANT,
            "reference": request.payment_id,
            "amount": {"value": request.amount, "currency": request.currency},
            "countryCode": request.country,
            "paymentMethod": method,
            "shopperInteraction": "Ecommerce",
        }
        if request.customer_id:
            doc["shopperReference"] = request.customer_id
        headers = {"Content-Type": "application/json", "Idempotency-Key": request.idempotency_key,
                   "X-API-Key": "bravo-sim"}
        return HttpCall("POST", _BASE, headers, dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_BASE}/by-idempotency-key/{quote_key(idempotency_key)}", {})

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return self._modification(idempotency_key, "cancels")

    def refund_call(self, idempotency_key: str) -> HttpCall:
        return self._modification(idempotency_key, "refunds")

    @staticmethod
    def _modification(key: str, kind: str) -> HttpCall:
        path = f"{_BASE}/by-idempotency-key/{quote_key(key)}/{kind}"
        body = dumps({"merchantAccount": _MERCHANT})
        return HttpCall("POST", path, {"Content-Type": "application/json"}, body)

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 422:
            return _validation_answer(doc)
        return _result_answer(doc)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        modification = doc.get("modification")
        if modification == "cancel":
            return ProviderAnswer(VOIDED, doc["pspReference"], "Cancelled")
        if modification == "refund":
            return ProviderAnswer(REFUNDED, doc["pspReference"], "Refunded")
        return _result_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        if status == 422:  # a refused payment has nothing to cancel
            code = _BY_REFUSAL.get(str(doc["refusalReasonCode"]), UNKNOWN)
            return ProviderAnswer(code, doc.get("pspReference"), str(doc["errorCode"]))
        if doc["status"] != "received":
            return ProviderAnswer(UNKNOWN, None, str(doc["status"]))
        code = VOIDED if doc["type"] == "cancel" else REFUNDED
        return ProviderAnswer(code, doc["paymentPspReference"], doc["type"])

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, _ = split_target(path)
        if seg[:2] != ["v71", "payments"]:
            return None
        if len(seg) == 2 and method == "POST":
            return ("charge", None)
        if len(seg) >= 4 and seg[2] == "by-idempotency-key":
            if len(seg) == 4 and method == "GET":
                return ("status", seg[3])
            if len(seg) == 5 and method == "POST":
                return {"cancels": ("void", seg[3]), "refunds": ("refund", seg[3])}.get(seg[4])
        return None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        key = headers.get("idempotency-key", "")
        if not key:
            raise ValueError("Idempotency-Key header is required")
        doc = require_json(body)
        amount = doc.get("amount")
        pm = doc.get("paymentMethod")
        if not isinstance(amount, dict) or not isinstance(pm, dict):
            raise ValueError("amount and paymentMethod objects are required")
        kind = as_str(pm.get("type"), "paymentMethod.type")
        card = None
        if kind == "scheme":
            method = "card"
            card = Card(str(pm.get("number", "")), as_int(pm.get("expiryMonth"), "expiryMonth"),
                        as_int(pm.get("expiryYear"), "expiryYear"), str(pm.get("cvc", "")))
        else:
            method = _METHODS.get(kind, "wallet")
        return ChargeRequest(
            idempotency_key=key,
            payment_id=as_str(doc.get("reference"), "reference"),
            amount=as_int(amount.get("value"), "amount.value"),
            currency=as_str(amount.get("currency"), "amount.currency"),
            method=method,
            country=str(doc.get("countryCode", "")),
            card=card,
            wallet_brand=kind if method == "wallet" else None,
            customer_id=doc.get("shopperReference"),
        )

    def provider_ref(self, serial: int) -> str:
        return f"{scramble(serial) % 10**16:016d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code == "declined.not_supported":
            return json_reply(422, {
                "status": 422, "errorCode": "905_1", "errorType": "configuration",
                "message": "Could not find an acquirer account for the provided txvariant, "
                           "currency and action", "pspReference": outcome.provider_ref})
        return json_reply(200, _result(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        doc = _result(outcome)
        return json_reply(200, doc)

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        if outcome.code.startswith("declined."):
            return json_reply(422, {
                "status": 422, "errorCode": "167", "errorType": "validation",
                "message": "Original payment was refused: nothing to modify",
                "pspReference": outcome.provider_ref,
                "refusalReasonCode": _REFUSALS[outcome.code][0]})
        kind = "refund" if outcome.code == REFUNDED else "cancel"
        return json_reply(201, {
            "merchantAccount": _MERCHANT, "status": "received", "type": kind,
            "paymentPspReference": outcome.provider_ref, "reference": outcome.payment_id,
            "pspReference": f"{kind[0].upper()}{outcome.provider_ref[1:]}"})

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(422, {"status": 422, "errorCode": "101", "message": reason,
                                "errorType": "validation"})

    def server_error(self) -> HttpReply:
        return json_reply(500, {"status": 500, "errorCode": "901", "errorType": "internal",
                                "message": "Internal error"})

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"status": 429, "errorCode": "429", "errorType": "throttling",
                                "message": "Too many requests"})


def _result(outcome: SimOutcome) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "pspReference": outcome.provider_ref, "merchantReference": outcome.payment_id,
        "amount": {"value": outcome.amount, "currency": outcome.currency},
    }
    code = outcome.code
    if code in ("approved", VOIDED, REFUNDED):
        doc["resultCode"] = "Authorised"
        doc["modification"] = {VOIDED: "cancel", REFUNDED: "refund"}.get(code)
    elif code == "pending":
        doc["resultCode"] = "PresentToShopper"
        doc["action"] = {"type": "voucher", "paymentMethodType": "econtext_stores",
                         "reference": outcome.provider_ref[-12:]}
    else:
        reason_code, reason = _REFUSALS[code]
        doc.update(resultCode="Refused", refusalReason=reason, refusalReasonCode=reason_code)
    return doc


def _result_answer(doc: dict[str, Any]) -> ProviderAnswer:
    result = doc["resultCode"]
    ref = doc["pspReference"]
    if result == "Authorised":
        return ProviderAnswer("approved", ref, result)
    if result in ("PresentToShopper", "Pending", "Received"):
        return ProviderAnswer("pending", ref, result)
    if result == "Refused":
        reason = str(doc["refusalReasonCode"])
        return ProviderAnswer(_BY_REFUSAL.get(reason, UNKNOWN), ref, f"{reason} {doc.get('refusalReason')}")
    if result == "Cancelled":
        return ProviderAnswer(VOIDED, ref, result)
    if result == "Error":
        return ProviderAnswer("error.provider_5xx", ref, str(doc.get("refusalReason", result)))
    return ProviderAnswer(UNKNOWN, ref, str(result))


def _validation_answer(doc: dict[str, Any]) -> ProviderAnswer:
    code = "declined.not_supported" if doc["errorCode"] == "905_1" else "declined.invalid_data"
    return ProviderAnswer(code, doc.get("pspReference"), f"{doc['errorCode']} {doc['message']}")


def _not_found(doc: dict[str, Any]) -> ProviderAnswer:
    if doc["status"] == 404:
        return ProviderAnswer(LOOKUP_NOT_FOUND, None, str(doc["errorCode"]))
    return ProviderAnswer(UNKNOWN, None, str(doc["errorCode"]))


def _missing_reply() -> HttpReply:
    return json_reply(404, {"status": 404, "errorCode": "000", "errorType": "validation",
                            "message": "No payment found for this idempotency key"})
