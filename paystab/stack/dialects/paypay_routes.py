"""The PayPay OPA endpoints the simulator serves (see ``paypay.py`` for the wire format).

Money moves only through the charge book. A QR code is a charge decided ``pending`` (the
customer has not scanned it yet) that the book completes after ``async_completion_s``; a
declined QR payment is ``FAILED`` at once. Refunds are full refunds (a partial amount is
400 ``INVALID_PARAMS``); refund documents live in memory for the provider's lifetime.

Deterministic failures for tests: ``metadata.paystabFailTimes = "N"`` or ``"N:error"``
(error: server_error, rate_limited, malformed, bad_gateway) makes the first N requests
with that ``merchantPaymentId`` answer the error, and the next one succeed.

Transaction events (PayPay's ``notification_type: "Transaction"`` webhook, which PayPay
does not sign — merchants allow-list its addresses) go to the registered webhook
endpoints when a payment completes, fails, is cancelled or refunded.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from paystab.stack.dialects._support import load_json_object
from paystab.stack.dialects.base import ChargeRequest, HttpReply, SimOutcome
from paystab.stack.dialects.paypay import (
    STATUS,
    not_found,
    parse_create,
    payment_data,
    reply,
)
from paystab.stack.dialects.routes import (
    Route,
    RouteCall,
    RouteError,
    RouteTable,
    parse_fail_first,
)

_MAX_AMOUNT = 10**9


class PayPayState:
    """Per provider: refunds by merchantRefundId, QR code documents, event hooks."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.refunds: dict[str, dict[str, Any]] = {}
        self.qr_keys: set[str] = set()
        listeners = getattr(host.book, "on_change", None)
        if isinstance(listeners, list):
            listeners.append(self._book_changed)

    def add_endpoint(self, url: str, events: list[str], secret: str | None = None
                     ) -> dict[str, Any]:
        """Register a webhook endpoint (PayPay's are configured in its merchant panel and
        not signed; the secret is kept for the ready file)."""
        from paystab.stack.webhooks import WebhookTarget

        secret = secret or secrets.token_hex(16)
        endpoint_id = f"wh-{secrets.token_hex(6)}"
        sender = self.host.webhooks
        assert sender is not None
        sender.add_target(WebhookTarget(endpoint_id, url, secret, frozenset(events)))
        return {"id": endpoint_id, "url": url, "secret": secret, "events": events}

    def notify(self, outcome: SimOutcome) -> None:
        sender = getattr(self.host, "webhooks", None)
        if sender is None or not sender.targets:  # nobody listens: build nothing
            return
        state = STATUS.get(outcome.code, "FAILED")
        now = int(time.time())
        event = {
            "notification_type": "Transaction", "merchant_id": "paystab-jp",
            "store_id": None, "pos_id": None, "order_id": outcome.provider_ref,
            "merchant_order_id": outcome.idempotency_key, "authorized_at": None,
            "expires_at": None, "paid_at": now if state == "COMPLETED" else None,
            "order_amount": outcome.amount, "state": state,
        }
        sender.send("Transaction", f"{outcome.provider_ref}:{state}", json.dumps(event).encode(),
                    _unsigned)

    def _book_changed(self, record: Any) -> None:
        self.notify(record.current_outcome())


def _unsigned(payload: bytes, secret: str, at: float) -> dict[str, str]:
    return {}


def _state(call: RouteCall) -> PayPayState:
    state: PayPayState = call.host.state
    return state


def _doc(call: RouteCall) -> dict[str, Any]:
    doc = load_json_object(call.body) if call.body else None
    if doc is None:
        raise RouteError(reply(400, "INVALID_REQUEST_PARAMS", "body is not a JSON object",
                               "08100006"))
    return doc


def _parse_create(call: RouteCall) -> ChargeRequest:
    doc = _doc(call)
    try:
        charge = parse_create(doc)
    except ValueError as exc:
        raise RouteError(reply(400, "INVALID_REQUEST_PARAMS", str(exc), "08100006")) from None
    if not 1 <= charge.amount <= _MAX_AMOUNT or len(charge.currency) != 3:
        raise RouteError(reply(400, "INVALID_REQUEST_PARAMS", "amount out of range",
                               "08100006"))
    meta = doc.get("metadata")
    magic = meta.get("paystabFailTimes") if isinstance(meta, dict) else None
    if isinstance(magic, str | int) and str(magic):
        try:
            times, kind = parse_fail_first(str(magic))
        except ValueError as exc:
            raise RouteError(reply(400, "INVALID_REQUEST_PARAMS", str(exc),
                                   "08100006")) from None
        call.fail_first = (f"paypay:{charge.idempotency_key}", times, kind)
    return charge


def _dialect(call: RouteCall) -> Any:
    from paystab.stack.dialects.paypay import PayPayDialect

    return getattr(call.host, "dialect", None) or PayPayDialect()


async def _charge(call: RouteCall, qr: bool) -> SimOutcome:
    charge = call.charge
    assert charge is not None
    book = call.host.book
    decide = None
    if qr:
        model = call.host.model

        def decide(request: ChargeRequest) -> str:
            code = model.decide(request)
            return "pending" if code == "approved" else code  # awaiting the scan

    try:
        outcome, replay = await book.charge(charge, call.delay_s, decide=decide)
    except ValueError:
        raise RouteError(reply(400, "DUPLICATE_DYNAMIC_QR_REQUEST" if qr else
                               "INVALID_REQUEST_PARAMS",
                               "merchantPaymentId already used for another payment",
                               "08100006")) from None
    call.delay_s = 0.0
    if not replay and (not qr or outcome.code != "pending"):
        _state(call).notify(outcome)
    return outcome


