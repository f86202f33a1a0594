"""paypay: PayPay's Open Payment API (OPA), as the ``paypayopa`` SDK calls it.

A *routed* dialect (``dialects/routes.py``; handlers in ``paypay_routes.py``): create a
payment (``POST /v2/payments``, completes at once) or a dynamic QR code (``POST
/v2/codes``: the payment stays ``CREATED`` until the customer pays, after the provider's
``async_completion_s``), get details (``GET /v2/payments/{merchantPaymentId}``, ``GET
/v2/codes/payments/{merchantPaymentId}``), cancel (``DELETE
/v2/payments/{merchantPaymentId}``), delete a QR code (``DELETE /v2/codes/{codeId}``),
refund (``POST /v2/refunds`` by PayPay's ``paymentId``) and get a refund (``GET
/v2/refunds/{merchantRefundId}``). Every request carries the ``hmac OPA-Auth`` signature
(``paypay_auth.py``), verified: a bad one is 401 ``UNAUTHORIZED``. The merchant's
``merchantPaymentId`` is the idempotency key. Every answer is ``{"resultInfo": {"code",
"message", "codeId"}, "data": …}``: ``SUCCESS`` (201 on create), ``REQUEST_ACCEPTED`` (202
on cancel); declines are 400 with PayPay's code (``NO_SUFFICIENT_FUND``…), unknown ids 404
``DYNAMIC_QR_PAYMENT_NOT_FOUND`` / ``RESOURCE_NOT_FOUND``, and the common codes 400
``INVALID_REQUEST_PARAMS``, 429 ``RATE_LIMIT`` (with ``Retry-After``), 500
``INTERNAL_SERVER_ERROR``, 503 ``MAINTENANCE_MODE`` (an injected ``bad_gateway``: PayPay's
gateway in maintenance). ``metadata.paystabPaymentId`` / ``metadata.country`` /
``metadata.walletBrand`` are read when present (the reference gateway sends them), never
required. PayPay's sandbox has no way to ask for a failure ("create a stub at the
merchant's end"); here ``metadata.paystabTestCode`` = a decline code (``TEST_CODES``) makes
the payment fail with it.

Outside PayPay's API, for the reference gateway's refund by idempotency key: ``POST
/v2/payments/{merchantPaymentId}/refunds`` (PayPay itself refunds by ``paymentId`` only).
"""

from __future__ import annotations

import time
from typing import Any

from paystab.stack.dialects._support import (
    UNKNOWN,
    DialectBase,
    as_int,
    as_str,
    dumps,
    invert,
    quote_key,
    require_json,
    scramble,
)
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    REFUNDED,
    VOIDED,
    ChargeRequest,
    HttpCall,
    HttpReply,
    InboundCall,
    InjectedError,
    ProviderAnswer,
    SimOutcome,
)
from paystab.stack.dialects.forced import with_forced_code
from paystab.stack.dialects.paypay_auth import TEST_API_SECRET, authorization, verify

JSON_UTF8 = "application/json;charset=UTF-8"
_API = "/v2/payments"
# unified decline → (HTTP status, resultInfo.code, codeId)
DECLINES = {
    "declined.insufficient_funds": (400, "NO_SUFFICIENT_FUND", "08100016"),
    "declined.do_not_honor": (400, "UNACCEPTABLE_OP", "08100020"),
    "declined.expired_card": (401, "EXPIRED_USER_AUTHORIZATION_ID", "08100031"),
    "declined.fraud": (400, "SUSPECTED_DUPLICATE_ORDER", "08100042"),
    "declined.invalid_data": (400, "INVALID_REQUEST_PARAMS", "08100006"),
    "declined.limit_exceeded": (400, "USER_DAILY_LIMIT_FOR_MERCHANT_EXCEEDED", "08100052"),
    "declined.not_supported": (400, "NO_VALID_PAYMENT_METHOD", "08100064"),
    "declined.issuer_unavailable": (400, "LINKED_BANK_MAINTENANCE", "08100078"),
}
BY_CODE = {code: unified for unified, (_, code, _) in DECLINES.items()} | {
    "INVALID_PARAMS": "declined.invalid_data", "MISSING_REQUEST_PARAMS": "declined.invalid_data",
    "USER_STATE_IS_NOT_ACTIVE": "declined.do_not_honor",
    "INVALID_USER_AUTHORIZATION_ID": "declined.invalid_data",
}
# paystab's test convention (PayPay's sandbox has none): metadata.paystabTestCode = one of
# these codes makes the payment fail with it.
TEST_CODES = tuple(code for _, code, _ in DECLINES.values())
STATUS = {"approved": "COMPLETED", "pending": "CREATED", VOIDED: "CANCELED",
          REFUNDED: "REFUNDED"}
