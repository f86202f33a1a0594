"""stripe: Stripe's own API, as the official SDKs speak it (api_base, key and CA changed).

A *routed* dialect (``stack/dialects/routes.py``): the simulator serves the endpoints in
:data:`ROUTES` with Stripe's form encoding, error object, HTTP statuses, ``Request-Id``
header, idempotency (replay; other parameters → 400 ``idempotency_error``), test cards and
``pm_card_*`` test methods, and signed webhook events. Authentication is
``Authorization: Bearer <secret key>``; the key is the provider's secret
(default ``sk_test_paystab``), any other answers 401 as Stripe does.

The gateway's client half charges with ``POST /v1/payment_intents`` (``confirm=true``,
raw card data, ``Idempotency-Key`` = the attempt key, ``metadata[paystab_attempt]`` = the
same key), looks a charge up with the Search API (``metadata['paystab_attempt']:'KEY'``) and
voids a late success with a full refund (``POST /v1/refunds``, ``payment_intent``). Stripe
decline codes map to the unified taxonomy in ``stripe_wire.UNIFIED_BY_DECLINE``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from paystab.stack.dialects._support import FORM_CT, UNKNOWN, DialectBase, scramble
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    VOIDED,
    ChargeRequest,
    HttpCall,
    HttpReply,
    InboundCall,
    ProviderAnswer,
    SimOutcome,
)
from paystab.stack.dialects.routes import Route, RouteCall, RouteError, RouteHost, RouteTable
from paystab.stack.dialects.stripe_objects import (
    attach_payment_method,
    create_customer,
    create_payment_method,
    create_refund,
    create_webhook_endpoint,
    delete_webhook_endpoint,
    list_events,
    list_refunds,
    retrieve_customer,
    retrieve_event,
    retrieve_payment_method,
    retrieve_refund,
    state_of,
)
from paystab.stack.dialects.stripe_server import (
    cancel_intent,
    capture_intent,
    confirm_intent,
    create_intent,
    list_intents,
    parse_confirm,
    parse_create,
    retrieve_intent,
    search_intents,
    update_intent,
)
from paystab.stack.dialects.stripe_state import StripeState
from paystab.stack.dialects.stripe_wire import (
    API_VERSION,
    DEFAULT_SECRET_KEY,
    UNIFIED_BY_DECLINE,
    error,
    fingerprint,
    redact_key,
    reply,
)

Handler = Callable[[RouteCall], Any]


# -- idempotency (Stripe: POST requests only; first answer replayed for 24 h) --------------
def _idempotency_error(key: str) -> RouteError:
    return RouteError(error(
        400, "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request."), "idempotency_error")


def _replayed(found: HttpReply) -> HttpReply:
    return HttpReply(found.status, found.content_type, found.body,
                     {**found.headers, "Idempotent-Replayed": "true"})


def _idempotent_parse(parse: Callable[[RouteCall], ChargeRequest | None] | None
                      ) -> Callable[[RouteCall], ChargeRequest | None]:
    def wrapped(call: RouteCall) -> ChargeRequest | None:
        key = call.headers.get("idempotency-key")
        if key:
            state = state_of(call)
            mark = fingerprint(call.method, call.path, call.body)
            call.scratch["idem"] = (key, mark)
            found = state.idempotent.get(key)
            pending = state.inflight.get(key)
            seen = found.fingerprint if found else (pending[0] if pending else None)
            if seen is not None:
                if seen != mark:
                    raise _idempotency_error(key)
                call.scratch["replay"] = True
                return None
        return parse(call) if parse is not None else None
    return wrapped


def _in_use() -> RouteError:
    return RouteError(error(409, "invalid_request_error",
                            "There is currently another in-progress request using this "
                            "Idempotent Key. Try again later.", "idempotency_key_in_use"),
                      "idempotency_conflict")


def _idempotent(handler: Handler) -> Callable[[RouteCall], Any]:
    async def wrapped(call: RouteCall) -> HttpReply:
        idem = call.scratch.get("idem")
        if idem is None:
            return await handler(call)  # type: ignore[no-any-return]
        key, mark = idem
        state = state_of(call)
        found = state.idempotent.get(key)
        pending = state.inflight.get(key)
        if found is not None or pending is not None:
            seen = found.fingerprint if found is not None else pending[0]  # type: ignore[index]
            if seen != mark:
                raise _idempotency_error(key)
            await call.wait()
            call.result = "replay"
            if found is not None:
                return _replayed(found.reply)
            assert pending is not None
            first = await asyncio.shield(pending[1])
            if first is None:
                raise _in_use()
            return _replayed(first)
        if call.scratch.get("replay"):  # the first request ended without an answer
            raise _in_use()
        future: asyncio.Future[HttpReply | None] = asyncio.get_running_loop().create_future()
        state.inflight[key] = (mark, future)
        answer: HttpReply | None = None
        try:
            answer = await handler(call)
            return answer
        except RouteError as exc:
            answer = exc.reply
            raise
        finally:
            state.inflight.pop(key, None)
            if answer is not None and answer.status < 500:
                state.remember(key, mark, answer)
            if not future.done():
                future.set_result(answer)
    return wrapped


def _post(pattern: str, operation: str, handler: Handler,
          parse: Callable[[RouteCall], ChargeRequest | None] | None = None) -> Route:
    return Route("POST", pattern, operation, _idempotent(handler), _idempotent_parse(parse))


ROUTES = RouteTable([
    _post("/v1/payment_intents", "charge", create_intent, parse_create),
    Route("GET", "/v1/payment_intents", "status", list_intents),
    Route("GET", "/v1/payment_intents/search", "status", search_intents),
    Route("GET", "/v1/payment_intents/{intent}", "status", retrieve_intent),
    _post("/v1/payment_intents/{intent}", "status", update_intent),
    _post("/v1/payment_intents/{intent}/confirm", "charge", confirm_intent, parse_confirm),
    _post("/v1/payment_intents/{intent}/capture", "charge", capture_intent),
    _post("/v1/payment_intents/{intent}/cancel", "void", cancel_intent),
    _post("/v1/refunds", "refund", create_refund),
    Route("GET", "/v1/refunds", "status", list_refunds),
    Route("GET", "/v1/refunds/{refund}", "status", retrieve_refund),
    _post("/v1/payment_methods", "status", create_payment_method),
    Route("GET", "/v1/payment_methods/{pm}", "status", retrieve_payment_method),
    _post("/v1/payment_methods/{pm}/attach", "status", attach_payment_method),
    _post("/v1/customers", "status", create_customer),
    Route("GET", "/v1/customers/{customer}", "status", retrieve_customer),
    _post("/v1/webhook_endpoints", "status", create_webhook_endpoint),
    Route("DELETE", "/v1/webhook_endpoints/{endpoint}", "status", delete_webhook_endpoint),
    Route("GET", "/v1/events", "status", list_events),
    Route("GET", "/v1/events/{event}", "status", retrieve_event),
])


class StripeDialect(DialectBase):
    name = "stripe"
    routes = ROUTES
    default_secret = DEFAULT_SECRET_KEY
    charge_statuses = frozenset({200, 400, 401, 402, 404})
    status_statuses = frozenset({200, 401, 404})
    void_statuses = frozenset({200, 400, 401, 404})

    # -- client side (the gateway) -----------------------------------------------------
    def client_auth_headers(self, secret: str) -> dict[str, str]:
        """What the gateway adds to every call when its endpoint has an API key."""
        return {"Authorization": f"Bearer {secret}"}

    def charge_call(self, request: ChargeRequest) -> HttpCall:
        fields = [
            ("amount", str(request.amount)), ("currency", request.currency.lower()),
            ("confirm", "true"), ("capture_method", "automatic"),
            ("metadata[payment_id]", request.payment_id),
            ("metadata[paystab_attempt]", request.idempotency_key),
            ("payment_method_data[type]", "card" if request.method == "card"
             else request.wallet_brand or request.method),
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
            fields.append(("metadata[customer_id]", request.customer_id))
        headers = {"Content-Type": FORM_CT, "Idempotency-Key": request.idempotency_key,
                   "Stripe-Version": API_VERSION}
        return HttpCall("POST", "/v1/payment_intents", headers, urlencode(fields).encode())

    def status_call(self, idempotency_key: str) -> HttpCall:
        escaped = idempotency_key.replace("\\", "\\\\").replace("'", "\\'")
        query = quote(f"metadata['paystab_attempt']:'{escaped}'", safe="")
        return HttpCall("GET", f"/v1/payment_intents/search?query={query}",
                        {"Stripe-Version": API_VERSION})

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        fields = [("reason", "duplicate"), ("metadata[paystab_attempt]", idempotency_key)]
        if provider_ref:
            fields.insert(0, ("payment_intent", provider_ref))
        headers = {"Content-Type": FORM_CT, "Idempotency-Key": f"void-{idempotency_key}",
                   "Stripe-Version": API_VERSION}
        return HttpCall("POST", "/v1/refunds", headers, urlencode(fields).encode())

    def refund_call(self, idempotency_key: str) -> HttpCall:
        """Stripe refunds by PaymentIntent id only: without it the answer is a 400."""
        return self.void_call(idempotency_key, None)

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 200:
            return _intent_answer(doc)
        err = doc["error"]
        if status == 402:
            decline = err.get("decline_code") or err.get("code")
            ref = (err.get("payment_intent") or {}).get("id")
            return ProviderAnswer(UNIFIED_BY_DECLINE.get(decline, "declined.do_not_honor"),
                                  ref, f"{err.get('code')}/{decline}")
        if status == 400 and err.get("type") == "invalid_request_error":
            code = ("declined.not_supported" if err.get("param") == "type"
                    else "declined.invalid_data")
            return ProviderAnswer(code, None, str(err.get("code")))
        return ProviderAnswer(UNKNOWN, None, f"{err.get('type')}/{err.get('code')}")

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status != 200:
            return ProviderAnswer(UNKNOWN, None, str(doc["error"].get("code")))
        found = doc["data"]
        if not found:
            return ProviderAnswer(LOOKUP_NOT_FOUND, None, "no such payment_intent")
        return _intent_answer(found[0])

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 200:
            ref = doc["payment_intent"]
            return ProviderAnswer(VOIDED if doc["status"] == "succeeded" else UNKNOWN, ref,
                                  f"refund {doc['status']}")
        err = doc["error"]
        if status == 404 and err.get("code") == "resource_missing":
            return ProviderAnswer(LOOKUP_NOT_FOUND, None, "resource_missing")
        if status == 400 and err.get("code") == "charge_already_refunded":
            return ProviderAnswer(VOIDED, (err.get("payment_intent") or {}).get("id"),
                                  "charge_already_refunded")
        if status == 400 and isinstance(err.get("payment_intent"), dict):
            return _intent_answer(err["payment_intent"])
        return ProviderAnswer(UNKNOWN, None, f"{err.get('type')}/{err.get('code')}")

    # -- server side (the simulator) ---------------------------------------------------
    def new_state(self, host: RouteHost) -> StripeState:
        return StripeState(host)

    def authenticate(self, call: InboundCall) -> HttpReply | None:
        header = call.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return error(401, "invalid_request_error",
                         "You did not provide an API key. You need to provide your API key in "
                         "the Authorization header, using Bearer auth (e.g. 'Authorization: "
                         "Bearer YOUR_SECRET_KEY').")
        given = given.strip()
        expected = call.secret or DEFAULT_SECRET_KEY
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return _invalid_key(given)

    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        return None  # routed: see ROUTES

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        raise ValueError("the stripe dialect is routed; see ROUTES")

    def provider_ref(self, serial: int) -> str:
        return f"pi_{scramble(serial):024x}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        return reply(200, {"id": outcome.provider_ref, "object": "payment_intent",
                           "amount": outcome.amount, "currency": outcome.currency.lower(),
                           "status": "succeeded", "metadata": {"payment_id": outcome.payment_id}})

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        return self.render_charge(outcome) if outcome else self.render_no_route("GET", "")

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        return self.render_status(outcome)

    def render_no_route(self, method: str, path: str) -> HttpReply:
        target = path.partition("?")[0]
        return error(404, "invalid_request_error",
                     f"Unrecognized request URL ({method}: {target}). Please see "
                     "https://stripe.com/docs or we can help at https://support.stripe.com/.")

    def render_bad_request(self, reason: str) -> HttpReply:
        return error(400, "invalid_request_error", reason)

    def server_error(self) -> HttpReply:
        return error(500, "api_error", "An unknown error occurred", "internal_server_error")

    def rate_limited(self) -> HttpReply:
        answer = error(429, "invalid_request_error",
                       "Request rate limit exceeded. Learn more about rate limits here "
                       "https://stripe.com/docs/rate-limits.", "rate_limit")
        return HttpReply(answer.status, answer.content_type, answer.body,
                         {**answer.headers, "Retry-After": "1"})


def _invalid_key(given: str) -> HttpReply:
    answer = error(401, "invalid_request_error", f"Invalid API Key provided: {redact_key(given)}")
    return HttpReply(answer.status, answer.content_type, answer.body,
                     {**answer.headers, "WWW-Authenticate": 'Bearer realm="Stripe"'})


def _intent_answer(intent: dict[str, Any]) -> ProviderAnswer:
    state = intent["status"]
    ref = intent["id"]
    if state == "succeeded":
        code = "approved"
    elif state in ("processing", "requires_capture"):
        code = "pending"
    elif state == "canceled":
        code = VOIDED
    elif state == "requires_payment_method" and intent.get("last_payment_error"):
        failure = intent["last_payment_error"]
        decline = failure.get("decline_code") or failure.get("code")
        code = UNIFIED_BY_DECLINE.get(decline, "declined.do_not_honor")
    else:
        code = UNKNOWN
    return ProviderAnswer(code, ref, state)
