"""konbini: a Japanese convenience-store payment provider (Komoju/GMO-like).

The shop creates a payment (``POST /api/v1/konbini/payments``, JSON, the payment id as
``external_order_num``, the idempotency key in the ``X-Konbini-Idempotency-Key`` header);
for konbini and bank transfers the answer is **201 with status "pending"** and a payment
slip (store, receipt number, confirmation code, deadline): the customer pays at the counter
later and the payment becomes ``captured``. Cards complete at once (200 ``captured``).
Failures are ``{"error": {"code", "message", "param"}}`` with 422 for business declines
and 400 for bad requests; an outage is the web server's HTML 500 page.
"""

from __future__ import annotations

import zlib
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

_API = "/api/v1/konbini/payments"
_DECLINES = {
    "declined.insufficient_funds": "insufficient_funds",
    "declined.do_not_honor": "card_declined",
    "declined.expired_card": "card_expired",
    "declined.fraud": "fraudulent",
    "declined.invalid_data": "invalid_payment_details",
    "declined.limit_exceeded": "amount_exceeds_store_limit",
    "declined.not_supported": "unsupported_payment_type",
    "declined.issuer_unavailable": "store_network_maintenance",
}
_BY_ERROR = invert(_DECLINES)
_BY_ERROR["bad_request"] = "declined.invalid_data"
_STATUS = {"approved": "captured", "pending": "pending", VOIDED: "cancelled",
           REFUNDED: "refunded"}
_BY_STATUS = invert(_STATUS)
_STORES = ("lawson", "family-mart", "seven-eleven", "ministop", "daily-yamazaki")
_DETAIL_TYPES = {"card": "credit_card"}
_OUTAGE_HTML = (b"<!DOCTYPE html><html><head><title>We're sorry, but something went wrong"
                b"</title></head><body><h1>We're sorry, but something went wrong.</h1>"
                b"</body></html>\n")


