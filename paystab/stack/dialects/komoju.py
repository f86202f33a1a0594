"""komoju: KOMOJU's payments API (cards, konbini, bank transfer), as its docs describe it.

A *routed* dialect (``dialects/routes.py``; handlers in ``komoju_routes.py``) under
``/api/v1``: payments (``POST /payments``, ``GET /payments/{id}``, ``POST
/payments/{id}/capture | refund | cancel``) and sessions (``POST /sessions``, ``GET
/sessions/{id}``, ``POST /sessions/{id}/pay``). JSON both ways; HTTP Basic authentication
with the secret key as user name and an empty password (a wrong key: 401 ``{"error":
{"code": "unauthorized", …}}``); ``X-KOMOJU-IDEMPOTENCY`` replays a create. A card payment
is ``captured`` at once (``capture: false``: ``authorized`` until captured); konbini and
bank transfer are ``authorized`` (waiting for the customer) and become ``captured`` after
the provider's ``async_completion_s``, announced by a ``payment.captured`` webhook signed
``X-Komoju-Signature`` = hex HMAC-SHA256 of the body with the webhook secret. A declined
card is HTTP 402 with KOMOJU's error object and code (``insufficient_funds``,
``card_declined``…): the documented test cards (``4123111111111000``…) and the
``Komoju-Scenario: <code>`` header ask for one. Other errors: 400/422 ``bad_request`` /
``unprocessable_entity``, 404 ``not_found``, 409 ``conflict``, 429, 500
``internal_server_error``, 503 ``service_unavailable``.

The reference gateway charges through ``POST /api/v1/payments``; KOMOJU has no look-up by
idempotency key, so the simulator adds one outside KOMOJU's API:
``GET /api/v1/payments/by-idempotency-key/{key}`` and ``POST …/{key}/cancel | refund``.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
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
)
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    REFUNDED,
    VOIDED,
    Card,
    ChargeRequest,
    HttpCall,
    HttpReply,
    InboundCall,
    ProviderAnswer,
    SimOutcome,
)
from paystab.stack.dialects.forced import with_forced_code

API = "/api/v1"
TEST_SECRET_KEY = "sk_test_paystab0komoju0secret"
# KOMOJU error code ↔ unified decline (the first code of a unified one renders it)
DECLINES = {
    "insufficient_funds": "declined.insufficient_funds",
    "card_declined": "declined.do_not_honor",
    "card_expired": "declined.expired_card",
    "bad_verification_value": "declined.invalid_data",
    "invalid_number": "declined.invalid_data",
    "exceeds_limit": "declined.limit_exceeded",
    "fraudulent": "declined.fraud",
    "not_supported": "declined.not_supported",
    "temporarily_unavailable": "declined.issuer_unavailable",
}
RENDER = {unified: code for code, unified in reversed(list(DECLINES.items()))}
# https://doc.komoju.com/docs/test-cards
TEST_CARDS = {
    "4123111111111000": "insufficient_funds",
    "4123111111111018": "exceeds_limit",
    "4123111111111034": "bad_verification_value",
    "4123111111111042": "card_expired",
    "4123111111111059": "card_declined",
    "4123111111111075": "invalid_number",
}
STATUS = {"approved": "captured", "pending": "authorized", VOIDED: "cancelled",
          REFUNDED: "refunded"}
_TYPES = {"card": "credit_card", "konbini": "konbini", "bank_transfer": "bank_transfer"}
_METHODS = {v: k for k, v in _TYPES.items()}
WALLETS = ("paypay", "linepay", "merpay", "rakutenpay", "aupay", "kakaopay", "grabpay")


def error(status: int, code: str, message: str, param: str | None = None) -> HttpReply:
    return json_reply(status, {"error": {"code": code, "message": message, "param": param}})


def komoju_id(serial: int) -> str:
    """25 lower-case alphanumerics, as KOMOJU's ids look."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    number = scramble(serial) << 64 | scramble(serial + 0x5BD1E995)
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out.rjust(25, "0")[-25:]


