"""furikomi: a Japanese bank-transfer provider that issues virtual accounts.

Modelled on Japanese corporate banking APIs: an ``X-Api-Key`` header, camelCase fields,
amounts as strings (``"transferAmount": "1999"``), the idempotency key as ``requestId``
and the payment id as ``merchantRef``. Issuing a virtual account answers HTTP 200 with
``resultCode "0000"`` (正常終了), the account (bank code, branch, number, holder in
half-width kana) and ``transferStatus: "WAITING"``; once the customer's transfer arrives
the status becomes ``RECEIVED``. Business errors are HTTP 200 with a four-character
``resultCode`` (``E301`` insufficient funds … ``E900`` bank in maintenance); a system error
is HTTP 503 ``"9999"``. Closing an unused account is the void (``CLOSED``), 組戻し (return
of a received transfer) the refund (``RETURNED``).
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

_API = "/furikomi/api/v1/va"
_OK = "0000"
_NOT_FOUND = "E404"
_DECLINES = {
    "declined.invalid_data": "E101",
    "declined.insufficient_funds": "E301",
    "declined.do_not_honor": "E302",
    "declined.expired_card": "E303",
    "declined.fraud": "E304",
    "declined.limit_exceeded": "E305",
    "declined.not_supported": "E401",
    "declined.issuer_unavailable": "E900",
}
_BY_RESULT = invert(_DECLINES)
_BY_RESULT["E100"] = "declined.invalid_data"
_STATUS = {"approved": "RECEIVED", "pending": "WAITING", VOIDED: "CLOSED", REFUNDED: "RETURNED"}
_BY_STATUS = invert(_STATUS)
_KINDS = {"bank_transfer": "VIRTUAL_ACCOUNT", "konbini": "KONBINI", "card": "CARD",
          "wallet": "WALLET"}
_METHODS = invert(_KINDS)


class FurikomiDialect(DialectBase):
    name = "furikomi"
    charge_statuses = frozenset({200, 400})
    status_statuses = frozenset({200})
    void_statuses = frozenset({200})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        instrument: dict[str, Any] = {"kind": _KINDS.get(request.method, request.method.upper())}
        if request.wallet_brand:
            instrument["brand"] = request.wallet_brand
        if request.card is not None:
            c = request.card
            instrument.update(cardNo=c.number, expiry=f"{c.exp_year:04d}{c.exp_month:02d}",
                              securityCode=c.cvc)
        doc = {"requestId": request.idempotency_key, "merchantRef": request.payment_id,
               "transferAmount": str(request.amount), "currencyCode": request.currency,
               "payerRef": request.customer_id or "", "countryCode": request.country,
               "instrument": instrument, "expireDays": "7"}
        return HttpCall("POST", f"{_API}/issue", _headers(), dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_API}/inquiry?requestId={quote_key(idempotency_key)}",
                        _headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return HttpCall("POST", f"{_API}/close?requestId={quote_key(idempotency_key)}",
                        _headers(), b"{}")

    def refund_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("POST", f"{_API}/return?requestId={quote_key(idempotency_key)}",
                        _headers(), b"{}")

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        result = doc["resultCode"]
        ref = doc.get("vaTransactionId")
        if result != _OK:
            return ProviderAnswer(_BY_RESULT.get(result, UNKNOWN), ref, result)
        state = doc["transferStatus"]
        if state == "REJECTED":
            reject = doc["rejectCode"]
            return ProviderAnswer(_BY_RESULT.get(reject, UNKNOWN), ref, f"REJECTED {reject}")
        return ProviderAnswer(_BY_STATUS.get(state, UNKNOWN), ref, state)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if doc["resultCode"] == _NOT_FOUND:
            return ProviderAnswer(LOOKUP_NOT_FOUND, None, _NOT_FOUND)
        return self.charge_answer(status, doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        return self.status_answer(status, doc)

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, query = split_target(path)
        if seg[:4] != ["furikomi", "api", "v1", "va"] or len(seg) != 5:
            return None
        op = {("POST", "issue"): "charge", ("GET", "inquiry"): "status",
              ("POST", "close"): "void", ("POST", "return"): "refund"}.get((method, seg[4]))
        if op == "charge":
            return ("charge", None)
        key = query.get("requestId")
        return (op, key) if op and key else None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        if not headers.get("x-api-key"):
            raise ValueError("X-Api-Key header is required")
        doc = require_json(body)
        instrument = doc.get("instrument")
        if not isinstance(instrument, dict):
            raise ValueError("instrument is required")
        kind = as_str(instrument.get("kind"), "instrument.kind")
        card = None
        if kind == "CARD":
            expiry = as_str(instrument.get("expiry"), "instrument.expiry")
            if len(expiry) != 6 or not expiry.isdigit():
                raise ValueError("instrument.expiry must be YYYYMM")
            card = Card(str(instrument.get("cardNo", "")), int(expiry[4:]), int(expiry[:4]),
                        str(instrument.get("securityCode", "")))
        payer = doc.get("payerRef")
        return ChargeRequest(
            idempotency_key=as_str(doc.get("requestId"), "requestId"),
            payment_id=as_str(doc.get("merchantRef"), "merchantRef"),
            amount=as_int(doc.get("transferAmount"), "transferAmount"),
            currency=as_str(doc.get("currencyCode"), "currencyCode"),
            method=_METHODS.get(kind, kind.lower()),
            country=str(doc.get("countryCode") or ""),
            card=card,
            wallet_brand=instrument.get("brand"),
            customer_id=str(payer) if payer else None,
        )

    def provider_ref(self, serial: int) -> str:
        return f"VA{scramble(serial) % 10**14:014d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code.startswith("declined."):
            return json_reply(200, {"resultCode": _DECLINES[outcome.code],
                                    "resultMessage": "取引不可", "requestId":
                                    outcome.idempotency_key, "vaTransactionId":
                                    outcome.provider_ref})
        return json_reply(200, _transfer(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return json_reply(200, {"resultCode": _NOT_FOUND, "resultMessage": "該当データなし"})
        return json_reply(200, _transfer(outcome))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        return self.render_status(outcome)

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"resultCode": "E100", "resultMessage": f"項目エラー: {reason}"})

    def server_error(self) -> HttpReply:
        return json_reply(503, {"resultCode": "9999", "resultMessage": "システムエラー"})

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"resultCode": "E429", "resultMessage": "リクエスト過多"})


def _headers() -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8", "X-Api-Key": "sim-furikomi-key"}


def _transfer(outcome: SimOutcome) -> dict[str, Any]:
    code = outcome.code
    declined = code.startswith("declined.")
    digest = zlib.crc32(outcome.provider_ref.encode())
    digits = f"{digest % 10**7:07d}"
    doc: dict[str, Any] = {
        "resultCode": _OK, "resultMessage": "正常終了", "vaTransactionId": outcome.provider_ref,
        "requestId": outcome.idempotency_key, "merchantRef": outcome.payment_id,
        "transferAmount": str(outcome.amount), "currencyCode": outcome.currency,
        "transferStatus": "REJECTED" if declined else _STATUS[code],
        "virtualAccount": {"bankCode": "0310", "bankName": "ｼﾐﾕﾚｰｼｮﾝｷﾞﾝｺｳ",
                           "branchCode": f"{digest % 900 + 100:03d}",
                           "accountType": "1", "accountNumber": digits,
                           "accountHolder": "ﾍﾟｲｽﾀﾌﾞ(ｶ"},
        "expireDate": "20250108",
    }
    if declined:
        doc["rejectCode"] = _DECLINES[code]
    return doc