async def _create_payment(call: RouteCall) -> HttpReply:
    outcome = await _charge(call, qr=False)
    answer: HttpReply = _dialect(call).render_charge(outcome)
    return answer


async def _create_code(call: RouteCall) -> HttpReply:
    outcome = await _charge(call, qr=True)
    _state(call).qr_keys.add(outcome.idempotency_key)
    code_id = f"04-{outcome.provider_ref}"
    data = {
        "codeId": code_id, "url": f"https://qr-stg.sandbox.paypay.ne.jp/{code_id}",
        "deeplink": f"paypay://payment?link_key={code_id}",
        "expiryDate": int(time.time()) + 300, "merchantPaymentId": outcome.idempotency_key,
        "amount": {"amount": outcome.amount, "currency": outcome.currency},
        "codeType": "ORDER_QR", "requestedAt": int(time.time()), "redirectType": "WEB_LINK",
        "isAuthorization": False,
    }
    return reply(201, "SUCCESS", "Success", "08100001", data)


async def _details(call: RouteCall) -> HttpReply:
    await call.wait()
    found = await call.host.book.lookup(call.params["key"])
    if found is None:
        return not_found()
    return reply(200, "SUCCESS", "Success", "08100001", payment_data(found))


async def _cancel(call: RouteCall) -> HttpReply:
    await call.wait()
    key = call.params["key"]
    before = await call.host.book.lookup(key)
    outcome = await call.host.book.void(key)
    if outcome is not None and before is not None and before.code != outcome.code:
        _state(call).notify(outcome)
    answer: HttpReply = _dialect(call).render_void(outcome)
    return answer


async def _delete_code(call: RouteCall) -> HttpReply:
    await call.wait()
    code_id = call.params["code"]
    key = call.host.book.key_of(code_id[3:]) if code_id.startswith("04-") else None
    if key is None:
        return reply(404, "DYNAMIC_QR_NOT_FOUND", "QR code not found", "08100088")
    current = await call.host.book.lookup(key)
    if current is not None and current.code == "pending":
        outcome = await call.host.book.void(key)
        if outcome is not None:
            _state(call).notify(outcome)
        return reply(200, "SUCCESS", "Success", "08100001")
    return reply(400, "DYNAMIC_QR_ALREADY_PAID", "QR code already used", "08100090")


async def _refund_by_key(call: RouteCall) -> HttpReply:
    await call.wait()
    key = call.params["key"]
    before = await call.host.book.lookup(key)
    outcome = await call.host.book.void(key, refund=True)
    if outcome is not None and before is not None and before.code != outcome.code:
        _state(call).notify(outcome)
    answer: HttpReply = _dialect(call).render_void(outcome)
    return answer


async def _refund(call: RouteCall) -> HttpReply:
    doc = _doc(call)
    state = _state(call)
    refund_id, payment_id = doc.get("merchantRefundId"), doc.get("paymentId")
    amount = doc.get("amount")
    if not isinstance(refund_id, str) or not refund_id or not isinstance(payment_id, str) \
            or not isinstance(amount, dict):
        raise RouteError(reply(400, "INVALID_REQUEST_PARAMS",
                               "merchantRefundId, paymentId and amount are required",
                               "08100006"))
    await call.wait()
    if refund_id in state.refunds:  # same merchantRefundId: the same refund
        return reply(201, "SUCCESS", "Success", "08100001", state.refunds[refund_id])
    book = call.host.book
    key = book.key_of(payment_id)
    current = await book.lookup(key) if key is not None else None
    if key is None or current is None:
        return reply(400, "RESOURCE_NOT_FOUND", "no payment with this paymentId", "08100088")
    if amount.get("amount") != current.amount or amount.get("currency") != current.currency:
        return reply(400, "INVALID_PARAMS", "refund amount must equal the payment amount "
                     "(partial refunds are not simulated)", "08100006")
    if current.code != "approved":
        return reply(400, "UNACCEPTABLE_OP", "payment is not refundable in its state",
                     "08100020")
    outcome = await book.void(key, refund=True)
    if outcome is not None:
        state.notify(outcome)
    now = int(time.time())
    data = {"status": "CREATED", "merchantRefundId": refund_id, "paymentId": payment_id,
            "amount": amount, "requestedAt": doc.get("requestedAt", now), "acceptedAt": now,
            "reason": doc.get("reason", "")}
    state.refunds[refund_id] = {**data, "status": "COMPLETED"}
    return reply(201, "SUCCESS", "Success", "08100001", data)


async def _refund_details(call: RouteCall) -> HttpReply:
    await call.wait()
    found = _state(call).refunds.get(call.params["refund"])
    if found is None:
        return reply(404, "RESOURCE_NOT_FOUND", "refund not found", "08100088")
    return reply(200, "SUCCESS", "Success", "08100001", found)


def paypay_routes() -> RouteTable:
    return RouteTable([
        Route("POST", "/v2/payments", "charge", _create_payment, _parse_create),
        Route("GET", "/v2/payments/{key}", "status", _details),
        Route("DELETE", "/v2/payments/{key}", "void", _cancel),
        Route("POST", "/v2/payments/{key}/refunds", "refund", _refund_by_key),
        Route("POST", "/v2/codes", "charge", _create_code, _parse_create),
        Route("GET", "/v2/codes/payments/{key}", "status", _details),
        Route("DELETE", "/v2/codes/{code}", "void", _delete_code),
        Route("POST", "/v2/refunds", "refund", _refund),
        Route("GET", "/v2/refunds/{refund}", "status", _refund_details),
    ])
