"""The Adyen Checkout endpoints the simulator serves, and what each does to money.

Every route exists under each version prefix ``/v68`` … ``/v72`` (another prefix answers
Adyen's 404). Money moves only through the charge book, so the provider ledger stays the
reconciler's ground truth:

* ``POST /payments``: a charge (``additionalData.manualCapture: "true"`` authorises a card
  without capturing it); an AUTHORISATION notification follows a decided charge.
* ``POST /payments/details``: the result of a wallet's redirect — a wallet payment sent
  with a ``returnUrl`` answers ``RedirectShopper`` with an action whose URL carries
  ``redirectResult``; posting ``{"details": {"redirectResult": …}}`` answers the outcome.
  A wallet payment without ``returnUrl`` is answered at once.
* ``POST /payments/{pspReference}/captures``: captures a manual-capture authorisation
  (an auto-captured payment is answered as received, nothing moves); ``/cancels`` releases
  an authorisation (not a captured payment); ``/refunds`` gives back a captured payment;
  ``/reversals`` does whichever applies. All answer 201 ``received``; whether it worked is
  in the CAPTURE / CANCELLATION / REFUND / CANCEL_OR_REFUND notification. Amounts must
  equal the payment's (no partial captures or refunds: 422 ``137``).
* ``POST /paymentMethods``: what the provider's spec takes, for the request's currency.
* ``POST /cancels``: the technical cancel by ``paymentReference`` (the merchant reference of
  the latest payment with it, remembered for this process's life) for when the shop never
  got a pspReference: voids it whether captured or not; 201 ``received`` always (also for an
  unknown reference); the TECHNICAL_CANCEL notification says whether it worked.
* deterministic failures for tests: ``additionalData.paystabFailTimes = "N"`` or
  ``"N:error"`` fails the first N requests with that Idempotency-Key and reference with the
  injected error (server_error, rate_limited, malformed, bad_gateway); the next succeeds.
* outside Adyen's API, for the reference gateway: ``GET /payments/by-idempotency-key/{key}``
  and ``POST …/{key}/reversals | refunds``.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from paystab.stack.dialects._support import json_reply, load_json_object
from paystab.stack.dialects.adyen import (
    MERCHANT_ACCOUNT,
    VERSIONS,
    AdyenDialect,
    error_doc,
    key_of_redirect_result,
    modification_doc,
    modification_ref,
    parse_payment,
    payment_doc,
    redirect_result,
    validation_error,
)
from paystab.stack.dialects.adyen_codes import ASYNC_TYPES, SCHEME_BRANDS, WALLET_TYPES, Refusal
from paystab.stack.dialects.adyen_notify import TEST_HMAC_KEY, notification
from paystab.stack.dialects.base import ChargeRequest, HttpReply, SimOutcome
from paystab.stack.dialects.routes import (
    Route,
    RouteCall,
    RouteError,
    RouteTable,
    parse_fail_first,
)

_MAX_AMOUNT = 10**9
_PRIVATE = "adyen-endpoint:"  # the sender's event type for one endpoint's own copy


class AdyenState:
    """Per provider: what a request asked for that the ledger does not keep (the exact
    refusal a test trigger asked for, the merchant account), for this process's life."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.refusals: dict[str, Refusal] = {}
        self.merchants: dict[str, str] = {}
        self.pm_types: dict[str, str] = {}
        self.redirects: set[str] = set()  # wallet payments sent with a returnUrl
        self.endpoint_events: dict[str, frozenset[str]] = {}  # endpoint id → event codes
        self.by_reference: dict[str, str] = {}  # merchant reference → latest payment's key
        listeners = getattr(host.book, "on_change", None)
        if isinstance(listeners, list):
            listeners.append(self._book_changed)

    def add_endpoint(self, url: str, events: list[str], secret: str | None = None
                     ) -> dict[str, Any]:
        """Register a standard-notification endpoint; ``secret`` is its HMAC key (hex),
        generated when not given, as the Customer Area does.

        Adyen signs inside the body, so each endpoint gets its own copy, signed with its own
        key: the sender knows the endpoint by a private event type, and ``events`` (event
        codes, ``*`` = all) is kept here.
        """
        from paystab.stack.webhooks import WebhookTarget

        secret = secret or secrets.token_hex(32).upper()
        endpoint_id = f"S2-{secrets.token_hex(8).upper()}"
        sender = self.host.webhooks
        assert sender is not None
        sender.add_target(WebhookTarget(endpoint_id, url, secret,
                                        frozenset({_PRIVATE + endpoint_id})))
        self.endpoint_events[endpoint_id] = frozenset(events)
        return {"id": endpoint_id, "url": url, "secret": secret, "events": events}

    def merchant(self, key: str) -> str:
        return self.merchants.get(key, MERCHANT_ACCOUNT)

    def notify(self, event_code: str, outcome: SimOutcome, success: bool, *,
               psp: str | None = None, reason: str = "") -> None:
        """Send one standard notification, if the shop registered a webhook endpoint."""
        sender = getattr(self.host, "webhooks", None)
        if sender is None:
            return
        for target in list(sender.targets.values()):
            wanted = self.endpoint_events.get(target.id)
            if wanted is None:  # registered by other means: filtered by event code
                if not target.wants(event_code):
                    continue
                event_type = event_code
            elif "*" in wanted or event_code in wanted:
                event_type = _PRIVATE + target.id
            else:
                continue
            doc = notification(
                event_code, psp=psp or outcome.provider_ref, merchant=self.merchant(
                    outcome.idempotency_key), reference=outcome.payment_id,
                value=outcome.amount, currency=outcome.currency, success=success,
                reason=reason, hmac_key_hex=target.secret or TEST_HMAC_KEY,
                original=outcome.provider_ref if psp is not None else None,
                payment_method=outcome.method if outcome.method != "card" else "scheme")
            event_id = f"{psp or outcome.provider_ref}:{event_code}:{'1' if success else '0'}"
            sender.send(event_type, event_id, json.dumps(doc).encode(), _no_headers)

    def _book_changed(self, record: Any) -> None:
        """The book completed a konbini slip / transfer, or let an authorisation lapse."""
        outcome = record.current_outcome()
        if record.status == "captured":
            self.notify("AUTHORISATION", outcome, True)
        elif record.status == "voided":
            self.notify("OFFER_CLOSED", outcome, True)


