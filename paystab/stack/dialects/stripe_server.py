"""The ``stripe`` dialect's server half: PaymentIntents, confirmation, capture, cancel.

Route handlers (``stack/dialects/routes.py``) for the money-moving part of Stripe's API;
refunds, payment methods, customers, webhook endpoints and events are in
``stripe_objects.py``. A confirmation is a charge in the provider's charge book (keyed by
the request's ``Idempotency-Key``, else by ``<intent id>:<attempt>``), decided by Stripe's
documented test cards first and by the provider's model otherwise; a manual-capture
confirmation holds the authorization (``hold=True``) until captured or canceled.
"""

from __future__ import annotations

import time
from typing import Any

from paystab.stack.dialects.base import Card, ChargeRequest, HttpReply
from paystab.stack.dialects.routes import RouteCall, RouteError, parse_fail_first
from paystab.stack.dialects.stripe_objects import (
    card_of,
    charge_ref,
    form_of,
    int_param,
    list_page,
    missing,
    payment_method,
    state_of,
)
from paystab.stack.dialects.stripe_state import StripeState, apply_record, new_intent
from paystab.stack.dialects.stripe_wire import (
    DECLINE_MESSAGES,
    DECLINES,
    TEST_DECLINES,
    error,
    new_id,
    reply,
)

_CANCELABLE = frozenset({"requires_payment_method", "requires_capture", "requires_confirmation",
                         "requires_action", "processing"})
_MAX_AMOUNT = 99_999_999


def _truthy(value: object) -> bool:
    return str(value).lower() == "true"


def _fail_first(call: RouteCall, form: dict[str, Any], token: str) -> None:
    magic = (form.get("metadata") or {}).get("paystab_fail_times")
    if isinstance(magic, str) and magic:
        try:
            times, kind = parse_fail_first(magic)
        except ValueError as exc:
            raise RouteError(error(400, "invalid_request_error", str(exc), "parameter_invalid",
                                   "metadata[paystab_fail_times]")) from None
        call.fail_first = (token, times, kind)


def _intent_or_404(state: StripeState, intent_id: str) -> dict[str, Any]:
    doc = state.intent(intent_id)
    if doc is None:
        raise RouteError(missing("payment_intent", intent_id, "intent"), "not_found")
    return doc


def _charge_request(call: RouteCall, state: StripeState, doc: dict[str, Any],
                    form: dict[str, Any]) -> ChargeRequest:
    """The charge a confirmation makes; records the PaymentMethod on the intent."""
    pm = payment_method(state, form) if ("payment_method" in form
                                         or "payment_method_data" in form) else None
    if pm is None:
        pm_id = doc.get("payment_method")
        pm = state.payment_methods.get(pm_id) if isinstance(pm_id, str) else None
    if pm is None:
        raise RouteError(error(400, "invalid_request_error",
                               "You cannot confirm this PaymentIntent because it's missing a "
                               "payment method.", "payment_intent_unexpected_state",
                               payment_intent=doc))
    doc["payment_method"] = pm["id"]
    card = card_of(state, pm["id"])
    n = state.confirmations.get(doc["id"], 0) + 1
    state.confirmations[doc["id"]] = n
    key = call.headers.get("idempotency-key") or f"{doc['id']}:{n}"
    country = ((pm.get("billing_details") or {}).get("address") or {}).get("country") or ""
    # The merchant's reference as the ledger keeps it: paystab's gateway sends
    # metadata[payment_id]; a shop usually metadata[order_id], or only a description.
    metadata = doc["metadata"]
    reference = (metadata.get("payment_id") or metadata.get("order_id") or doc.get("description")
                 or doc["id"])
    return ChargeRequest(key, str(reference), doc["amount"],
                         doc["currency"].upper(), "card", country, card=card,
                         customer_id=doc.get("customer"))