def parse_payment(doc: dict[str, Any], key: str, scenario: str | None) -> ChargeRequest:
    """A create-payment body (and the session's or header's scenario) → the charge."""
    details = doc.get("payment_details")
    if not isinstance(details, dict):
        raise ValueError("payment_details")
    kind = as_str(details.get("type"), "payment_details[type]")
    method = _METHODS.get(kind) or ("wallet" if kind in WALLETS else None)
    if method is None:
        raise ValueError("payment_details[type]")
    card = None
    if method == "card":
        year = as_int(details.get("year"), "payment_details[year]")
        card = Card(str(details.get("number", "")),
                    as_int(details.get("month"), "payment_details[month]"),
                    year + 2000 if year < 100 else year,
                    str(details.get("verification_value", "")))
    raw_meta = doc.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    order = doc.get("external_order_num")
    request = ChargeRequest(
        idempotency_key=key,
        payment_id=str(order) if order else key,
        amount=as_int(doc.get("amount"), "amount"),
        currency=as_str(doc.get("currency"), "currency").upper(),
        method=method,
        country=str(meta.get("country") or "JP"),
        card=card,
        wallet_brand=kind if method == "wallet" else None,
        customer_id=str(doc["customer"]) if doc.get("customer") else None,
    )
    code = scenario or (TEST_CARDS.get(card.number) if card is not None else None)
    forced = DECLINES.get(code) if code else None
    return with_forced_code(request, forced)


def payment_doc(outcome: SimOutcome, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """KOMOJU's payment object for ``outcome`` (``extra``: what the request added)."""
    extra = extra or {}
    code = outcome.code
    status = STATUS.get(code, "failed")
    if code == "pending" and outcome.method == "card":
        status = "authorized"  # held for a manual capture
    kind = _TYPES.get(outcome.method) or str(extra.get("type", "paypay"))
    details: dict[str, Any] = {"type": kind}
    if kind == "credit_card":
        details.update(brand=extra.get("brand", "visa"), last_four_digits=extra.get("last4", ""))
    elif kind == "konbini":
        details.update(store=extra.get("store", "lawson"),
                       confirmation_code=outcome.provider_ref[:6], receipt=outcome.provider_ref[-11:],
                       instructions_url=f"https://komoju.com/ja/instructions/{outcome.provider_ref}")
    elif kind == "bank_transfer":
        details.update(bank_name="paystab bank", account_number=outcome.provider_ref[-7:])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc: dict[str, Any] = {
        "id": outcome.provider_ref, "resource": "payment", "status": status,
        "amount": outcome.amount, "tax": 0, "total": outcome.amount,
        "currency": outcome.currency, "external_order_num": outcome.payment_id,
        "payment_details": details, "payment_method_fee": 0, "customer": None,
        "description": None, "metadata": extra.get("metadata", {}),
        "captured_at": now if status in ("captured", "refunded") else None,
        "created_at": now, "amount_refunded": outcome.amount if status == "refunded" else 0,
        "refunds": [], "refund_requests": [], "session": extra.get("session"),
        "payment_deadline": None,
    }
    if status == "failed":
        doc["failure_reason"] = extra.get("failure") or RENDER.get(code, "card_declined")
    if kind != "credit_card" and status == "authorized":
        doc["payment_deadline"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                time.gmtime(time.time() + 3 * 86400))
    return doc


def sign_webhook(payload: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), payload, "sha256").hexdigest()


def basic_auth(secret_key: str) -> str:
    return "Basic " + base64.b64encode(f"{secret_key}:".encode()).decode()