def _no_headers(payload: bytes, secret: str, at: float) -> dict[str, str]:
    return {}  # Adyen signs inside the notification (additionalData.hmacSignature)


def _state(call: RouteCall) -> AdyenState:
    state: AdyenState = call.host.state
    return state


def _version(call: RouteCall) -> None:
    if call.params.get("version") not in VERSIONS:
        raise RouteError(error_doc(404, "000", "HTTP Status Response - Not Found",
                                   "validation"), "no_route")


def _json(call: RouteCall) -> dict[str, Any]:
    doc = load_json_object(call.body) if call.body else {}
    if doc is None:
        raise RouteError(error_doc(400, "702", "Unexpected input: the body is not a JSON "
                                   "object", "validation"))
    return doc


# -- POST /payments ---------------------------------------------------------------------
def _parse_payment(call: RouteCall) -> ChargeRequest:
    _version(call)
    doc = _json(call)
    key = call.headers.get("idempotency-key") or f"adyen-{uuid.uuid4().hex}"
    try:
        charge, refusal = parse_payment(doc, key)
    except ValueError as exc:
        raise RouteError(validation_error("130", str(exc))) from None
    if not 1 <= len(key) <= 255:
        raise RouteError(validation_error("130", "Idempotency-Key must be 1-255 characters"))
    if not 1 <= charge.amount <= _MAX_AMOUNT:
        raise RouteError(validation_error("100", "amount.value must be 1..10^9 minor units"))
    if len(charge.currency) != 3 or not charge.currency.isalpha():
        raise RouteError(validation_error("100", "amount.currency must be ISO 4217"))
    extra = doc.get("additionalData")
    magic = extra.get("paystabFailTimes") if isinstance(extra, dict) else None
    if isinstance(magic, str | int) and str(magic):
        try:
            times, kind = parse_fail_first(str(magic))
        except ValueError as exc:
            raise RouteError(validation_error("130", str(exc))) from None
        call.fail_first = (f"adyen:{key}:{charge.payment_id}", times, kind)
    pm = doc["paymentMethod"]
    call.scratch.update(refusal=refusal, merchant=str(doc["merchantAccount"]),
                        pm_type=str(pm.get("type", "scheme")),
                        redirect=bool(doc.get("returnUrl")),
                        hold=isinstance(extra, dict)
                        and str(extra.get("manualCapture", "")).lower() == "true")
    return charge


