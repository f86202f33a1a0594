"""delta: an Asian cross-border acquirer (Alipay+/Antom-like) that takes JCB.

JSON with signed-request style headers (``Client-Id``, ``Request-Time``, ``Signature``).
The idempotency key is the ``paymentRequestId`` field, the payment id
``order.referenceOrderId``; amounts are **strings** (``{"currency": "JPY", "value":
"1999"}``) and payment method types are upper case (``CARD``, ``PAYPAY``, ``KONBINI``).
Every answer carries ``resultInfo: {resultStatus: S|F|U, resultCode, resultMessage}``:
declines are HTTP 200 with status ``F``; a payment still in process is ``U`` /
``PAYMENT_IN_PROCESS``; a server error is HTTP 500 with ``F`` / ``SYSTEM_ERROR``.
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

_API = "/ams/api/v1/payments"
_DECLINES = {
    "declined.insufficient_funds": "USER_BALANCE_NOT_ENOUGH",
    "declined.do_not_honor": "DO_NOT_HONOR",
    "declined.expired_card": "CARD_EXPIRED",
    "declined.fraud": "RISK_REJECT",
    "declined.invalid_data": "INVALID_CARD_NUMBER",
    "declined.limit_exceeded": "USER_AMOUNT_EXCEED_LIMIT",
    "declined.not_supported": "PAYMENT_METHOD_NOT_SUPPORTED",
    "declined.issuer_unavailable": "ISSUER_SYSTEM_UNAVAILABLE",
}
_BY_RESULT = invert(_DECLINES)
_BY_RESULT["PARAM_ILLEGAL"] = "declined.invalid_data"
_BY_RESULT["REPEAT_REQ_INCONSISTENT"] = "declined.invalid_data"
_TYPES = {"card": "CARD", "konbini": "KONBINI", "bank_transfer": "BANK_TRANSFER"}
_METHODS = invert(_TYPES)
_PAYMENT_STATUS = {"approved": "SUCCESS", "pending": "PROCESSING", VOIDED: "CANCELLED",
                   REFUNDED: "REFUNDED"}
_BY_PAYMENT_STATUS = invert(_PAYMENT_STATUS)


def _result(status: str, code: str, message: str) -> dict[str, str]:
    return {"resultStatus": status, "resultCode": code, "resultMessage": message}


_SUCCESS = _result("S", "SUCCESS", "success.")


class DeltaDialect(DialectBase):
    name = "delta"
    charge_statuses = frozenset({200, 400})
    status_statuses = frozenset({200})
    void_statuses = frozenset({200})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        amount = {"currency": request.currency, "value": str(request.amount)}
        method: dict[str, Any] = {"paymentMethodType": _TYPES.get(
            request.method, (request.wallet_brand or "WALLET").upper())}
        if request.card is not None:
            c = request.card
            method["paymentMethodMetaData"] = {
                "cardNo": c.number, "expiryMonth": f"{c.exp_month:02d}",
                "expiryYear": f"{c.exp_year % 100:02d}", "cvv": c.cvc}
        order: dict[str, Any] = {"referenceOrderId": request.payment_id, "orderAmount": amount,
                                 "orderDescription": "paystab order"}
        if request.customer_id:
            order["buyer"] = {"referenceBuyerId": request.customer_id}
        doc = {
            "productCode": "CASHIER_PAYMENT", "paymentRequestId": request.idempotency_key,
            "order": order, "paymentAmount": amount, "paymentMethod": method,
            "env": {"terminalType": "WEB"}, "merchantRegion": request.country,
        }
        return HttpCall("POST", f"{_API}/pay", _headers(), dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        path = f"{_API}/inquiryPayment?paymentRequestId={quote_key(idempotency_key)}"
        return HttpCall("GET", path, _headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        path = f"{_API}/cancel?paymentRequestId={quote_key(idempotency_key)}"
        return HttpCall("POST", path, _headers(), b"{}")

    def refund_call(self, idempotency_key: str) -> HttpCall:
        path = f"{_API}/refund?paymentRequestId={quote_key(idempotency_key)}"
        return HttpCall("POST", path, _headers(), b"{}")

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        info = doc["resultInfo"]
        state, code = info["resultStatus"], info["resultCode"]
        ref = doc.get("paymentId")
        if state == "S":
            return ProviderAnswer("approved", ref, code)
        if state == "U":
            unified = "pending" if code == "PAYMENT_IN_PROCESS" else UNKNOWN
            return ProviderAnswer(unified, ref, code)
        if state == "F":
            return ProviderAnswer(_BY_RESULT.get(code, UNKNOWN), ref, code)
        return ProviderAnswer(UNKNOWN, ref, f"{state} {code}")

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        info = doc["resultInfo"]
        if info["resultStatus"] == "F" and info["resultCode"] == "ORDER_NOT_EXIST":
            return ProviderAnswer(LOOKUP_NOT_FOUND, None, "ORDER_NOT_EXIST")
        if info["resultStatus"] != "S":
            return self.charge_answer(status, doc)
        state = doc["paymentStatus"]
        ref = doc["paymentId"]
        if state == "FAIL":
            code = doc["paymentResultInfo"]["resultCode"]
            return ProviderAnswer(_BY_RESULT.get(code, UNKNOWN), ref, code)
        return ProviderAnswer(_BY_PAYMENT_STATUS.get(state, UNKNOWN), ref, state)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        info = doc["resultInfo"]
        code = info["resultCode"]
        if info["resultStatus"] == "S":
            unified = REFUNDED if "refundId" in doc else VOIDED
            return ProviderAnswer(unified, doc.get("paymentId"), code)
        if code == "ORDER_NOT_EXIST":
            return ProviderAnswer(LOOKUP_NOT_FOUND, None, code)
        if code == "ORDER_STATUS_INVALID":  # the payment failed: nothing to cancel
            original = doc["paymentResultInfo"]["resultCode"]
            return ProviderAnswer(_BY_RESULT.get(original, UNKNOWN), doc.get("paymentId"), code)
        return self.charge_answer(status, doc)

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, query = split_target(path)
        if seg[:4] != ["ams", "api", "v1", "payments"] or len(seg) != 5:
            return None
        op = {("POST", "pay"): "charge", ("GET", "inquiryPayment"): "status",
              ("POST", "cancel"): "void", ("POST", "refund"): "refund"}.get((method, seg[4]))
        if op is None or op == "charge":
            return (op, None) if op else None
        key = query.get("paymentRequestId")
        return (op, key) if key else None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        if not headers.get("client-id"):
            raise ValueError("Client-Id header is required")
        doc = require_json(body)
        order, amount, pm = doc.get("order"), doc.get("paymentAmount"), doc.get("paymentMethod")
        if not (isinstance(order, dict) and isinstance(amount, dict) and isinstance(pm, dict)):
            raise ValueError("order, paymentAmount and paymentMethod are required")
        kind = as_str(pm.get("paymentMethodType"), "paymentMethodType")
        method = _METHODS.get(kind, "wallet")
        card = None
        if method == "card":
            meta = pm.get("paymentMethodMetaData")
            if not isinstance(meta, dict):
                raise ValueError("paymentMethodMetaData is required for CARD")
            card = Card(str(meta.get("cardNo", "")), as_int(meta.get("expiryMonth"), "expiryMonth"),
                        2000 + as_int(meta.get("expiryYear"), "expiryYear"),
                        str(meta.get("cvv", "")))
        buyer = order.get("buyer")
        return ChargeRequest(
            idempotency_key=as_str(doc.get("paymentRequestId"), "paymentRequestId"),
            payment_id=as_str(order.get("referenceOrderId"), "order.referenceOrderId"),
            amount=as_int(amount.get("value"), "paymentAmount.value"),
            currency=as_str(amount.get("currency"), "paymentAmount.currency"),
            method=method,
            country=str(doc.get("merchantRegion", "")),
            card=card,
            wallet_brand=kind.lower() if method == "wallet" else None,
            customer_id=buyer.get("referenceBuyerId") if isinstance(buyer, dict) else None,
        )

    def provider_ref(self, serial: int) -> str:
        return f"2025{scramble(serial):024d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        doc = _payment(outcome)
        code = outcome.code
        if code == "approved":
            doc["resultInfo"] = _SUCCESS
            doc["paymentTime"] = "2025-01-01T00:00:00+09:00"
        elif code == "pending":
            doc["resultInfo"] = _result("U", "PAYMENT_IN_PROCESS", "payment in process")
            doc["paymentCode"] = outcome.provider_ref[-11:]
        else:
            doc["resultInfo"] = _result("F", _DECLINES[code], "payment failed")
        return json_reply(200, doc)

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_exist()
        doc = _payment(outcome)
        doc["resultInfo"] = _SUCCESS
        if outcome.code.startswith("declined."):
            doc["paymentStatus"] = "FAIL"
            doc["paymentResultInfo"] = _result("F", _DECLINES[outcome.code], "payment failed")
        else:
            doc["paymentStatus"] = _PAYMENT_STATUS[outcome.code]
        return json_reply(200, doc)

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_exist()
        doc: dict[str, Any] = {"paymentId": outcome.provider_ref,
                               "paymentRequestId": outcome.idempotency_key}
        if outcome.code.startswith("declined."):
            doc["resultInfo"] = _result("F", "ORDER_STATUS_INVALID", "order status invalid")
            doc["paymentResultInfo"] = _result("F", _DECLINES[outcome.code], "payment failed")
        elif outcome.code == REFUNDED:
            doc.update(resultInfo=_SUCCESS, refundId=f"R{outcome.provider_ref}",
                       refundAmount={"currency": outcome.currency, "value": str(outcome.amount)})
        else:
            doc.update(resultInfo=_SUCCESS, cancelTime="2025-01-01T00:00:00+09:00")
        return json_reply(200, doc)

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"resultInfo": _result("F", "PARAM_ILLEGAL", reason)})

    def server_error(self) -> HttpReply:
        return json_reply(500, {"resultInfo": _result("F", "SYSTEM_ERROR", "System error.")})

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"resultInfo": _result("U", "REQUEST_TRAFFIC_EXCEED_LIMIT",
                                                      "traffic exceeds the limit")})


def _headers() -> dict[str, str]:
    return {"Content-Type": "application/json; charset=UTF-8", "Client-Id": "PAYSTAB_JP_01",
            "Request-Time": "2025-01-01T00:00:00+09:00",
            "Signature": "algorithm=RSA256,keyVersion=1,signature=simulated"}


def _payment(outcome: SimOutcome) -> dict[str, Any]:
    return {"paymentId": outcome.provider_ref, "paymentRequestId": outcome.idempotency_key,
            "paymentAmount": {"currency": outcome.currency, "value": str(outcome.amount)},
            "referenceOrderId": outcome.payment_id}


def _not_exist() -> HttpReply:
    return json_reply(200, {"resultInfo": _result("F", "ORDER_NOT_EXIST", "order not exist")})