class KomojuDialect(DialectBase):
    name = "komoju"
    charge_statuses = frozenset({200, 402, 422})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({200, 404, 422})
    secret_key = TEST_SECRET_KEY  # what the gateway sends
    default_secret = TEST_SECRET_KEY  # what a simulator requires unless configured otherwise

    def __init__(self) -> None:
        from paystab.stack.dialects.komoju_routes import komoju_routes

        self.routes = komoju_routes()

    # -- client side (the reference gateway) -------------------------------------------
    def _headers(self, key: str | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "Authorization": basic_auth(self.secret_key)}
        if key is not None:
            headers["X-KOMOJU-IDEMPOTENCY"] = key
        return headers

    def charge_call(self, request: ChargeRequest) -> HttpCall:
        kind = request.wallet_brand if request.method == "wallet" else request.method
        details: dict[str, Any] = {"type": _TYPES.get(request.method, kind or "paypay")}
        if request.card is not None:
            card = request.card
            details.update(number=card.number, month=f"{card.exp_month:02d}",
                           year=str(card.exp_year), verification_value=card.cvc)
        elif request.method == "konbini":
            details.update(store="lawson", email="customer@example.com")
        elif request.method == "bank_transfer":
            details.update(email="customer@example.com", family_name="Yamada",
                           given_name="Taro", phone="0312345678")
        doc: dict[str, Any] = {
            "amount": request.amount, "currency": request.currency,
            "external_order_num": request.payment_id, "payment_details": details,
            "metadata": {"country": request.country}, "capture": True,
        }
        if request.customer_id:
            doc["customer"] = request.customer_id
        return HttpCall("POST", f"{API}/payments", self._headers(request.idempotency_key),
                        dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{API}/payments/by-idempotency-key/"
                        f"{quote_key(idempotency_key)}", self._headers())

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return HttpCall("POST", f"{API}/payments/by-idempotency-key/"
                        f"{quote_key(idempotency_key)}/cancel", self._headers(), b"{}")

    def refund_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("POST", f"{API}/payments/by-idempotency-key/"
                        f"{quote_key(idempotency_key)}/refund", self._headers(), b"{}")

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status != 200:
            code = str(doc["error"]["code"])
            unified = DECLINES.get(code, "declined.invalid_data" if status == 422 else UNKNOWN)
            return ProviderAnswer(unified, None, code)
        return _payment_answer(doc)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        return _payment_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        if status == 422:
            reason = str(doc["error"].get("param") or "")
            return ProviderAnswer(DECLINES.get(reason, UNKNOWN), None, str(doc["error"]["code"]))
        return _payment_answer(doc)

    # -- server side -------------------------------------------------------------------
    def authenticate(self, call: InboundCall) -> HttpReply | None:
        given = call.headers.get("authorization", "")
        secret = call.secret if call.secret is not None else TEST_SECRET_KEY
        expected = basic_auth(secret)
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return error(401, "unauthorized", "User authorization failed")

    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        """The key-addressed view of the routes (the simulator serves ``routes``)."""
        found = self.routes.match(method, path)
        if found is None:
            return None
        route, params, _ = found
        return route.operation, params.get("key")

    def new_state(self, host: Any) -> Any:
        from paystab.stack.dialects.komoju_routes import KomojuState

        return KomojuState(host)

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        key = headers.get("x-komoju-idempotency") or f"komoju-{secrets.token_hex(12)}"
        return parse_payment(require_json(body), key, headers.get("komoju-scenario"))

    def provider_ref(self, serial: int) -> str:
        return komoju_id(serial)

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        if outcome.code.startswith("declined."):
            code = RENDER[outcome.code]
            return error(402, code, f"The payment failed: {code}", None)
        return json_reply(200, payment_doc(outcome))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return error(404, "not_found", "The requested resource could not be found")
        return json_reply(200, payment_doc(outcome))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return error(404, "not_found", "The requested resource could not be found")
        if outcome.code.startswith("declined."):
            return error(422, "unprocessable_entity", "A failed payment cannot be cancelled",
                         RENDER[outcome.code])
        return json_reply(200, payment_doc(outcome))

    def render_bad_request(self, reason: str) -> HttpReply:
        return error(422, "unprocessable_entity", f"Invalid parameter: {reason}", reason)

    def render_no_route(self, method: str, path: str) -> HttpReply:
        return error(404, "not_found", "The requested resource could not be found")

    def server_error(self) -> HttpReply:
        return error(500, "internal_server_error", "Something went wrong on our side")

    def rate_limited(self) -> HttpReply:
        reply = error(429, "too_many_requests", "Too many requests")
        return HttpReply(reply.status, reply.content_type, reply.body, {"Retry-After": "1"})


def _payment_answer(doc: dict[str, Any]) -> ProviderAnswer:
    status = doc["status"]
    ref = doc["id"]
    if status == "captured":
        return ProviderAnswer("approved", ref, status)
    if status in ("authorized", "pending"):  # waiting for the customer, or for a capture
        return ProviderAnswer("pending", ref, status)
    if status == "cancelled":
        return ProviderAnswer(VOIDED, ref, status)
    if status == "refunded":
        return ProviderAnswer(REFUNDED, ref, status)
    if status == "failed":
        reason = str(doc.get("failure_reason", ""))
        return ProviderAnswer(DECLINES.get(reason, UNKNOWN), ref, reason)
    return ProviderAnswer(UNKNOWN, ref, str(status))


def _not_found(doc: dict[str, Any]) -> ProviderAnswer:
    found = doc["error"]["code"] == "not_found"
    return ProviderAnswer(LOOKUP_NOT_FOUND if found else UNKNOWN, None, doc["error"]["code"])