async def _payments(call: RouteCall) -> HttpReply:
    state = _state(call)
    charge = call.charge
    assert charge is not None
    book = call.host.book
    hold = bool(call.scratch["hold"]) and charge.method == "card"
    try:
        outcome, replay = await book.charge(charge, call.delay_s, hold=hold)
    except ValueError:
        raise RouteError(validation_error(
            "704", "request already processed or in progress with another body")) from None
    call.delay_s = 0.0
    key = outcome.idempotency_key
    if not replay:
        state.merchants[key] = call.scratch["merchant"]
        state.by_reference[outcome.payment_id] = key
        state.pm_types[key] = call.scratch["pm_type"]
        if call.scratch["redirect"]:
            state.redirects.add(key)
        if call.scratch["refusal"] is not None:
            state.refusals[key] = call.scratch["refusal"]
        if outcome.code != "pending":
            state.notify("AUTHORISATION", outcome, outcome.code == "approved",
                         reason=_reason(state, outcome))
    return json_reply(200, _payment_answer(state, outcome))


def _reason(state: AdyenState, outcome: SimOutcome) -> str:
    doc = payment_doc(outcome, state.refusals.get(outcome.idempotency_key), "")
    return str(doc.get("refusalReason", ""))


def _payment_answer(state: AdyenState, outcome: SimOutcome, redirect: bool = True
                    ) -> dict[str, Any]:
    key = outcome.idempotency_key
    doc = payment_doc(outcome, state.refusals.get(key), state.merchant(key))
    if outcome.method == "card" and outcome.code == "pending":  # held for manual capture
        doc.pop("action", None)
        doc["resultCode"] = "Authorised"
    elif (outcome.method == "wallet" and redirect and key in state.redirects
          and not outcome.code.startswith("error.")):
        for name in ("refusalReason", "refusalReasonCode", "additionalData"):
            doc.pop(name, None)
        doc["resultCode"] = "RedirectShopper"
        kind = state.pm_types.get(key, "paypay")
        doc["action"] = {"type": "redirect", "method": "GET", "paymentMethodType": kind,
                         "url": f"{call_base(state)}/paystab/adyen/redirect?redirectResult="
                                f"{redirect_result(key)}"}
    return doc


def call_base(state: AdyenState) -> str:
    return str(getattr(state.host, "url", ""))


# -- POST /payments/details -------------------------------------------------------------
async def _details(call: RouteCall) -> HttpReply:
    _version(call)
    doc = _json(call)
    details = doc.get("details")
    token = details.get("redirectResult") if isinstance(details, dict) else None
    token = token or doc.get("paymentData")
    key = key_of_redirect_result(token) if isinstance(token, str) else None
    await call.wait()
    found = await call.host.book.lookup(key) if key is not None else None
    if found is None:
        raise RouteError(validation_error("14_018", "Invalid payload provided"))
    return json_reply(200, _payment_answer(_state(call), found, redirect=False))


# -- POST /paymentMethods ---------------------------------------------------------------
async def _payment_methods(call: RouteCall) -> HttpReply:
    _version(call)
    doc = _json(call)
    await call.wait()
    spec = call.host.spec
    amount = doc.get("amount")
    currency = amount.get("currency") if isinstance(amount, dict) else None
    methods: list[dict[str, Any]] = []
    if currency is not None and currency not in spec.currencies:
        return json_reply(200, {"paymentMethods": methods})
    if "card" in spec.methods:
        methods.append({"brands": [SCHEME_BRANDS[b] for b in spec.card_brands
                                   if b in SCHEME_BRANDS], "name": "Cards", "type": "scheme"})
    for brand in spec.wallet_brands if "wallet" in spec.methods else ():
        methods.append({"name": brand.capitalize(), "type": WALLET_TYPES.get(brand, brand)})
    for method in ("konbini", "bank_transfer"):
        if method in spec.methods:
            methods.append({"name": {"konbini": "Convenience Stores",
                                     "bank_transfer": "Bank Transfer"}[method],
                            "type": ASYNC_TYPES[method]})
    return json_reply(200, {"paymentMethods": methods})


# -- POST /payments/{pspReference}/{modification} ----------------------------------------
_EVENTS = {"captures": "CAPTURE", "cancels": "CANCELLATION", "refunds": "REFUND",
           "reversals": "CANCEL_OR_REFUND"}


