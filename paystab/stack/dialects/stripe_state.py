"""What one simulated Stripe account remembers: its objects, idempotent results and events.

One :class:`StripeState` per provider (``StripeDialect.new_state``). It holds the Stripe
objects by id (PaymentIntents, PaymentMethods, Customers, Refunds, WebhookEndpoints) as the
JSON documents the API returns, the idempotency cache (a POST's first answer, replayed for
the same key with the same parameters), and turns object changes into events handed to
the shared webhook sender (``stack/webhooks.py``), signed the way ``stripe.Webhook.
construct_event`` verifies.

The Search API the gateway looks a charge up with (``metadata['paystab_attempt']:'KEY'``)
reads an index of metadata values, not every PaymentIntent: scanning them all made a look-up
cost O(intents) — 60-100 ms of the simulator's CPU at 30k — and a capacity search, whose
overloaded steps time out and look up thousands of attempts, made each later search slower
than the one before (300 -> 200 -> 169 payments/s on one stack). Likewise the charge book's
changes find their PaymentIntent through a reverse map of keys.

Money never moves here: confirmations, captures, cancels and refunds go through the charge
book, and the provider ledger stays the ground truth. The objects live in memory; after a
restart a PaymentIntent that was charged is rebuilt from the ledger (amount, currency,
status) when asked for. Card numbers are kept only in memory, on the PaymentMethod they
were given for, and never in a document, an event or a log.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paystab.stack.dialects.base import Card, HttpReply
from paystab.stack.dialects.stripe_wire import (
    API_VERSION,
    dumps,
    new_id,
    new_secret,
    sign_webhook,
)
from paystab.stack.webhooks import WebhookTarget

if TYPE_CHECKING:
    from paystab.stack.dialects.routes import RouteHost
    from paystab.stack.providers.book import ChargeRecord

_MAX_IDEMPOTENT = 50_000  # results kept for replay (Stripe keeps them 24 h)
# Objects kept in memory per kind; older PaymentIntents are rebuilt from the ledger.
_MAX_OBJECTS = 50_000


@dataclass(slots=True)
class IdempotentResult:
    fingerprint: str
    reply: HttpReply


@dataclass
class StripeState:
    """One Stripe account's objects; see the module docstring."""

    host: RouteHost
    intents: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    intent_keys: dict[str, str] = field(default_factory=dict)  # pi id → charge-book key
    confirmations: dict[str, int] = field(default_factory=dict)  # pi id → attempts so far
    charges: dict[str, str] = field(default_factory=dict)  # ch id → pi id
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    cards: dict[str, Card] = field(default_factory=dict)  # pm id → card (memory only)
    customers: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    refunds: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)  # if listened
    idempotent: OrderedDict[str, IdempotentResult] = field(default_factory=OrderedDict)
    inflight: dict[str, tuple[str, asyncio.Future[HttpReply | None]]] = field(default_factory=dict)
    # (metadata key, value) -> ids of the intents that had it (a superset: a search checks
    # every candidate's current metadata); which pairs each intent was indexed under; the
    # intents' order (newest first in a search, as in a scan of ``intents``)
    _by_metadata: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _indexed: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _order: dict[str, int] = field(default_factory=dict)
    _intent_of_key: dict[str, str] = field(default_factory=dict)  # charge-book key -> pi id
    _serial: int = 0

    def __post_init__(self) -> None:
        self.host.book.on_change.append(self._book_changed)

    # -- intents and their indexes -----------------------------------------------------
    def add_intent(self, doc: dict[str, Any]) -> None:
        self.intents[doc["id"]] = doc
        if doc["id"] not in self._order:
            self._serial += 1
            self._order[doc["id"]] = self._serial
        self.index_metadata(doc)
        while len(self.intents) > _MAX_OBJECTS:
            old_id, _ = self.intents.popitem(last=False)
            self.confirmations.pop(old_id, None)
            self._forget(old_id)  # intent() finds it again in the book

    def set_intent_key(self, intent_id: str, key: str) -> None:
        """Link a PaymentIntent to its charge-book key (both ways)."""
        self.intent_keys[intent_id] = key
        self._intent_of_key[key] = intent_id

    def index_metadata(self, doc: dict[str, Any]) -> None:
        """Index ``doc``'s current metadata values for the Search API (call after a change)."""
        intent_id = doc["id"]
        pairs = self._indexed.setdefault(intent_id, [])
        for name, value in (doc.get("metadata") or {}).items():
            pair = (str(name), value)
            if isinstance(value, str) and pair not in pairs:
                pairs.append(pair)
                self._by_metadata.setdefault(pair, []).append(intent_id)

    def search_candidates(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Newest first, the intents that may have every metadata ``(key, value)`` of
        ``pairs`` (the caller checks each); O(matches), not O(intents)."""
        shortest: list[str] = min((self._by_metadata.get(pair, []) for pair in pairs), key=len)
        ids = set(shortest)
        docs = [doc for doc in map(self.intents.get, ids) if doc is not None]
        docs.sort(key=lambda doc: self._order.get(doc["id"], 0), reverse=True)
        return docs

    def _forget(self, intent_id: str) -> None:
        key = self.intent_keys.pop(intent_id, None)
        if key is not None and self._intent_of_key.get(key) == intent_id:
            del self._intent_of_key[key]
        self._order.pop(intent_id, None)
        for pair in self._indexed.pop(intent_id, ()):
            ids = self._by_metadata.get(pair)
            if ids is not None:
                ids.remove(intent_id)
                if not ids:
                    del self._by_metadata[pair]

    # -- idempotency -------------------------------------------------------------------

    def remember(self, key: str, fingerprint: str, reply: HttpReply) -> None:
        self.idempotent[key] = IdempotentResult(fingerprint, reply)
        while len(self.idempotent) > _MAX_IDEMPOTENT:
            self.idempotent.popitem(last=False)

    # -- objects -----------------------------------------------------------------------
    def intent(self, intent_id: str) -> dict[str, Any] | None:
        """The PaymentIntent ``intent_id``, rebuilt from the ledger after a restart."""
        found = self.intents.get(intent_id)
        if found is not None:
            return found
        key = self.host.book.key_of(intent_id)
        record = self.host.book.record(key) if key else None
        if record is None or key is None:
            return None
        doc = new_intent(intent_id, record.amount, record.currency, {})
        doc["metadata"] = {"payment_id": record.payment_id}
        self.add_intent(doc)
        self.set_intent_key(intent_id, key)
        apply_record(doc, record.status, record.decision)
        return doc

    def add_endpoint(self, url: str, events: list[str], secret: str | None = None
                     ) -> dict[str, Any]:
        endpoint_id = new_id("we")
        secret = secret or new_secret("whsec")
        doc = {"id": endpoint_id, "object": "webhook_endpoint", "url": url,
               "enabled_events": events, "status": "enabled", "api_version": API_VERSION,
               "created": int(time.time()), "livemode": False, "secret": secret,
               "metadata": {}}
        webhooks = self.host.webhooks
        assert webhooks is not None
        webhooks.add_target(WebhookTarget(endpoint_id, url, secret, frozenset(events)))
        self.endpoints[endpoint_id] = doc
        return doc

    @property
    def listening(self) -> bool:
        """Whether a webhook endpoint is registered (else events are not even built)."""
        return self.host.webhooks is not None and bool(self.host.webhooks.targets)

    def emit(self, event_type: str, obj: dict[str, Any],
             idempotency_key: str | None = None) -> None:
        """Record an event and hand it to the webhook sender (if anyone listens)."""
        webhooks = self.host.webhooks
        if webhooks is None or not webhooks.targets:
            return  # nobody would receive it: do not pay for it on the hot path
        event_id = new_id("evt")
        event: dict[str, Any] = {
            "id": event_id, "object": "event", "api_version": API_VERSION,
            "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
            "type": event_type, "data": {"object": dict(obj)},
            "request": {"id": None, "idempotency_key": idempotency_key},
        }
        self.events[event_id] = event
        while len(self.events) > _MAX_OBJECTS:
            self.events.popitem(last=False)
        if webhooks.wants(event_type):
            webhooks.send(event_type, event_id, dumps(event), sign_webhook)

    def _book_changed(self, record: ChargeRecord) -> None:
        """The book completed a konbini slip or let an authorization expire."""
        intent_id = self._intent_of_key.get(record.key)
        doc = self.intents.get(intent_id) if intent_id is not None else None
        if doc is None:
            return
        apply_record(doc, record.status, record.decision)
        kind = ("payment_intent.succeeded" if doc["status"] == "succeeded"
                else "payment_intent.canceled")
        self.emit(kind, doc)


def new_intent(intent_id: str, amount: int, currency: str, form: dict[str, Any]
               ) -> dict[str, Any]:
    metadata = form.get("metadata") or {}
    return {
        "id": intent_id, "object": "payment_intent", "amount": amount,
        "amount_capturable": 0, "amount_received": 0, "application": None,
        "automatic_payment_methods": None, "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": form.get("capture_method", "automatic_async"),
        "client_secret": f"{intent_id}_secret_{new_secret('s')[2:]}",
        "confirmation_method": form.get("confirmation_method", "automatic"),
        "created": int(time.time()), "currency": currency.lower(),
        "customer": form.get("customer"), "description": form.get("description"),
        "last_payment_error": None, "latest_charge": None, "livemode": False,
        "metadata": dict(metadata) if isinstance(metadata, dict) else {},
        "next_action": None, "payment_method": None,
        "payment_method_types": form.get("payment_method_types") or ["card"],
        "receipt_email": form.get("receipt_email"), "setup_future_usage": None,
        "statement_descriptor": form.get("statement_descriptor"),
        "status": "requires_payment_method",
    }


def apply_record(doc: dict[str, Any], status: str, decision: str) -> None:
    """Set a PaymentIntent's status from where the charge book says the money is."""
    amount = doc["amount"]
    if status == "captured":
        doc.update(status="succeeded", amount_received=amount, amount_capturable=0)
    elif status == "pending":
        manual = str(doc.get("capture_method", "")).startswith("manual")
        if manual:
            doc.update(status="requires_capture", amount_capturable=amount)
        else:
            doc.update(status="processing")
    elif status in ("voided",):
        doc.update(status="canceled", amount_capturable=0,
                   canceled_at=doc.get("canceled_at") or int(time.time()),
                   cancellation_reason=doc.get("cancellation_reason") or "automatic")
    elif status == "refunded":
        doc.update(status="succeeded", amount_received=amount)
    else:  # declined
        doc.update(status="requires_payment_method")