class KonbiniDialect(DialectBase):
    name = "konbini"
    charge_statuses = frozenset({200, 201, 400, 422})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({200, 404})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        details: dict[str, Any] = {"type": _DETAIL_TYPES.get(request.method, request.method)}
        if request.method == "konbini":
            store = _STORES[zlib.crc32(request.payment_id.encode()) % len(_STORES)]
            details.update(store=store, email="customer@example.jp")
        if request.wallet_brand:
            details["brand"] = request.wallet_brand
        if request.card is not None:
            c = request.card
            details.update(number=c.number, month=c.exp_month, year=c.exp_year,
                           verification_value=c.cvc)
        doc = {"amount": request.amount, "currency": request.currency,
               "external_order_num": request.payment_id, "payment_details": details,
               "customer": request.customer_id, "country": request.country, "capture": True}
        return HttpCall("POST", _API, _headers(request.idempotency_key), dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_API}/by-idempotency-key/{quote_key(idempotency_key)}",
                        _headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return HttpCall("POST", f"{_API}/by-idempotency-key/{quote_key(idempotency_key)}/cancel",
                        _headers(), b"{}")

    def refund_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("POST", f"{_API}/by-idempotency-key/{quote_key(idempotency_key)}/refund",
                        _headers(), b"{}")

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status in (400, 422):
            code = doc["error"]["code"]
            return ProviderAnswer(_BY_ERROR.get(code, UNKNOWN), doc["error"].get("payment"), code)
        answer = _payment_answer(doc)
        if status == 201 and answer.code != "pending":
            return ProviderAnswer(UNKNOWN, answer.provider_ref, f"201 with {answer.detail}")
        return answer

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            code = doc["error"]["code"]
            return ProviderAnswer(LOOKUP_NOT_FOUND if code == "not_found" else UNKNOWN, None, code)
        return _payment_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        return self.status_answer(status, doc)

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, _ = split_target(path)
        if seg[:4] != ["api", "v1", "konbini", "payments"]:
            return None
        if len(seg) == 4:
            return ("charge", None) if method == "POST" else None
        if seg[4] != "by-idempotency-key" or len(seg) not in (6, 7):
            return None
        if len(seg) == 6:
            return ("status", seg[5]) if method == "GET" else None
        op = {"cancel": "void", "refund": "refund"}.get(seg[6])
        return (op, seg[5]) if op and method == "POST" else None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        key = headers.get("x-konbini-idempotency-key", "")
        if not key:
            raise ValueError("X-Konbini-Idempotency-Key header is required")
        doc = require_json(body)
        details = doc.get("payment_details")
        if not isinstance(details, dict):
            raise ValueError("payment_details is required")
        kind = as_str(details.get("type"), "payment_details.type")
        card = None
        if kind == "credit_card":
            card = Card(str(details.get("number", "")), as_int(details.get("month"), "month"),
                        as_int(details.get("year"), "year"),
                        str(details.get("verification_value", "")))
        customer = doc.get("customer")
        return ChargeRequest(
            idempotency_key=key,
            payment_id=as_str(doc.get("external_order_num"), "external_order_num"),
            amount=as_int(doc.get("amount"), "amount"),
            currency=as_str(doc.get("currency"), "currency"),
            method={"credit_card": "card"}.get(kind, kind),
            country=str(doc.get("country") or ""),
            card=card,
            wallet_brand=details.get("brand"),
            customer_id=str(customer) if customer else None,
        )

    def provider_ref(self, serial: int) -> str:
        return _base36(scramble(serial)).rjust(13, "0") + "kp"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code.startswith("declined."):
            return json_reply(422, {"error": {"code": _DECLINES[outcome.code],
                                              "message": "payment could not be created",
                                              "param": None, "payment": outcome.provider_ref}})
        return json_reply(201 if outcome.code == "pending" else 200, _payment(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return json_reply(404, {"error": {"code": "not_found", "param": None,
                                              "message": "no payment for this idempotency key"}})
        return json_reply(200, _payment(outcome))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        return self.render_status(outcome)

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"error": {"code": "bad_request", "message": reason,
                                          "param": None}})

    def server_error(self) -> HttpReply:
        return HttpReply(500, "text/html; charset=utf-8", _OUTAGE_HTML)

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"error": {"code": "rate_limited", "param": None,
                                          "message": "Too many requests, slow down"}})


def _headers(key: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Authorization": "Basic c2tfc2ltdWxhdGVkOg=="}
    if key is not None:
        headers["X-Konbini-Idempotency-Key"] = key
    return headers


def _payment(outcome: SimOutcome) -> dict[str, Any]:
    code = outcome.code
    doc: dict[str, Any] = {
        "id": outcome.provider_ref, "resource": "payment", "amount": outcome.amount,
        "currency": outcome.currency, "external_order_num": outcome.payment_id,
        "status": _STATUS.get(code, "failed"),
    }
    if code.startswith("declined."):
        doc["failure_reason"] = _DECLINES[code]
    if outcome.method in ("konbini", "bank_transfer", ""):
        digest = zlib.crc32(outcome.provider_ref.encode())
        store = _STORES[zlib.crc32(outcome.payment_id.encode()) % len(_STORES)]  # as requested
        doc["payment_details"] = {
            "type": outcome.method or "konbini", "store": store,
            "receipt": f"{digest % 10**11:011d}", "confirmation_code": f"{digest % 10**4:04d}",
            "instructions_url": f"https://konbini.example.jp/slips/{outcome.provider_ref}",
        }
        doc["payment_deadline"] = "2025-01-08T23:59:59+09:00"
    return doc


def _payment_answer(doc: dict[str, Any]) -> ProviderAnswer:
    status = doc["status"]
    ref = doc["id"]
    if status == "failed":
        reason = doc["failure_reason"]
        return ProviderAnswer(_BY_ERROR.get(reason, UNKNOWN), ref, reason)
    detail = status
    if status == "pending":
        slip = doc.get("payment_details") or {}
        detail = f"pending, receipt {slip.get('receipt', '-')}"
    return ProviderAnswer(_BY_STATUS.get(status, UNKNOWN), ref, detail)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