_BY_STATUS = invert(STATUS)


def info(code: str, message: str, code_id: str) -> dict[str, str]:
    return {"code": code, "message": message, "codeId": code_id}


SUCCESS = info("SUCCESS", "Success", "08100001")


def reply(status: int, code: str, message: str, code_id: str, data: Any = None,
          headers: dict[str, str] | None = None) -> HttpReply:
    body = dumps({"resultInfo": info(code, message, code_id), "data": data})
    return HttpReply(status, "application/json", body, headers or {})


def not_found(code: str = "DYNAMIC_QR_PAYMENT_NOT_FOUND") -> HttpReply:
    return reply(404, code, "payment not found", "08100088")


def payment_data(outcome: SimOutcome, accepted_at: int = 0) -> dict[str, Any]:
    code = outcome.code
    data: dict[str, Any] = {
        "paymentId": outcome.provider_ref, "merchantPaymentId": outcome.idempotency_key,
        "amount": {"amount": outcome.amount, "currency": outcome.currency},
        "status": STATUS.get(code, "FAILED"), "requestedAt": accepted_at,
        "acceptedAt": accepted_at, "metadata": {"paystabPaymentId": outcome.payment_id},
    }
    if code not in STATUS:
        data["failureCode"] = DECLINES.get(code, (0, "TRANSACTION_FAILED", ""))[1]
    return data


def parse_create(doc: dict[str, Any]) -> ChargeRequest:
    """A create-payment / create-QR body → the charge; ValueError naming the field."""
    amount = doc.get("amount")
    if not isinstance(amount, dict):
        raise ValueError("amount is required")
    raw_meta = doc.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    key = as_str(doc.get("merchantPaymentId"), "merchantPaymentId")
    if len(key) > 64:
        raise ValueError("merchantPaymentId must be at most 64 characters")
    user = doc.get("userAuthorizationId")
    test_code = meta.get("paystabTestCode")
    forced = None
    if test_code is not None:
        forced = BY_CODE.get(str(test_code))
        if forced is None:
            raise ValueError(f"metadata.paystabTestCode must be one of {', '.join(TEST_CODES)}")
    request = ChargeRequest(
        idempotency_key=key,
        payment_id=str(meta.get("paystabPaymentId") or key),
        amount=as_int(amount.get("amount"), "amount.amount"),
        currency=as_str(amount.get("currency"), "amount.currency"),
        method="wallet",
        country=str(meta.get("country") or "JP"),
        wallet_brand=str(meta.get("walletBrand") or "paypay"),
        customer_id=None if user in (None, "", "anonymous") else str(user),
    )
    return with_forced_code(request, forced)


