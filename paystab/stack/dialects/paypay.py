"""paypay: a PayPay-like QR/wallet provider.

JSON with an ``Authorization: hmac OPA-Auth:…`` header. The merchant's own id for the
payment, ``merchantPaymentId``, *is* the idempotency key (and how status look-up and cancel
address it: ``GET``/``DELETE /v2/payments/{merchantPaymentId}``); the gateway's payment id
rides in ``metadata.paystabPaymentId``. Every answer is ``{"resultInfo": {"code", "message",
"codeId"}, "data": …}``: ``SUCCESS`` with ``data.status`` COMPLETED / CREATED / FAILED /
CANCELED / REFUNDED, and errors as HTTP 400 with a business code (``NO_SUFFICIENT_FUND``…),
404 ``PAYMENT_NOT_FOUND``, 500 ``INTERNAL_SERVER_ERROR``, 429 ``TOO_MANY_REQUESTS``.
"""

from __future__ import annotations

from typing import Any

from paystab.stack.dialects._support import (
    UNKNOWN,
    DialectBase,
    as_int,
    as_str,
    dumps,
    invert,
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

_API = "/v2/payments"
_DECLINES = {
    "declined.insufficient_funds": ("NO_SUFFICIENT_FUND", "08100016"),
    "declined.do_not_honor": ("TRANSACTION_FAILED", "08100020"),
    "declined.expired_card": ("EXPIRED_USER_AUTHORIZATION", "08100031"),
    "declined.fraud": ("SUSPECTED_FRAUD", "08100042"),
    "declined.invalid_data": ("INVALID_PARAMS", "08100006"),
    "declined.limit_exceeded": ("PAYMENT_LIMIT_EXCEEDED", "08100052"),
    "declined.not_supported": ("UNACCEPTABLE_OP", "08100064"),
    "declined.issuer_unavailable": ("LINKED_BANK_MAINTENANCE", "08100078"),
}
_BY_CODE = {code: unified for unified, (code, _) in _DECLINES.items()}
_STATUS = {"approved": "COMPLETED", "pending": "CREATED", VOIDED: "CANCELED",
           REFUNDED: "REFUNDED"}
_BY_STATUS = invert(_STATUS)


def _info(code: str, message: str, code_id: str) -> dict[str, str]:
    return {"code": code, "message": message, "codeId": code_id}


_SUCCESS = _info("SUCCESS", "Success", "08100001")


class PayPayDialect(DialectBase):
    name = "paypay"
    charge_statuses = frozenset({201, 400})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({201, 202, 400, 404})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        doc: dict[str, Any] = {
            "merchantPaymentId": request.idempotency_key,
            "userAuthorizationId": request.customer_id or "anonymous",
            "amount": {"amount": request.amount, "currency": request.currency},
            "orderDescription": "paystab order",
            "metadata": {"paystabPaymentId": request.payment_id, "country": request.country},
            "paymentMethod": {"type": request.method.upper(), "brand": request.wallet_brand},
        }
        if request.card is not None:
            c = request.card
            doc["paymentMethod"]["card"] = {"number": c.number, "expiry": f"{c.exp_month:02d}/"
                                            f"{c.exp_year}", "securityCode": c.cvc}
        return HttpCall("POST", _API, _headers(), dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_API}/{quote_key(idempotency_key)}", _headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return HttpCall("DELETE", f"{_API}/{quote_key(idempotency_key)}", _headers())

    def refund_call(self, idempotency_key: str) -> HttpCall:
        body = dumps({"reason": "customer request"})
        return HttpCall("POST", f"{_API}/{quote_key(idempotency_key)}/refunds", _headers(), body)

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        code = doc["resultInfo"]["code"]
        if code != "SUCCESS":
            data = doc.get("data") or {}
            return ProviderAnswer(_BY_CODE.get(code, UNKNOWN), data.get("paymentId"), code)
        return _data_answer(doc["data"])

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        return self.charge_answer(status, doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        code = doc["resultInfo"]["code"]
        if status == 404:
            return _not_found(doc)
        if status == 202 and code == "REQUEST_ACCEPTED":
            return ProviderAnswer(VOIDED, None, code)
        if status == 400 and code == "CANCEL_NOT_ALLOWED":
            failure = doc["data"]["failureCode"]
            return ProviderAnswer(_BY_CODE.get(failure, UNKNOWN), doc["data"].get("paymentId"),
                                  f"{code} ({failure})")
        return self.charge_answer(status, doc)

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, _ = split_target(path)
        if seg[:2] != ["v2", "payments"]:
            return None
        if len(seg) == 2:
            return ("charge", None) if method == "POST" else None
        if len(seg) == 3:
            return {"GET": ("status", seg[2]), "DELETE": ("void", seg[2])}.get(method)
        if len(seg) == 4 and seg[3] == "refunds" and method == "POST":
            return ("refund", seg[2])
        return None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        if not headers.get("authorization", "").startswith("hmac OPA-Auth:"):
            raise ValueError("Authorization: hmac OPA-Auth:… is required")
        doc = require_json(body)
        amount, meta, pm = doc.get("amount"), doc.get("metadata"), doc.get("paymentMethod")
        if not (isinstance(amount, dict) and isinstance(meta, dict) and isinstance(pm, dict)):
            raise ValueError("amount, metadata and paymentMethod are required")
        method = as_str(pm.get("type"), "paymentMethod.type").lower()
        card = None
        raw_card = pm.get("card")
        if isinstance(raw_card, dict):
            month, _, year = str(raw_card.get("expiry", "")).partition("/")
            card = Card(str(raw_card.get("number", "")), as_int(month, "expiry month"),
                        as_int(year, "expiry year"), str(raw_card.get("securityCode", "")))
        user = doc.get("userAuthorizationId")
        return ChargeRequest(
            idempotency_key=as_str(doc.get("merchantPaymentId"), "merchantPaymentId"),
            payment_id=as_str(meta.get("paystabPaymentId"), "metadata.paystabPaymentId"),
            amount=as_int(amount.get("amount"), "amount.amount"),
            currency=as_str(amount.get("currency"), "amount.currency"),
            method=method,
            country=str(meta.get("country", "")),
            card=card,
            wallet_brand=pm.get("brand"),
            customer_id=None if user in (None, "anonymous") else str(user),
        )

    def provider_ref(self, serial: int) -> str:
        return f"{scramble(serial) % 10**19:019d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code.startswith("declined."):
            code, code_id = _DECLINES[outcome.code]
            return json_reply(400, {"resultInfo": _info(code, "payment declined", code_id),
                                    "data": {"paymentId": outcome.provider_ref}})
        return json_reply(201, {"resultInfo": _SUCCESS, "data": _data(outcome)})

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_found_reply()
        return json_reply(200, {"resultInfo": _SUCCESS, "data": _data(outcome)})

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_found_reply()
        if outcome.code.startswith("declined."):
            return json_reply(400, {
                "resultInfo": _info("CANCEL_NOT_ALLOWED", "payment is not cancelable", "08100099"),
                "data": {"paymentId": outcome.provider_ref,
                         "failureCode": _DECLINES[outcome.code][0]}})
        if outcome.code == REFUNDED:
            return json_reply(201, {"resultInfo": _SUCCESS, "data": _data(outcome)})
        return json_reply(202, {"resultInfo": _info("REQUEST_ACCEPTED", "Request accepted",
                                                    "08100001"), "data": None})

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"resultInfo": _info("INVALID_PARAMS", reason, "08100006"),
                                "data": None})

    def server_error(self) -> HttpReply:
        return json_reply(500, {"resultInfo": _info("INTERNAL_SERVER_ERROR",
                                                    "Something went wrong", "08100026"),
                                "data": None})

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"resultInfo": _info("TOO_MANY_REQUESTS", "Rate limit exceeded",
                                                    "08100998"), "data": None})


