"""The KOMOJU endpoints the simulator serves (see ``komoju.py`` for the wire format).

Money moves only through the charge book. Payments are addressed by KOMOJU's id (the
provider reference); sessions live in memory for the provider's lifetime, and a session is
paid once (paying it again answers the same payment). Refunds are full refunds.
``Komoju-Scenario: <error code>`` on a payment create makes that payment fail with the
code; on a session create, every payment of the session. Deterministic failures for tests:
``metadata.paystab_fail_times = "N"`` or ``"N:error"`` fails the first N creates with that
idempotency key (or external_order_num) with the injected error, then lets one through.

Webhook events (``payment.authorized``, ``payment.captured``, ``payment.failed``,
``payment.cancelled``, ``payment.refunded``) go to every registered endpoint, signed
``X-Komoju-Signature`` (hex HMAC-SHA256 of the raw body with the endpoint's secret), with
``X-Komoju-Event`` and ``X-Komoju-ID``.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from paystab.stack.dialects._support import json_reply, load_json_object
from paystab.stack.dialects.base import ChargeRequest, HttpReply, SimOutcome
from paystab.stack.dialects.komoju import (
    DECLINES,
    RENDER,
    TEST_CARDS,
    error,
    parse_payment,
    payment_doc,
    sign_webhook,
)
from paystab.stack.dialects.routes import (
    Route,
    RouteCall,
    RouteError,
    RouteTable,
    parse_fail_first,
)

_MAX_AMOUNT = 10**9
_EVENTS = {"captured": "payment.captured", "authorized": "payment.authorized",
           "failed": "payment.failed", "cancelled": "payment.cancelled",
           "refunded": "payment.refunded"}


class KomojuState:
    """Per provider: sessions, what a payment request added (metadata, store), webhooks."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.sessions: dict[str, dict[str, Any]] = {}
        self.scenarios: dict[str, str] = {}  # session id → Komoju-Scenario
        self.extras: dict[str, dict[str, Any]] = {}  # idempotency key → request extras
        listeners = getattr(host.book, "on_change", None)
        if isinstance(listeners, list):
            listeners.append(lambda record: self.notify(record.current_outcome()))

    def add_endpoint(self, url: str, events: list[str], secret: str | None = None
                     ) -> dict[str, Any]:
        from paystab.stack.webhooks import WebhookTarget

        secret = secret or secrets.token_hex(20)
        endpoint_id = f"wh_{secrets.token_hex(10)}"
        sender = self.host.webhooks
        assert sender is not None
        sender.add_target(WebhookTarget(endpoint_id, url, secret, frozenset(events)))
        return {"id": endpoint_id, "url": url, "secret": secret, "events": events}

    def payment(self, outcome: SimOutcome) -> dict[str, Any]:
        return payment_doc(outcome, self.extras.get(outcome.idempotency_key))

    def notify(self, outcome: SimOutcome) -> None:
        sender = getattr(self.host, "webhooks", None)
        if sender is None or not sender.targets:  # nobody listens: build nothing
            return
        doc = self.payment(outcome)
        event_type = _EVENTS[doc["status"]]
        event_id = f"evt_{secrets.token_hex(12)}"
        event = {"id": event_id, "type": event_type, "resource": "event", "data": doc,
                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "reason": None}

        def sign(payload: bytes, secret: str, at: float) -> dict[str, str]:
            return {"X-Komoju-Signature": sign_webhook(payload, secret),
                    "X-Komoju-Event": event_type, "X-Komoju-ID": event_id,
                    "User-Agent": "Komoju-Webhook"}

        sender.send(event_type, event_id, json.dumps(event).encode(), sign)


def _state(call: RouteCall) -> KomojuState:
    state: KomojuState = call.host.state
    return state


def _doc(call: RouteCall) -> dict[str, Any]:
    doc = load_json_object(call.body) if call.body else {}
    if doc is None:
        raise RouteError(error(400, "bad_request", "the body is not a JSON object"))
    return doc