# -- PaymentIntents ------------------------------------------------------------------------
def parse_create(call: RouteCall) -> ChargeRequest | None:
    state = state_of(call)
    form = form_of(call)
    amount = int_param(form, "amount", required=True)
    if not 1 <= amount <= _MAX_AMOUNT:
        raise RouteError(error(400, "invalid_request_error",
                               "Amount must be at least 1 and at most 99999999.",
                               "amount_too_small" if amount < 1 else "amount_too_large",
                               "amount"))
    currency = form.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise RouteError(error(400, "invalid_request_error", "Missing required param: currency.",
                               "parameter_missing", "currency"))
    doc = new_intent(new_id("pi"), amount, currency, form)
    if doc["capture_method"] not in ("automatic", "automatic_async", "manual"):
        raise RouteError(error(400, "invalid_request_error", "Invalid capture_method.",
                               "parameter_invalid_string", "capture_method"))
    call.scratch["intent"] = doc
    _fail_first(call, form, call.headers.get("idempotency-key") or doc["id"])
    if not _truthy(form.get("confirm", "false")):
        if "payment_method" in form or "payment_method_data" in form:
            doc["payment_method"] = payment_method(state, form)["id"]
            doc["status"] = "requires_confirmation"
        return None
    return _charge_request(call, state, doc, form)


async def create_intent(call: RouteCall) -> HttpReply:
    state = state_of(call)
    doc = call.scratch["intent"]
    state.add_intent(doc)
    state.emit("payment_intent.created", doc)
    if call.charge is None:
        await call.wait()
        call.result = "created"
        return reply(200, doc)
    return await _confirm(call, state, doc)


def parse_confirm(call: RouteCall) -> ChargeRequest:
    state = state_of(call)
    doc = _intent_or_404(state, call.params["intent"])
    if doc["status"] not in ("requires_payment_method", "requires_confirmation",
                             "requires_action"):
        raise RouteError(error(400, "invalid_request_error",
                               f"This PaymentIntent's status is {doc['status']}: it cannot be "
                               "confirmed.", "payment_intent_unexpected_state",
                               payment_intent=doc))
    form = form_of(call)
    if "capture_method" in form:
        doc["capture_method"] = form["capture_method"]
    call.scratch["intent"] = doc
    _fail_first(call, {"metadata": {**doc["metadata"], **(form.get("metadata") or {})}},
                call.headers.get("idempotency-key") or f"{doc['id']}:confirm")
    return _charge_request(call, state, doc, form)


async def confirm_intent(call: RouteCall) -> HttpReply:
    return await _confirm(call, state_of(call), call.scratch["intent"])


def _decide(state: StripeState, card: Card | None):  # type: ignore[no-untyped-def]
    model = state.host.model

    def decide(request: ChargeRequest) -> str:
        if card is not None and card.number in TEST_DECLINES:
            return TEST_DECLINES[card.number][2]
        return model.decide(request)
    return decide