def _modification(kind: str) -> Any:
    async def handler(call: RouteCall) -> HttpReply:
        _version(call)
        doc = _json(call)
        if not isinstance(doc.get("merchantAccount"), str):
            raise RouteError(validation_error("901", "Invalid Merchant Account"))
        book = call.host.book
        psp = call.params["psp"]
        key = book.key_of(psp)
        await call.wait()
        current = await book.lookup(key) if key is not None else None
        if key is None or current is None:
            raise RouteError(validation_error(
                "167", "Original pspReference required for this operation"))
        amount = doc.get("amount")
        if kind in ("captures", "refunds") and (
                not isinstance(amount, dict) or amount.get("value") != current.amount
                or amount.get("currency") != current.currency):
            raise RouteError(validation_error(
                    "137", "Invalid amount specified: the simulator takes full amounts only"))
        held = current.code == "pending" and current.method == "card"
        success = False
        if kind == "captures":
            success = current.code == "approved" or held
            if held:
                await book.capture(key)
        elif kind == "cancels" and (held or current.code == "pending"):
            success = (await book.void(key)) is not None
        elif kind == "refunds" and current.code == "approved":
            success = (await book.void(key, refund=True)) is not None
        elif kind == "reversals" and current.code in ("approved", "pending"):
            # cancel or refund, whichever applies: the money goes back either way; the
            # ledger calls it voided, as it does every void of a late success
            success = (await book.void(key)) is not None
        state = _state(call)
        state.notify(_EVENTS[kind], current, success, psp=modification_ref(kind, psp))
        reference = doc.get("reference")
        return json_reply(201, modification_doc(kind, current, str(doc["merchantAccount"]),
                                                str(reference) if reference else None,
                                                amount if isinstance(amount, dict) else None))
    return handler


# -- POST /cancels: the technical cancel, by the merchant's own reference ---------------------
async def _technical_cancel(call: RouteCall) -> HttpReply:
    _version(call)
    doc = _json(call)
    merchant, reference = doc.get("merchantAccount"), doc.get("paymentReference")
    if not isinstance(merchant, str) or not isinstance(reference, str) or not reference:
        raise RouteError(validation_error("130", "merchantAccount and paymentReference are "
                                                 "required"))
    await call.wait()
    state = _state(call)
    key = state.by_reference.get(reference)
    current = await call.host.book.lookup(key) if key is not None else None
    psp = f"T{secrets.token_hex(8).upper()[1:]}"[:16]
    if key is not None and current is not None:
        success = current.code in ("approved", "pending") and \
            (await call.host.book.void(key)) is not None
        state.notify("TECHNICAL_CANCEL", current, success, psp=psp)
    answer = {"merchantAccount": merchant, "paymentReference": reference,
              "pspReference": psp, "status": "received"}
    if isinstance(doc.get("reference"), str):
        answer["reference"] = doc["reference"]
    return json_reply(201, answer)


# -- outside Adyen's API: the reference gateway's look-up and void by idempotency key ------
async def _by_key_status(call: RouteCall) -> HttpReply:
    _version(call)
    await call.wait()
    found = await call.host.book.lookup(call.params["key"])
    reply: HttpReply = _dialect(call).render_status(found)
    return reply


def _by_key_void(refund: bool) -> Any:
    async def handler(call: RouteCall) -> HttpReply:
        _version(call)
        await call.wait()
        key = call.params["key"]
        before = await call.host.book.lookup(key)
        outcome = await call.host.book.void(key, refund=refund)
        if outcome is not None and before is not None and before.code in ("approved",
                                                                           "pending"):
            _state(call).notify("REFUND" if refund else "CANCEL_OR_REFUND", before, True,
                                psp=modification_ref("refunds" if refund else "reversals",
                                                     before.provider_ref))
        reply: HttpReply = _dialect(call).render_void(outcome)
        return reply
    return handler


def _dialect(call: RouteCall) -> Any:
    return getattr(call.host, "dialect", None) or AdyenDialect()


def adyen_routes() -> RouteTable:
    base = "/{version}/payments"
    return RouteTable([
        Route("POST", base, "charge", _payments, _parse_payment),
        Route("POST", f"{base}/details", "status", _details),
        Route("POST", "/{version}/paymentMethods", "status", _payment_methods),
        Route("POST", "/{version}/cancels", "void", _technical_cancel),
        Route("POST", f"{base}/{{psp}}/captures", "charge", _modification("captures")),
        Route("POST", f"{base}/{{psp}}/cancels", "void", _modification("cancels")),
        Route("POST", f"{base}/{{psp}}/refunds", "refund", _modification("refunds")),
        Route("POST", f"{base}/{{psp}}/reversals", "void", _modification("reversals")),
        Route("GET", f"{base}/by-idempotency-key/{{key}}", "status", _by_key_status),
        Route("POST", f"{base}/by-idempotency-key/{{key}}/reversals", "void",
              _by_key_void(False)),
        Route("POST", f"{base}/by-idempotency-key/{{key}}/refunds", "refund",
              _by_key_void(True)),
    ])
