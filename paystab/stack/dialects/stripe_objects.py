"""The ``stripe`` dialect's server half: refunds, payment methods, customers, webhooks.

Route handlers (``stack/dialects/routes.py``) and the request helpers the PaymentIntent
handlers (``stripe_server.py``) share: reading a form or query in bracket notation,
Stripe's 404 and list envelopes, and resolving a payment method — an id created earlier,
one of Stripe's ``pm_card_*`` test methods, or ``payment_method_data`` with raw card data.
"""

from __future__ import annotations

import time
from typing import Any, cast

from paystab.cards import luhn_valid
from paystab.stack.catalog import card_brand
from paystab.stack.dialects.base import Card, HttpReply
from paystab.stack.dialects.routes import RouteCall, RouteError
from paystab.stack.dialects.stripe_state import StripeState
from paystab.stack.dialects.stripe_wire import (
    TEST_PAYMENT_METHODS,
    TEST_TOKENS,
    decode_form,
    error,
    new_id,
    reply,
)
from paystab.stack.webhooks import check_webhook_url

_PAST = 0


def state_of(call: RouteCall) -> StripeState:
    return cast(StripeState, call.host.state)


def form_of(call: RouteCall) -> dict[str, Any]:
    """The request's parameters: the form body of a POST, the query of a GET/DELETE."""
    cached = call.scratch.get("form")
    if cached is not None:
        return cast(dict[str, Any], cached)
    try:
        form = decode_form(call.body) if call.method == "POST" else decode_form(
            b"", call.query)
    except ValueError as exc:
        raise RouteError(error(400, "invalid_request_error", str(exc))) from None
    call.scratch["form"] = form
    return form


def int_param(form: dict[str, Any], name: str, default: int = 0,
              required: bool = False) -> int:
    value = form.get(name)
    if value is None:
        if required:
            raise RouteError(error(400, "invalid_request_error",
                                   f"Missing required param: {name}.", "parameter_missing",
                                   name))
        return default
    if not isinstance(value, str) or not value.lstrip("-").isdigit():
        raise RouteError(error(400, "invalid_request_error",
                               f"Invalid integer: {value}", "parameter_invalid_integer", name))
    return int(value)


def missing(kind: str, object_id: str, param: str = "id") -> HttpReply:
    return error(404, "invalid_request_error", f"No such {kind}: '{object_id}'",
                 "resource_missing", param)


def list_page(items: list[dict[str, Any]], form: dict[str, Any], url: str) -> dict[str, Any]:
    """Stripe's list envelope with ``limit``, ``starting_after`` and ``ending_before``."""
    limit = int_param(form, "limit", default=10)
    if not 1 <= limit <= 100:
        raise RouteError(error(400, "invalid_request_error",
                               "limit must be between 1 and 100", "parameter_invalid_integer",
                               "limit"))
    ids = [item["id"] for item in items]
    after, before = form.get("starting_after"), form.get("ending_before")
    if isinstance(after, str) and after in ids:
        items = items[ids.index(after) + 1:]
    elif isinstance(before, str) and before in ids:
        items = items[:ids.index(before)][-limit:]
    return {"object": "list", "url": url, "has_more": len(items) > limit,
            "data": items[:limit]}


def charge_ref(state: StripeState, intent_id: str) -> str:
    """The id of the intent's charge (one per successful or failed confirmation)."""
    charge_id = new_id("ch")
    state.charges[charge_id] = intent_id
    return charge_id


# -- PaymentMethods ------------------------------------------------------------------------
def _pm_doc(pm_id: str, card: Card, billing: dict[str, Any] | None = None,
            customer: str | None = None) -> dict[str, Any]:
    return {"id": pm_id, "object": "payment_method", "type": "card",
            "billing_details": billing or {"address": {"country": None}, "email": None,
                                           "name": None, "phone": None},
            "card": {"brand": card_brand(card.number) or "unknown", "last4": card.number[-4:],
                     "exp_month": card.exp_month, "exp_year": card.exp_year,
                     "country": "JP" if card.number == "4000003920000003" else "US",
                     "funding": "credit", "checks": {"cvc_check": None}},
            "customer": customer, "created": int(time.time()), "livemode": False,
            "metadata": {}}


