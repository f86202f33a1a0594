"""grab: a GrabPay-like Southeast Asian wallet.

JSON with partner HMAC headers (``Authorization: partnerID:signature``, ``Date``). The
idempotency key is ``partnerTxID``, the payment id ``partnerGroupTxID``. A charge answers
**HTTP 200 whatever the outcome**: ``{"txID", "status": "success"|"pending"|"failed",
"reason", "description"}`` with snake_case reasons (``insufficient_balance``,
``risk_rejected``…); voids and refunds answer the same shape with ``cancelled`` /
``refunded``. Protocol errors use ``{"code": <4-digit number>, "arg", "message",
"devMessage"}``: 400 ``4000``, 404 ``4040``, 429 ``4290``, 500 ``5000``.
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

_API = "/grabpay/partner/v2/charge"
_REASONS = {
    "declined.insufficient_funds": "insufficient_balance",
    "declined.do_not_honor": "payment_declined",
    "declined.expired_card": "instrument_expired",
    "declined.fraud": "risk_rejected",
    "declined.invalid_data": "invalid_instrument",
    "declined.limit_exceeded": "over_wallet_limit",
    "declined.not_supported": "unsupported_instrument",
    "declined.issuer_unavailable": "funding_bank_unavailable",
}
_BY_REASON = invert(_REASONS)
_STATUS = {"approved": "success", "pending": "pending", VOIDED: "cancelled",
           REFUNDED: "refunded"}
_BY_STATUS = invert(_STATUS)


class GrabDialect(DialectBase):
    name = "grab"
    charge_statuses = frozenset({200, 400})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({200, 404})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        instrument: dict[str, Any] = {"type": request.method.upper()}
        if request.wallet_brand:
            instrument["brand"] = request.wallet_brand
        if request.card is not None:
            c = request.card
            instrument.update(cardNumber=c.number, expiryMonth=c.exp_month,
                              expiryYear=c.exp_year, cvv=c.cvc)
        doc = {
            "partnerGroupTxID": request.payment_id, "partnerTxID": request.idempotency_key,
            "amount": request.amount, "currency": request.currency,
            "merchantID": "paystab-sea", "description": "paystab order",
            "metaInfo": {"country": request.country, "customerRef": request.customer_id},
            "paymentInstrument": instrument,
        }
        return HttpCall("POST", f"{_API}/complete", _headers(), dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_API}/{quote_key(idempotency_key)}/status", _headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return HttpCall("POST", f"{_API}/{quote_key(idempotency_key)}/cancel", _headers(),
                        dumps({"origTxID": provider_ref}))

    def refund_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("POST", f"{_API}/{quote_key(idempotency_key)}/refund", _headers(),
                        dumps({"reason": "customer request"}))

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 400:
            return _protocol_error(doc)
        return _tx_answer(doc)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _protocol_error(doc)
        return _tx_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        return self.status_answer(status, doc)

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, _ = split_target(path)
        if seg[:4] != ["grabpay", "partner", "v2", "charge"] or len(seg) < 5:
            return None
        if len(seg) == 5 and seg[4] == "complete" and method == "POST":
            return ("charge", None)
        if len(seg) == 6:
            op = {("GET", "status"): "status", ("POST", "cancel"): "void",
                  ("POST", "refund"): "refund"}.get((method, seg[5]))
            return (op, seg[4]) if op else None
        return None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        if ":" not in headers.get("authorization", ""):
            raise ValueError("Authorization: partnerID:signature is required")
        doc = require_json(body)
        instrument, meta = doc.get("paymentInstrument"), doc.get("metaInfo")
        if not isinstance(instrument, dict) or not isinstance(meta, dict):
            raise ValueError("paymentInstrument and metaInfo are required")
        card = None
        if "cardNumber" in instrument:
            card = Card(str(instrument["cardNumber"]),
                        as_int(instrument.get("expiryMonth"), "expiryMonth"),
                        as_int(instrument.get("expiryYear"), "expiryYear"),
                        str(instrument.get("cvv", "")))
        return ChargeRequest(
            idempotency_key=as_str(doc.get("partnerTxID"), "partnerTxID"),
            payment_id=as_str(doc.get("partnerGroupTxID"), "partnerGroupTxID"),
            amount=as_int(doc.get("amount"), "amount"),
            currency=as_str(doc.get("currency"), "currency"),
            method=as_str(instrument.get("type"), "paymentInstrument.type").lower(),
            country=str(meta.get("country") or ""),
            card=card,
            wallet_brand=instrument.get("brand"),
            customer_id=meta.get("customerRef"),
        )

    def provider_ref(self, serial: int) -> str:
        return f"{scramble(serial):016x}{scramble(serial ^ 0x5A5A):016x}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        return json_reply(200, _tx(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        return _not_found_reply() if outcome is None else json_reply(200, _tx(outcome))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        return self.render_status(outcome)

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"code": 4000, "arg": "body", "message": reason,
                                "devMessage": "request validation failed"})

    def server_error(self) -> HttpReply:
        return json_reply(500, {"code": 5000, "arg": "", "message": "internal server error",
                                "devMessage": "wallet core unavailable"})

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"code": 4290, "arg": "", "message": "rate limit exceeded",
                                "devMessage": "partner quota exhausted"})


def _headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Date": "Wed, 01 Jan 2025 00:00:00 GMT",
            "Authorization": "paystab-sim:c2ltdWxhdGVkLXNpZ25hdHVyZQ==",
            "X-GID-AUX-POP": "simulated"}


def _tx(outcome: SimOutcome) -> dict[str, Any]:
    code = outcome.code
    failed = code.startswith("declined.")
    return {"txID": outcome.provider_ref, "partnerTxID": outcome.idempotency_key,
            "partnerGroupTxID": outcome.payment_id,
            "status": "failed" if failed else _STATUS[code],
            "reason": _REASONS[code] if failed else "",
            "description": "transaction declined" if failed else "",
            "amount": outcome.amount, "currency": outcome.currency}


def _tx_answer(doc: dict[str, Any]) -> ProviderAnswer:
    status = doc["status"]
    ref = doc["txID"]
    if status == "failed":
        reason = doc["reason"]
        return ProviderAnswer(_BY_REASON.get(reason, UNKNOWN), ref, reason)
    return ProviderAnswer(_BY_STATUS.get(status, UNKNOWN), ref, status)


def _protocol_error(doc: dict[str, Any]) -> ProviderAnswer:
    code = int(doc["code"])
    if code == 4040:
        return ProviderAnswer(LOOKUP_NOT_FOUND, None, "4040")
    if code == 4000:
        return ProviderAnswer("declined.invalid_data", None, f"4000 {doc.get('message')}")
    return ProviderAnswer(UNKNOWN, None, str(code))


def _not_found_reply() -> HttpReply:
    return json_reply(404, {"code": 4040, "arg": "partnerTxID", "message": "transaction not found",
                            "devMessage": "no charge for this partnerTxID"})