def _headers() -> dict[str, str]:
    return {"Content-Type": "application/json;charset=UTF-8",
            "Authorization": "hmac OPA-Auth:paystab-sim:simulated:0:nonce:none",
            "X-ASSUME-MERCHANT": "paystab-jp"}


def _data(outcome: SimOutcome) -> dict[str, Any]:
    code = outcome.code
    data: dict[str, Any] = {
        "paymentId": outcome.provider_ref, "merchantPaymentId": outcome.idempotency_key,
        "amount": {"amount": outcome.amount, "currency": outcome.currency},
        "metadata": {"paystabPaymentId": outcome.payment_id},
        "status": _STATUS.get(code, "FAILED"), "acceptedAt": 1735657200,
    }
    if code.startswith("declined."):
        data["failureCode"] = _DECLINES[code][0]
    return data


def _data_answer(data: dict[str, Any]) -> ProviderAnswer:
    status = data["status"]
    ref = data["paymentId"]
    if status == "FAILED":
        return ProviderAnswer(_BY_CODE.get(data["failureCode"], UNKNOWN), ref, data["failureCode"])
    return ProviderAnswer(_BY_STATUS.get(status, UNKNOWN), ref, status)


def _not_found(doc: dict[str, Any]) -> ProviderAnswer:
    code = doc["resultInfo"]["code"]
    return ProviderAnswer(LOOKUP_NOT_FOUND if code == "PAYMENT_NOT_FOUND" else UNKNOWN, None, code)


def _not_found_reply() -> HttpReply:
    return json_reply(404, {"resultInfo": _info("PAYMENT_NOT_FOUND", "payment not found",
                                                "08100088"), "data": None})