async def _confirm(call: RouteCall, state: StripeState, doc: dict[str, Any]) -> HttpReply:
    request = call.charge
    assert request is not None
    manual = str(doc["capture_method"]).startswith("manual")
    try:
        outcome, _replay = await state.host.book.charge(
            request, call.delay_s, provider_ref=doc["id"], decide=_decide(state, request.card),
            hold=manual)
    except ValueError as exc:  # the book's key was used for another charge
        raise RouteError(error(400, "idempotency_error", str(exc))) from None
    call.delay_s = 0.0
    state.set_intent_key(doc["id"], request.idempotency_key)
    call.result = outcome.code
    charge_id = charge_ref(state, doc["id"])
    doc["latest_charge"] = charge_id
    key = call.headers.get("idempotency-key")
    if outcome.code.startswith("declined."):
        number = request.card.number if request.card else ""
        code, decline = (TEST_DECLINES[number][:2] if number in TEST_DECLINES
                         else DECLINES[outcome.code])
        message = DECLINE_MESSAGES.get(decline, "Your card was declined.")
        failure = {"type": "card_error", "code": code, "decline_code": decline,
                   "message": message,
                   "charge": charge_id, "payment_method": state.payment_methods.get(
                       doc["payment_method"]),
                   "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"}
        doc.update(status="requires_payment_method", last_payment_error=failure)
        if state.listening:
            state.emit("charge.failed", _charge_doc(doc, "failed"), key)
            state.emit("payment_intent.payment_failed", doc, key)
        return error(402, "card_error", message, code, decline_code=decline,
                     charge=charge_id, payment_intent=doc,
                     payment_method=failure["payment_method"])
    doc["last_payment_error"] = None
    apply_record(doc, "captured" if outcome.code == "approved" and not manual else "pending",
                 outcome.code)
    if not state.listening:
        pass
    elif doc["status"] == "succeeded":
        state.emit("charge.succeeded", _charge_doc(doc, "succeeded"), key)
        state.emit("payment_intent.succeeded", doc, key)
    elif doc["status"] == "requires_capture":
        state.emit("charge.succeeded", _charge_doc(doc, "succeeded"), key)
        state.emit("payment_intent.amount_capturable_updated", doc, key)
    else:
        state.emit("payment_intent.processing", doc, key)
    return reply(200, doc)


def _charge_doc(intent: dict[str, Any], status: str) -> dict[str, Any]:
    captured = intent["status"] == "succeeded"
    return {"id": intent["latest_charge"], "object": "charge", "amount": intent["amount"],
            "amount_captured": intent["amount"] if captured else 0,
            "amount_refunded": intent.get("amount_refunded_total", 0),
            "captured": captured, "currency": intent["currency"], "status": status,
            "paid": status == "succeeded", "payment_intent": intent["id"],
            "payment_method": intent["payment_method"], "metadata": intent["metadata"],
            "refunded": False, "created": int(time.time()), "livemode": False}


async def capture_intent(call: RouteCall) -> HttpReply:
    state = state_of(call)
    doc = _intent_or_404(state, call.params["intent"])
    form = form_of(call)
    if doc["status"] != "requires_capture":
        raise RouteError(error(400, "invalid_request_error",
                               f"This PaymentIntent could not be captured because it has a "
                               f"status of {doc['status']}. Only a PaymentIntent with one of "
                               "the following statuses may be captured: requires_capture.",
                               "payment_intent_unexpected_state", payment_intent=doc))
    wanted = int_param(form, "amount_to_capture", default=doc["amount_capturable"])
    if wanted != doc["amount_capturable"]:
        raise RouteError(error(400, "invalid_request_error",
                               "paystab's Stripe simulator captures the full amount only.",
                               "parameter_invalid_integer", "amount_to_capture"))
    await call.wait()
    outcome = await state.host.book.capture(state.intent_keys[doc["id"]])
    assert outcome is not None
    apply_record(doc, "captured", outcome.code)
    if state.listening:
        state.emit("charge.captured", _charge_doc(doc, "succeeded"))
        state.emit("payment_intent.succeeded", doc)
    call.result = "captured"
    return reply(200, doc)


async def cancel_intent(call: RouteCall) -> HttpReply:
    state = state_of(call)
    doc = _intent_or_404(state, call.params["intent"])
    form = form_of(call)
    if doc["status"] not in _CANCELABLE:
        raise RouteError(error(400, "invalid_request_error",
                               "You cannot cancel this PaymentIntent because it has a status "
                               f"of {doc['status']}. Only a PaymentIntent with one of the "
                               "following statuses may be canceled: "
                               + ", ".join(sorted(_CANCELABLE)) + ".",
                               "payment_intent_unexpected_state", payment_intent=doc))
    await call.wait()
    key = state.intent_keys.get(doc["id"])
    if key is not None and doc["status"] in ("requires_capture", "processing"):
        await state.host.book.void(key)
    doc.update(status="canceled", canceled_at=int(time.time()), amount_capturable=0,
               cancellation_reason=form.get("cancellation_reason") or "requested_by_customer")
    state.emit("payment_intent.canceled", doc)
    call.result = "voided"
    return reply(200, doc)