def _charge_from(call: RouteCall, doc: dict[str, Any], key: str,
                 scenario: str | None) -> ChargeRequest:
    if scenario is not None and scenario not in DECLINES:
        raise RouteError(error(422, "unprocessable_entity",
                               f"Komoju-Scenario must be one of {', '.join(DECLINES)}",
                               "Komoju-Scenario"))
    try:
        charge = parse_payment(doc, key, scenario)
    except ValueError as exc:
        raise RouteError(error(422, "unprocessable_entity", f"Invalid parameter: {exc}",
                               str(exc))) from None
    if not 1 <= charge.amount <= _MAX_AMOUNT or len(charge.currency) != 3:
        raise RouteError(error(422, "unprocessable_entity", "amount out of range", "amount"))
    meta = doc.get("metadata")
    magic = meta.get("paystab_fail_times") if isinstance(meta, dict) else None
    if isinstance(magic, str | int) and str(magic):
        try:
            times, kind = parse_fail_first(str(magic))
        except ValueError as exc:
            raise RouteError(error(422, "unprocessable_entity", str(exc),
                                   "metadata[paystab_fail_times]")) from None
        call.fail_first = (f"komoju:{key}:{charge.payment_id}", times, kind)
    details = doc["payment_details"]
    number = str(details.get("number", ""))
    requested = scenario or TEST_CARDS.get(number)
    call.scratch["extra"] = {
        "failure": requested, "metadata": meta if isinstance(meta, dict) else {},
        "type": details.get("type"),
        "store": details.get("store", "lawson"), "last4": number[-4:] if number else "",
        "capture": doc.get("capture", True) not in (False, "false"),
    }
    return charge


def _parse_create(call: RouteCall) -> ChargeRequest:
    doc = _doc(call)
    key = call.headers.get("x-komoju-idempotency") or f"komoju-{secrets.token_hex(12)}"
    return _charge_from(call, doc, key, call.headers.get("komoju-scenario"))


async def _charge(call: RouteCall) -> SimOutcome:
    charge = call.charge
    assert charge is not None
    state = _state(call)
    extra = call.scratch["extra"]
    hold = not extra["capture"] and charge.method == "card"
    try:
        outcome, replay = await call.host.book.charge(charge, call.delay_s, hold=hold)
    except ValueError:
        raise RouteError(error(409, "conflict", "The idempotency key was used for another "
                               "request"), "conflict") from None
    call.delay_s = 0.0
    if hold:  # the answer says where the money is: authorised, not captured
        outcome = await call.host.book.lookup(outcome.idempotency_key) or outcome
    if not replay:
        state.extras[outcome.idempotency_key] = extra
        state.notify(outcome)
    return outcome


async def _create(call: RouteCall) -> HttpReply:
    outcome = await _charge(call)
    return _charge_answer(call, outcome)


def _charge_answer(call: RouteCall, outcome: SimOutcome) -> HttpReply:
    """The payment, or KOMOJU's error for a failed one (the exact code asked for)."""
    if outcome.code.startswith("declined."):
        asked = _state(call).extras.get(outcome.idempotency_key, {}).get("failure")
        code = asked if asked and DECLINES.get(asked) == outcome.code else RENDER[outcome.code]
        return error(402, code, f"The payment failed: {code}")
    answer: HttpReply = _dialect(call).render_charge(outcome)
    if answer.status == 200:
        return json_reply(200, _state(call).payment(outcome))
    return answer


def _dialect(call: RouteCall) -> Any:
    from paystab.stack.dialects.komoju import KomojuDialect

    return getattr(call.host, "dialect", None) or KomojuDialect()


async def _by_id(call: RouteCall) -> tuple[str, SimOutcome]:
    await call.wait()
    key = call.host.book.key_of(call.params["id"])
    found = await call.host.book.lookup(key) if key is not None else None
    if key is None or found is None:
        raise RouteError(error(404, "not_found", "The requested resource could not be found"),
                         "not_found")
    return key, found


async def _show(call: RouteCall) -> HttpReply:
    _, found = await _by_id(call)
    return json_reply(200, _state(call).payment(found))


async def _capture(call: RouteCall) -> HttpReply:
    key, found = await _by_id(call)
    if not (found.code == "pending" and found.method == "card"):
        raise RouteError(error(422, "unprocessable_entity", "Only an authorized card payment "
                               "can be captured", "status"))
    outcome = await call.host.book.capture(key)
    assert outcome is not None
    _state(call).notify(outcome)
    return json_reply(200, _state(call).payment(outcome))


async def _refund(call: RouteCall) -> HttpReply:
    key, found = await _by_id(call)
    amount = _doc(call).get("amount")
    if amount is not None and amount != found.amount:
        raise RouteError(error(422, "unprocessable_entity", "Partial refunds are not "
                               "simulated: amount must be the payment's", "amount"))
    if found.code != "approved":
        raise RouteError(error(422, "unprocessable_entity", "Only a captured payment can be "
                               "refunded", "status"))
    outcome = await call.host.book.void(key, refund=True)
    assert outcome is not None
    _state(call).notify(outcome)
    return json_reply(200, _state(call).payment(outcome))


async def _cancel(call: RouteCall) -> HttpReply:
    key, found = await _by_id(call)
    if found.code != "pending":
        raise RouteError(error(422, "unprocessable_entity", "Only an authorized payment can "
                               "be cancelled", "status"))
    outcome = await call.host.book.void(key)
    assert outcome is not None
    _state(call).notify(outcome)
    return json_reply(200, _state(call).payment(outcome))