class PayPayDialect(DialectBase):
    name = "paypay"
    wire_methods = ("wallet",)  # PayPay carries no card, konbini or transfer
    charge_statuses = frozenset({201, 400, 401})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({201, 202, 400, 404})
    api_secret = TEST_API_SECRET  # what the gateway signs with
    default_secret = TEST_API_SECRET  # what a simulator verifies unless configured otherwise

    def __init__(self) -> None:
        from paystab.stack.dialects.paypay_routes import paypay_routes

        self.routes = paypay_routes()

    # -- client side (the reference gateway) -------------------------------------------
    def _call(self, method: str, path: str, doc: dict[str, Any] | None = None) -> HttpCall:
        body = dumps(doc) if doc is not None else b""
        headers = {"Content-Type": JSON_UTF8, "X-ASSUME-MERCHANT": "paystab-jp",
                   "Authorization": authorization(method, path, JSON_UTF8, body,
                                                  secret=self.api_secret)}
        return HttpCall(method, path, headers, body)

    def charge_call(self, request: ChargeRequest) -> HttpCall:
        doc: dict[str, Any] = {
            "merchantPaymentId": request.idempotency_key,
            "userAuthorizationId": request.customer_id or "anonymous",
            "amount": {"amount": request.amount, "currency": request.currency},
            "requestedAt": int(time.time()),
            "orderDescription": "paystab order",
            "metadata": {"paystabPaymentId": request.payment_id, "country": request.country},
        }
        if request.wallet_brand not in (None, "paypay"):  # paystab's own: PayPay has one brand
            doc["metadata"]["walletBrand"] = request.wallet_brand
        return self._call("POST", _API, doc)

    def status_call(self, idempotency_key: str) -> HttpCall:
        return self._call("GET", f"{_API}/{quote_key(idempotency_key)}")

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return self._call("DELETE", f"{_API}/{quote_key(idempotency_key)}")

    def refund_call(self, idempotency_key: str) -> HttpCall:
        return self._call("POST", f"{_API}/{quote_key(idempotency_key)}/refunds",
                          {"reason": "customer request"})

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        code = doc["resultInfo"]["code"]
        if code != "SUCCESS":
            data = doc.get("data") or {}
            return ProviderAnswer(BY_CODE.get(code, UNKNOWN), data.get("paymentId"), code)
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
        if status == 400 and code == "ORDER_NOT_CANCELABLE":
            failure = doc["data"]["failureCode"]
            return ProviderAnswer(BY_CODE.get(failure, UNKNOWN), doc["data"].get("paymentId"),
                                  f"{code} ({failure})")
        return self.charge_answer(status, doc)

    # -- server side -------------------------------------------------------------------
    def authenticate(self, call: InboundCall) -> HttpReply | None:
        problem = verify(call.headers.get("authorization", ""), call.method, call.path,
                         call.headers.get("content-type", ""), call.body,
                         call.secret if call.secret is not None else TEST_API_SECRET)
        if problem is None:
            return None
        return reply(401, "UNAUTHORIZED", f"No valid api key and secret provided: {problem}",
                     "08100016")

    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        """The key-addressed view of the routes (the simulator serves ``routes``)."""
        found = self.routes.match(method, path)
        if found is None:
            return None
        route, params, _ = found
        return route.operation, params.get("key")

    def new_state(self, host: Any) -> Any:
        from paystab.stack.dialects.paypay_routes import PayPayState

        return PayPayState(host)

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        return parse_create(require_json(body))

    def provider_ref(self, serial: int) -> str:
        return f"{scramble(serial) % 10**19:019d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code.startswith("declined."):
            status, code, code_id = DECLINES[outcome.code]
            return reply(status, code, "payment declined", code_id,
                         {"paymentId": outcome.provider_ref})
        return reply(201, "SUCCESS", "Success", "08100001", payment_data(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return not_found()
        return reply(200, "SUCCESS", "Success", "08100001", payment_data(outcome))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return not_found()
        if outcome.code.startswith("declined."):
            return reply(400, "ORDER_NOT_CANCELABLE", "payment is not cancelable", "08100099",
                         {"paymentId": outcome.provider_ref,
                          "failureCode": DECLINES[outcome.code][1]})
        if outcome.code == REFUNDED:
            return reply(201, "SUCCESS", "Success", "08100001", payment_data(outcome))
        return reply(202, "REQUEST_ACCEPTED", "Request accepted", "08100001")

    def render_bad_request(self, reason: str) -> HttpReply:
        return reply(400, "INVALID_REQUEST_PARAMS", reason, "08100006")

    def render_no_route(self, method: str, path: str) -> HttpReply:
        return reply(404, "RESOURCE_NOT_FOUND", "no such resource", "08100088")

    def render_injected_error(self, kind: InjectedError) -> HttpReply:
        if kind == "bad_gateway":  # PayPay's gateway while the service is in maintenance
            return reply(503, "MAINTENANCE_MODE", "Service under maintenance", "08100998")
        return super().render_injected_error(kind)

    def server_error(self) -> HttpReply:
        return reply(500, "INTERNAL_SERVER_ERROR", "Something went wrong", "08100026")

    def rate_limited(self) -> HttpReply:
        return reply(429, "RATE_LIMIT", "Too many requests", "08100023", None,
                     {"Retry-After": "1"})


def _data_answer(data: dict[str, Any]) -> ProviderAnswer:
    status = data["status"]
    ref = data["paymentId"]
    if status == "FAILED":
        return ProviderAnswer(BY_CODE.get(data["failureCode"], UNKNOWN), ref, data["failureCode"])
    return ProviderAnswer(_BY_STATUS.get(status, UNKNOWN), ref, status)


def _not_found(doc: dict[str, Any]) -> ProviderAnswer:
    code = doc["resultInfo"]["code"]
    found = code in ("DYNAMIC_QR_PAYMENT_NOT_FOUND", "RESOURCE_NOT_FOUND", "PAYMENT_NOT_FOUND")
    return ProviderAnswer(LOOKUP_NOT_FOUND if found else UNKNOWN, None, code)