async def retrieve_intent(call: RouteCall) -> HttpReply:
    state = state_of(call)
    doc = _intent_or_404(state, call.params["intent"])
    key = state.intent_keys.get(doc["id"])
    if key is not None and state.host.book.record(key) is None:
        await state.host.book.lookup(key)  # in flight: answer once decided
    await call.wait()
    return reply(200, doc)


async def update_intent(call: RouteCall) -> HttpReply:
    state = state_of(call)
    doc = _intent_or_404(state, call.params["intent"])
    form = form_of(call)
    for name in ("description", "receipt_email", "customer", "statement_descriptor"):
        if name in form:
            doc[name] = form[name] or None
    if isinstance(form.get("metadata"), dict):
        doc["metadata"].update(form["metadata"])
        state.index_metadata(doc)
    if "amount" in form and doc["status"] in ("requires_payment_method",
                                              "requires_confirmation"):
        doc["amount"] = int_param(form, "amount")
    if "payment_method" in form:
        doc["payment_method"] = payment_method(state, form)["id"]
        doc["status"] = "requires_confirmation"
    await call.wait()
    return reply(200, doc)


async def list_intents(call: RouteCall) -> HttpReply:
    state = state_of(call)
    form = form_of(call)
    items = list(reversed(state.intents.values()))  # newest first, as Stripe lists
    if isinstance(form.get("customer"), str):
        items = [i for i in items if i.get("customer") == form["customer"]]
    await call.wait()
    return reply(200, list_page(items, form, "/v1/payment_intents"))


async def search_intents(call: RouteCall) -> HttpReply:
    """``query`` of ``metadata['k']:'v'`` and ``status:'s'`` clauses joined by AND."""
    state = state_of(call)
    form = form_of(call)
    clauses: list[tuple[str, str]] = []
    for clause in str(form.get("query", "")).split(" AND "):
        name, sep, value = clause.strip().partition(":")
        if not sep or len(value) < 2 or value[0] != value[-1] or value[0] not in "'\"":
            raise RouteError(error(400, "invalid_request_error",
                                   "Unsupported search query: use metadata['key']:'value' or "
                                   "status:'value' joined by AND.", "parameter_invalid_string",
                                   "query"))
        clauses.append((name.strip(), value[1:-1].replace("\\'", "'").replace("\\\\", "\\")))
    # Metadata clauses read the index (the gateway's look-up by key is one); only a search
    # by status alone scans every intent.
    by_metadata = []
    for name, value in clauses:
        key = _metadata_name(name)
        if key is not None:
            by_metadata.append((key, value))
    candidates = (state.search_candidates(by_metadata) if by_metadata
                  else list(reversed(state.intents.values())))
    found = []
    for doc in candidates:
        if all(_field(doc, name) == value for name, value in clauses):
            key = state.intent_keys.get(doc["id"])
            if key is not None and state.host.book.record(key) is None:
                await state.host.book.lookup(key)  # in flight: answer once decided
            found.append(doc)
    await call.wait()
    limit = int_param(form, "limit", default=10)
    return reply(200, {"object": "search_result", "url": "/v1/payment_intents/search",
                       "has_more": len(found) > limit, "data": found[:limit],
                       "next_page": None, "total_count": len(found)})


def _metadata_name(name: str) -> str | None:
    """``k`` of a ``metadata['k']`` clause name, else None."""
    if name.startswith("metadata[") and name.endswith("]"):
        return name[9:-1].strip("'\"")
    return None


def _field(doc: dict[str, Any], name: str) -> object:
    key = _metadata_name(name)
    return doc["metadata"].get(key) if key is not None else doc.get(name)