# -- sessions -------------------------------------------------------------------------------
async def _create_session(call: RouteCall) -> HttpReply:
    doc = _doc(call)
    amount, currency = doc.get("amount"), doc.get("currency")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= _MAX_AMOUNT:
        raise RouteError(error(422, "unprocessable_entity", "amount is required", "amount"))
    if not isinstance(currency, str) or len(currency) != 3:
        raise RouteError(error(422, "unprocessable_entity", "currency is required", "currency"))
    await call.wait()
    state = _state(call)
    session_id = f"{secrets.token_hex(13)[:25]}"
    types = doc.get("payment_types") or ["credit_card", "konbini", "bank_transfer"]
    session = {
        "id": session_id, "resource": "session", "mode": doc.get("mode", "payment"),
        "amount": amount, "currency": currency.upper(),
        "session_url": f"{getattr(call.host, 'url', '')}/sessions/{session_id}",
        "return_url": doc.get("return_url"), "default_locale": doc.get("default_locale", "ja"),
        "payment_methods": [{"type": t} for t in types], "status": "pending",
        "payment": None, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400)),
        "metadata": doc.get("metadata") or {}, "external_order_num": doc.get(
            "external_order_num"),
    }
    scenario = call.headers.get("komoju-scenario")
    if scenario is not None:
        if scenario not in DECLINES:
            raise RouteError(error(422, "unprocessable_entity", "unknown Komoju-Scenario",
                                   "Komoju-Scenario"))
        state.scenarios[session_id] = scenario
    state.sessions[session_id] = session
    return json_reply(200, session)


def _session(call: RouteCall) -> dict[str, Any]:
    session = _state(call).sessions.get(call.params["id"])
    if session is None:
        raise RouteError(error(404, "not_found", "The requested resource could not be found"),
                         "not_found")
    return session


async def _show_session(call: RouteCall) -> HttpReply:
    await call.wait()
    return json_reply(200, _session(call))


def _parse_session_pay(call: RouteCall) -> ChargeRequest:
    session = _session(call)
    doc = _doc(call)
    body = {"amount": session["amount"], "currency": session["currency"],
            "external_order_num": session["external_order_num"] or session["id"],
            "metadata": session["metadata"], "payment_details": doc.get("payment_details"),
            "capture": doc.get("capture", True)}
    scenario = _state(call).scenarios.get(session["id"]) or call.headers.get("komoju-scenario")
    return _charge_from(call, body, f"session:{session['id']}", scenario)


async def _pay_session(call: RouteCall) -> HttpReply:
    session = _session(call)
    outcome = await _charge(call)
    answer = _charge_answer(call, outcome)
    if answer.status != 200:
        return answer
    payment = _state(call).payment(outcome)
    session.update(status="completed", payment=payment)
    return json_reply(200, {"status": "completed", "payment": payment,
                            "redirect_url": session.get("return_url")})


# -- outside KOMOJU's API: the reference gateway's look-up and void by idempotency key -------
async def _by_key_status(call: RouteCall) -> HttpReply:
    await call.wait()
    found = await call.host.book.lookup(call.params["key"])
    answer: HttpReply = _dialect(call).render_status(found)
    return answer


def _by_key_void(refund: bool) -> Any:
    async def handler(call: RouteCall) -> HttpReply:
        await call.wait()
        key = call.params["key"]
        before = await call.host.book.lookup(key)
        outcome = await call.host.book.void(key, refund=refund)
        if outcome is not None and before is not None and before.code != outcome.code:
            _state(call).notify(outcome)
        answer: HttpReply = _dialect(call).render_void(outcome)
        return answer
    return handler


def komoju_routes() -> RouteTable:
    base = "/api/v1/payments"
    return RouteTable([
        Route("POST", base, "charge", _create, _parse_create),
        Route("GET", f"{base}/{{id}}", "status", _show),
        Route("POST", f"{base}/{{id}}/capture", "charge", _capture),
        Route("POST", f"{base}/{{id}}/refund", "refund", _refund),
        Route("POST", f"{base}/{{id}}/cancel", "void", _cancel),
        Route("POST", "/api/v1/sessions", "status", _create_session),
        Route("GET", "/api/v1/sessions/{id}", "status", _show_session),
        Route("POST", "/api/v1/sessions/{id}/pay", "charge", _pay_session, _parse_session_pay),
        Route("GET", f"{base}/by-idempotency-key/{{key}}", "status", _by_key_status),
        Route("POST", f"{base}/by-idempotency-key/{{key}}/cancel", "void", _by_key_void(False)),
        Route("POST", f"{base}/by-idempotency-key/{{key}}/refund", "refund",
              _by_key_void(True)),
    ])