def _card_from(data: dict[str, Any], param: str) -> Card:
    token = data.get("token")
    if isinstance(token, str):
        number = TEST_TOKENS.get(token)
        if number is None:
            raise RouteError(missing("token", token, f"{param}[token]"), "not_found")
        return Card(number, 12, time.gmtime().tm_year + 3, "123")
    number = str(data.get("number", "")).replace(" ", "")
    if not number:
        raise RouteError(error(400, "invalid_request_error",
                               f"Missing required param: {param}[number].",
                               "parameter_missing", f"{param}[number]"))
    if not luhn_valid(number):
        raise RouteError(error(402, "card_error", "Your card number is incorrect.",
                               "incorrect_number", f"{param}[number]"))
    try:
        month, year = int(data.get("exp_month", "")), int(data.get("exp_year", ""))
    except ValueError:
        raise RouteError(error(400, "invalid_request_error", "Your card's expiration date is "
                               "missing or invalid.", "invalid_expiry_month",
                               f"{param}[exp_month]")) from None
    if not 1 <= month <= 12:
        raise RouteError(error(402, "card_error", "Your card's expiration month is invalid.",
                               "invalid_expiry_month", f"{param}[exp_month]"))
    cvc = str(data.get("cvc", ""))
    if cvc and (not cvc.isdigit() or len(cvc) not in (3, 4)):
        raise RouteError(error(402, "card_error", "Your card's security code is invalid.",
                               "invalid_cvc", f"{param}[cvc]"))
    return Card(number, month, year if year >= 100 else 2000 + year, cvc)


def create_pm(state: StripeState, data: dict[str, Any], param: str) -> dict[str, Any]:
    kind = data.get("type", "card")
    if kind != "card":
        raise RouteError(error(400, "invalid_request_error",
                               f"paystab's Stripe simulator takes card payment methods, "
                               f"not {kind}.", "payment_method_unexpected_state", "type"))
    card = _card_from(data.get("card") or {}, f"{param}[card]" if param else "card")
    billing = data.get("billing_details")
    doc = _pm_doc(new_id("pm"), card, billing if isinstance(billing, dict) else None)
    state.payment_methods[doc["id"]] = doc
    state.cards[doc["id"]] = card
    return doc


def test_pm(state: StripeState, pm_id: str) -> dict[str, Any] | None:
    """A ``pm_card_*`` test method, created on first use."""
    found = state.payment_methods.get(pm_id)
    if found is not None or pm_id not in TEST_PAYMENT_METHODS:
        return found
    card = Card(TEST_PAYMENT_METHODS[pm_id], 12, time.gmtime().tm_year + 3, "123")
    doc = _pm_doc(pm_id, card)
    state.payment_methods[pm_id] = doc
    state.cards[pm_id] = card
    return doc


def payment_method(state: StripeState, form: dict[str, Any]) -> dict[str, Any]:
    """The PaymentMethod a request names (``payment_method``) or gives (``…_data``)."""
    pm_id = form.get("payment_method")
    if isinstance(pm_id, str) and pm_id:
        found = test_pm(state, pm_id)
        if found is None:
            raise RouteError(missing("PaymentMethod", pm_id, "payment_method"), "not_found")
        return found
    data = form.get("payment_method_data")
    if not isinstance(data, dict):
        raise RouteError(error(400, "invalid_request_error",
                               "Missing required param: payment_method.", "parameter_missing",
                               "payment_method"))
    return create_pm(state, data, "payment_method_data")


def card_of(state: StripeState, pm_id: str) -> Card | None:
    return state.cards.get(pm_id)


async def create_payment_method(call: RouteCall) -> HttpReply:
    await call.wait()
    return reply(200, create_pm(state_of(call), form_of(call), ""))


async def retrieve_payment_method(call: RouteCall) -> HttpReply:
    found = test_pm(state_of(call), call.params["pm"])
    if found is None:
        raise RouteError(missing("PaymentMethod", call.params["pm"]), "not_found")
    await call.wait()
    return reply(200, found)


async def attach_payment_method(call: RouteCall) -> HttpReply:
    state = state_of(call)
    found = test_pm(state, call.params["pm"])
    if found is None:
        raise RouteError(missing("PaymentMethod", call.params["pm"]), "not_found")
    customer = form_of(call).get("customer")
    if not isinstance(customer, str) or customer not in state.customers:
        raise RouteError(missing("customer", str(customer), "customer"), "not_found")
    found["customer"] = customer
    await call.wait()
    return reply(200, found)


# -- Customers -----------------------------------------------------------------------------
async def create_customer(call: RouteCall) -> HttpReply:
    state = state_of(call)
    form = form_of(call)
    customer_id = new_id("cus")
    doc: dict[str, Any] = {"id": customer_id, "object": "customer", "created": int(time.time()),
           "email": form.get("email"), "name": form.get("name"),
           "description": form.get("description"), "livemode": False,
           "metadata": form.get("metadata") or {},
           "invoice_settings": {"default_payment_method": None}}
    state.customers[customer_id] = doc
    await call.wait()
    return reply(200, doc)


async def retrieve_customer(call: RouteCall) -> HttpReply:
    found = state_of(call).customers.get(call.params["customer"])
    if found is None:
        raise RouteError(missing("customer", call.params["customer"]), "not_found")
    await call.wait()
    return reply(200, found)


