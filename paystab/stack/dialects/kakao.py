"""kakao: a KakaoPay-like Korean wallet.

JSON with an ``Authorization: SECRET_KEY …`` header; the fields are snake_case and
partner-centric: ``cid``, ``partner_order_id`` (the payment id), ``partner_user_id``,
``total_amount``, and the idempotency key as ``partner_request_id``. Success is HTTP 200
with a ``tid`` and ``status`` (SUCCESS_PAYMENT, WAITING_DEPOSIT for asynchronous methods,
CANCEL_PAYMENT, REFUND_PAYMENT, FAIL_PAYMENT). Every failure, declines and unknown
payments included, is **HTTP 400 with a negative numeric code**: ``{"code": -780, "msg":
"approval failure", "extras": {"method_result_code": …}}``; a server error is 500
``{"code": -9798, …}``.
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

_API = "/online/v1/payment"
# unified decline → (code, msg, extras.method_result_code)
_DECLINES: dict[str, tuple[int, str, str]] = {
    "declined.do_not_honor": (-780, "approval failure", "USER_DECLINED"),
    "declined.insufficient_funds": (-782, "insufficient balance", "MONEY_BALANCE_SHORT"),
    "declined.expired_card": (-783, "payment method expired", "CARD_EXPIRED"),
    "declined.invalid_data": (-784, "invalid payment method data", "INVALID_METHOD_DATA"),
    "declined.fraud": (-785, "blocked by risk management", "FDS_BLOCKED"),
    "declined.limit_exceeded": (-797, "exceeded the maximum payment amount", "LIMIT_EXCEEDED"),
    "declined.not_supported": (-798, "payment method not allowed", "METHOD_NOT_ALLOWED"),
    "declined.issuer_unavailable": (-799, "financial institution under maintenance",
                                    "BANK_MAINTENANCE"),
}
_BY_CODE = {code: unified for unified, (code, _, _) in _DECLINES.items()}
_BY_CODE[-2] = "declined.invalid_data"  # invalid request parameter
_NOT_FOUND = -721
_NOT_CANCELLABLE = -708
_STATUS = {"approved": "SUCCESS_PAYMENT", "pending": "WAITING_DEPOSIT", VOIDED: "CANCEL_PAYMENT",
           REFUNDED: "REFUND_PAYMENT"}
_BY_STATUS = invert(_STATUS)
_METHOD_TYPES = {"wallet": "MONEY", "card": "CARD", "bank_transfer": "BANK_TRANSFER",
                 "konbini": "KONBINI"}
_BY_METHOD_TYPE = invert(_METHOD_TYPES)


class KakaoDialect(DialectBase):
    name = "kakao"
    charge_statuses = frozenset({200, 400})
    status_statuses = frozenset({200, 400})
    void_statuses = frozenset({200, 400})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        doc: dict[str, Any] = {
            "cid": "TC0ONETIME", "partner_order_id": request.payment_id,
            "partner_user_id": request.customer_id or "guest",
            "partner_request_id": request.idempotency_key,
            "item_name": "paystab order", "quantity": 1,
            "total_amount": request.amount, "tax_free_amount": 0,
            "currency": request.currency, "country": request.country,
            "payment_method_type": _METHOD_TYPES.get(request.method, request.method.upper()),
        }
        if request.wallet_brand:
            doc["wallet_brand"] = request.wallet_brand
        if request.card is not None:
            c = request.card
            doc["card_info"] = {"card_no": c.number, "expire_month": c.exp_month,
                                "expire_year": c.exp_year, "cvc": c.cvc}
        return HttpCall("POST", f"{_API}/approve", _headers(), dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        path = f"{_API}/order?cid=TC0ONETIME&partner_request_id={quote_key(idempotency_key)}"
        return HttpCall("GET", path, _headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        path = f"{_API}/cancel?partner_request_id={quote_key(idempotency_key)}"
        return HttpCall("POST", path, _headers(), dumps({"cid": "TC0ONETIME", "tid": provider_ref}))

    def refund_call(self, idempotency_key: str) -> HttpCall:
        path = f"{_API}/refund?partner_request_id={quote_key(idempotency_key)}"
        return HttpCall("POST", path, _headers(), dumps({"cid": "TC0ONETIME"}))

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 400:
            return _failure(doc)
        return _payment_answer(doc)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 400:
            return _failure(doc)
        return _payment_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 400:
            if doc["code"] == _NOT_CANCELLABLE:
                original = int(doc["extras"]["fail_code"])
                return ProviderAnswer(_BY_CODE.get(original, UNKNOWN), doc["extras"].get("tid"),
                                      f"{_NOT_CANCELLABLE} (original {original})")
            return _failure(doc)
        return _payment_answer(doc)

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, query = split_target(path)
        if seg[:3] != ["online", "v1", "payment"] or len(seg) != 4:
            return None
        if seg[3] == "approve":
            return ("charge", None) if method == "POST" else None
        op = {("GET", "order"): "status", ("POST", "cancel"): "void",
              ("POST", "refund"): "refund"}.get((method, seg[3]))
        key = query.get("partner_request_id")
        return (op, key) if op and key else None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        if not headers.get("authorization", "").startswith("SECRET_KEY "):
            raise ValueError("Authorization: SECRET_KEY … is required")
        doc = require_json(body)
        kind = as_str(doc.get("payment_method_type"), "payment_method_type")
        card = None
        info = doc.get("card_info")
        if isinstance(info, dict):
            card = Card(str(info.get("card_no", "")), as_int(info.get("expire_month"), "month"),
                        as_int(info.get("expire_year"), "year"), str(info.get("cvc", "")))
        user = doc.get("partner_user_id")
        return ChargeRequest(
            idempotency_key=as_str(doc.get("partner_request_id"), "partner_request_id"),
            payment_id=as_str(doc.get("partner_order_id"), "partner_order_id"),
            amount=as_int(doc.get("total_amount"), "total_amount"),
            currency=as_str(doc.get("currency", "KRW"), "currency"),
            method=_BY_METHOD_TYPE.get(kind, kind.lower()),
            country=str(doc.get("country", "")),
            card=card,
            wallet_brand=doc.get("wallet_brand"),
            customer_id=None if user in (None, "guest") else str(user),
        )

    def provider_ref(self, serial: int) -> str:
        return f"T{scramble(serial):019X}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code.startswith("declined."):
            return _failure_reply(outcome)
        return json_reply(200, _payment(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_found_reply()
        if outcome.code.startswith("declined."):
            doc = _payment(outcome)
            doc["status"] = "FAIL_PAYMENT"
            doc["fail_code"] = _DECLINES[outcome.code][0]
            return json_reply(200, doc)
        return json_reply(200, _payment(outcome))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_found_reply()
        if outcome.code.startswith("declined."):
            return json_reply(400, {"code": _NOT_CANCELLABLE, "msg": "payment is not cancellable",
                                    "extras": {"fail_code": _DECLINES[outcome.code][0],
                                               "tid": outcome.provider_ref}})
        doc = _payment(outcome)
        doc["canceled_amount"] = {"total": outcome.amount, "tax_free": 0}
        return json_reply(200, doc)

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"code": -2, "msg": f"invalid request: {reason}"})

    def server_error(self) -> HttpReply:
        return json_reply(500, {"code": -9798, "msg": "service temporarily unavailable"})

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"code": -9429, "msg": "too many requests"})


def _headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": "SECRET_KEY DEV-paystab-sim"}


def _payment(outcome: SimOutcome) -> dict[str, Any]:
    return {"aid": f"A{outcome.provider_ref[1:]}", "tid": outcome.provider_ref,
            "cid": "TC0ONETIME", "partner_order_id": outcome.payment_id,
            "partner_request_id": outcome.idempotency_key,
            "status": _STATUS.get(outcome.code, "FAIL_PAYMENT"),
            "amount": {"total": outcome.amount, "tax_free": 0},
            "approved_at": "2025-01-01T09:00:00"}


def _payment_answer(doc: dict[str, Any]) -> ProviderAnswer:
    status = doc["status"]
    ref = doc["tid"]
    if status == "FAIL_PAYMENT":
        return ProviderAnswer(_BY_CODE.get(int(doc["fail_code"]), UNKNOWN), ref, status)
    return ProviderAnswer(_BY_STATUS.get(status, UNKNOWN), ref, status)


def _failure(doc: dict[str, Any]) -> ProviderAnswer:
    code = int(doc["code"])
    if code == _NOT_FOUND:
        return ProviderAnswer(LOOKUP_NOT_FOUND, None, f"{code} {doc.get('msg')}")
    extras = doc.get("extras") or {}
    return ProviderAnswer(_BY_CODE.get(code, UNKNOWN), extras.get("tid"), f"{code} {doc.get('msg')}")


def _failure_reply(outcome: SimOutcome) -> HttpReply:
    code, msg, method_code = _DECLINES[outcome.code]
    return json_reply(400, {"code": code, "msg": msg, "extras": {
        "method_result_code": method_code, "method_result_message": msg,
        "tid": outcome.provider_ref}})


def _not_found_reply() -> HttpReply:
    return json_reply(400, {"code": _NOT_FOUND, "msg": "no payment for this partner_request_id"})
