"""alpha: a Stripe-like card acquirer.

Requests are form-encoded (``payment_method_data[card][number]=…``) with an
``Idempotency-Key`` header and the payment id in ``metadata[payment_id]``; answers are JSON
"payment intents". A decline is HTTP 402 with
``{"error": {"type": "card_error", "code": "card_declined", "decline_code": …}}``; a bad
request is 400 ``invalid_request_error``; a server error 500 ``api_error``. Status look-up
and void address the intent by idempotency key:
``GET /v1/payment_intents/idempotent/{key}``, ``POST …/{key}/cancel``, ``POST …/{key}/refund``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from paystab.stack.dialects._support import (
    FORM_CT,
    UNKNOWN,
    DialectBase,
    as_int,
    invert,
    json_reply,
    parse_form,
    quote_key,
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

_BASE = "/v1/payment_intents"
# unified decline → (error.code, error.decline_code)
_DECLINES = {
    "declined.insufficient_funds": ("card_declined", "insufficient_funds"),
    "declined.do_not_honor": ("card_declined", "do_not_honor"),
    "declined.expired_card": ("expired_card", "expired_card"),
    "declined.fraud": ("card_declined", "fraudulent"),
    "declined.invalid_data": ("incorrect_number", "incorrect_number"),
    "declined.limit_exceeded": ("card_declined", "card_velocity_exceeded"),
    "declined.not_supported": ("card_declined", "card_not_supported"),
    "declined.issuer_unavailable": ("card_declined", "issuer_not_available"),
}
_BY_DECLINE_CODE = {dc: unified for unified, (_, dc) in _DECLINES.items()}
# payment method type on the wire ↔ our method (wallets use their brand as the type)
_TYPES = {"card": "card", "konbini": "konbini", "bank_transfer": "customer_balance"}
_METHODS = invert(_TYPES)


class AlphaDialect(DialectBase):
    name = "alpha"
    charge_statuses = frozenset({200, 400, 402})
    void_statuses = frozenset({200, 400, 404})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        kind = _TYPES.get(request.method, request.wallet_brand or request.method)
        fields = [
            ("amount", str(request.amount)),
            ("currency", request.currency.lower()),
            ("confirm", "true"),
            ("capture_method", "automatic"),
            ("metadata[payment_id]", request.payment_id),
            ("payment_method_data[type]", kind),
            ("payment_method_data[billing_details][address][country]", request.country),
        ]
        if request.card is not None:
            card = request.card
            fields += [
                ("payment_method_data[card][number]", card.number),
                ("payment_method_data[card][exp_month]", str(card.exp_month)),
                ("payment_method_data[card][exp_year]", str(card.exp_year)),
                ("payment_method_data[card][cvc]", card.cvc),
            ]
        if request.customer_id:
            fields.append(("customer", request.customer_id))
        headers = {
            "Content-Type": FORM_CT,
            "Idempotency-Key": request.idempotency_key,
            "Alpha-Version": "2024-06-20",
        }
        return HttpCall("POST", _BASE, headers, urlencode(fields).encode())

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_BASE}/idempotent/{quote_key(idempotency_key)}", {})

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        body = urlencode({"cancellation_reason": "abandoned"}).encode()
        path = f"{_BASE}/idempotent/{quote_key(idempotency_key)}/cancel"
        return HttpCall("POST", path, {"Content-Type": FORM_CT}, body)

    def refund_call(self, idempotency_key: str) -> HttpCall:
        path = f"{_BASE}/idempotent/{quote_key(idempotency_key)}/refund"
        return HttpCall("POST", path, {"Content-Type": FORM_CT}, b"reason=requested_by_customer")

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 402:
            err = doc["error"]
            code = _BY_DECLINE_CODE.get(err["decline_code"], UNKNOWN)
            ref = (err.get("payment_intent") or {}).get("id")
            return ProviderAnswer(code, ref, f"{err['code']}/{err['decline_code']}")
        if status == 400:
            return ProviderAnswer("declined.invalid_data", None, doc["error"]["type"])
        return self._intent_answer(doc)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return self._not_found(doc)
        return self._intent_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return self._not_found(doc)
        if status == 400:  # not voidable: the intent never captured anything
            err = doc["error"]
            if err["code"] != "payment_intent_unexpected_state":
                return ProviderAnswer(UNKNOWN, None, err["code"])
            return self._intent_answer(err["payment_intent"])
        return self._intent_answer(doc)

    def _intent_answer(self, intent: dict[str, Any]) -> ProviderAnswer:
        state = intent["status"]
        ref = intent["id"]
        if state == "succeeded":
            code = REFUNDED if intent.get("amount_refunded", 0) > 0 else "approved"
        elif state == "processing":
            code = "pending"
        elif state == "canceled":
            code = VOIDED
        elif state == "requires_payment_method":
            code = _BY_DECLINE_CODE.get(intent["last_payment_error"]["decline_code"], UNKNOWN)
        else:
            code = UNKNOWN
        return ProviderAnswer(code, ref, state)

    @staticmethod
    def _not_found(doc: dict[str, Any]) -> ProviderAnswer:
        if doc["error"]["code"] == "resource_missing":
            return ProviderAnswer(LOOKUP_NOT_FOUND, None, "resource_missing")
        return ProviderAnswer(UNKNOWN, None, str(doc["error"]["code"]))

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, _ = split_target(path)
        if seg[:2] != ["v1", "payment_intents"]:
            return None
        if len(seg) == 2 and method == "POST":
            return ("charge", None)
        if len(seg) == 4 and seg[2] == "idempotent" and method == "GET":
            return ("status", seg[3])
        if len(seg) == 5 and seg[2] == "idempotent" and method == "POST":
            return {"cancel": ("void", seg[3]), "refund": ("refund", seg[3])}.get(seg[4])
        return None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        key = headers.get("idempotency-key", "")
        if not key:
            raise ValueError("Idempotency-Key header is required")
        form = parse_form(body)
        kind = form.get("payment_method_data[type]", "")
        method = _METHODS.get(kind, "wallet" if kind else "")
        if not method:
            raise ValueError("payment_method_data[type] is required")
        card = None
        if method == "card":
            prefix = "payment_method_data[card]"
            card = Card(
                form.get(f"{prefix}[number]", ""),
                as_int(form.get(f"{prefix}[exp_month]"), "exp_month"),
                as_int(form.get(f"{prefix}[exp_year]"), "exp_year"),
                form.get(f"{prefix}[cvc]", ""),
            )
        return ChargeRequest(
            idempotency_key=key,
            payment_id=form.get("metadata[payment_id]") or _missing("metadata[payment_id]"),
            amount=as_int(form.get("amount"), "amount"),
            currency=(form.get("currency") or _missing("currency")).upper(),
            method=method,
            country=form.get("payment_method_data[billing_details][address][country]", ""),
            card=card,
            wallet_brand=kind if method == "wallet" else None,
            customer_id=form.get("customer"),
        )

    def provider_ref(self, serial: int) -> str:
        return f"pi_{scramble(serial):016x}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code.startswith("declined."):
            code, decline_code = _DECLINES[outcome.code]
            return json_reply(402, {"error": {
                "type": "card_error", "code": code, "decline_code": decline_code,
                "message": "Your card was declined.",
                "payment_intent": {"id": outcome.provider_ref, "object": "payment_intent"},
            }})
        return json_reply(200, _intent(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        return json_reply(200, _intent(outcome))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        if outcome.code.startswith("declined."):
            return json_reply(400, {"error": {
                "type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                "message": "This PaymentIntent could not be canceled: nothing was captured.",
                "payment_intent": _intent(outcome),
            }})
        return json_reply(200, _intent(outcome))

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"error": {"type": "invalid_request_error", "message": reason}})

    def server_error(self) -> HttpReply:
        return json_reply(500, {"error": {"type": "api_error",
                                          "message": "An unknown error occurred."}})

    def rate_limited(self) -> HttpReply:
        return json_reply(429, {"error": {"type": "rate_limit_error", "code": "rate_limit",
                                          "message": "Too many requests hit the API."}})


def _intent(outcome: SimOutcome) -> dict[str, Any]:
    code = outcome.code
    intent: dict[str, Any] = {
        "id": outcome.provider_ref, "object": "payment_intent", "amount": outcome.amount,
        "amount_received": 0, "amount_refunded": 0, "currency": outcome.currency.lower(),
        "metadata": {"payment_id": outcome.payment_id}, "last_payment_error": None,
    }
    if code == "approved":
        intent.update(status="succeeded", amount_received=outcome.amount)
    elif code == REFUNDED:
        intent.update(status="succeeded", amount_received=outcome.amount,
                      amount_refunded=outcome.amount)
    elif code == "pending":
        intent.update(status="processing", next_action={
            "type": "display_voucher", "hosted_voucher_url":
            f"https://vouchers.alpha.example/{outcome.provider_ref}"})
    elif code == VOIDED:
        intent.update(status="canceled", cancellation_reason="abandoned")
    else:
        intent.update(status="requires_payment_method", last_payment_error={
            "type": "card_error", "decline_code": _DECLINES[code][1]})
    return intent


def _missing_reply() -> HttpReply:
    return json_reply(404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                      "message": "No such payment_intent for this key."}})


def _missing(field: str) -> str:
    raise ValueError(f"{field} is required")