# -- Refunds -------------------------------------------------------------------------------
async def create_refund(call: RouteCall) -> HttpReply:
    state = state_of(call)
    form = form_of(call)
    intent_id = form.get("payment_intent")
    charge = form.get("charge")
    if not isinstance(intent_id, str) and isinstance(charge, str):
        intent_id = state.charges.get(charge)
        if intent_id is None:
            raise RouteError(missing("charge", charge, "charge"), "not_found")
    if not isinstance(intent_id, str):
        raise RouteError(error(400, "invalid_request_error",
                               "One of the following params should be provided for this "
                               "request: payment_intent or charge.", "parameter_missing",
                               "payment_intent"))
    doc = state.intent(intent_id)
    if doc is None:
        raise RouteError(missing("payment_intent", intent_id, "payment_intent"), "not_found")
    key = state.intent_keys.get(intent_id)
    if doc["status"] not in ("succeeded", "processing") or key is None:
        raise RouteError(error(400, "invalid_request_error",
                               f"This PaymentIntent ({intent_id}) does not have a successful "
                               "charge to refund.", "charge_not_refundable",
                               payment_intent=doc))
    refunded = doc.get("amount_refunded_total", 0)
    left = doc["amount"] - refunded
    amount = int_param(form, "amount", default=left)
    if left <= 0:
        raise RouteError(error(400, "invalid_request_error",
                               f"Charge {doc['latest_charge']} has already been refunded.",
                               "charge_already_refunded", payment_intent=doc))
    if not 1 <= amount <= left:
        raise RouteError(error(400, "invalid_request_error",
                               f"Refund amount ({amount}) is greater than unrefunded amount "
                               f"on charge ({left})", "amount_too_large", "amount"))
    await call.wait()
    if amount == left:  # the whole (rest of the) money goes back: the ledger says so
        await state.host.book.void(key, refund=doc["status"] == "succeeded")
    doc["amount_refunded_total"] = refunded + amount
    refund_id = new_id("re")
    refund: dict[str, Any] = {"id": refund_id, "object": "refund", "amount": amount,
              "charge": doc["latest_charge"], "currency": doc["currency"],
              "created": int(time.time()), "metadata": form.get("metadata") or {},
              "payment_intent": intent_id, "reason": form.get("reason"),
              "status": "succeeded"}
    state.refunds[refund_id] = refund
    state.emit("refund.created", refund, call.headers.get("idempotency-key"))
    charge_doc = {"id": doc["latest_charge"], "object": "charge", "amount": doc["amount"],
                  "amount_refunded": doc["amount_refunded_total"], "currency": doc["currency"],
                  "payment_intent": intent_id, "refunded": amount == left,
                  "status": "succeeded", "metadata": doc["metadata"]}
    state.emit("charge.refunded", charge_doc)
    call.result = "refunded"
    return reply(200, refund)


async def retrieve_refund(call: RouteCall) -> HttpReply:
    found = state_of(call).refunds.get(call.params["refund"])
    if found is None:
        raise RouteError(missing("refund", call.params["refund"]), "not_found")
    await call.wait()
    return reply(200, found)


async def list_refunds(call: RouteCall) -> HttpReply:
    form = form_of(call)
    items = list(reversed(state_of(call).refunds.values()))
    if isinstance(form.get("payment_intent"), str):
        items = [r for r in items if r["payment_intent"] == form["payment_intent"]]
    await call.wait()
    return reply(200, list_page(items, form, "/v1/refunds"))


# -- Webhook endpoints and events ----------------------------------------------------------
async def create_webhook_endpoint(call: RouteCall) -> HttpReply:
    form = form_of(call)
    url = form.get("url")
    events = form.get("enabled_events")
    if not isinstance(url, str) or not isinstance(events, list) or not events:
        raise RouteError(error(400, "invalid_request_error",
                               "Missing required param: url and enabled_events.",
                               "parameter_missing", "url"))
    try:
        check_webhook_url(url)
    except ValueError as exc:
        raise RouteError(error(400, "invalid_request_error", str(exc), "url_invalid",
                               "url")) from None
    await call.wait()
    return reply(200, state_of(call).add_endpoint(url, [str(e) for e in events]))


async def delete_webhook_endpoint(call: RouteCall) -> HttpReply:
    state = state_of(call)
    endpoint_id = call.params["endpoint"]
    if state.endpoints.pop(endpoint_id, None) is None:
        raise RouteError(missing("webhook_endpoint", endpoint_id), "not_found")
    webhooks = call.host.webhooks
    if webhooks is not None:
        webhooks.targets.pop(endpoint_id, None)
    await call.wait()
    return reply(200, {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True})


async def retrieve_event(call: RouteCall) -> HttpReply:
    found = state_of(call).events.get(call.params["event"])
    if found is None:
        raise RouteError(missing("event", call.params["event"]), "not_found")
    await call.wait()
    return reply(200, found)


async def list_events(call: RouteCall) -> HttpReply:
    form = form_of(call)
    items = list(reversed(state_of(call).events.values()))
    if isinstance(form.get("type"), str):
        items = [e for e in items if e["type"] == form["type"]]
    await call.wait()
    return reply(200, list_page(items, form, "/v1/events"))
