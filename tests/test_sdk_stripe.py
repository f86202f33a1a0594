"""The official stripe SDK against the ``stripe`` simulator, over HTTPS with the local CA.

Only what a shop changes is changed: ``stripe.api_base`` (the provider URL from the ready
endpoint), ``stripe.api_key`` (its ``api_key``) and ``stripe.ca_bundle_path`` (its
``ca_file``). The simulator runs in its own event loop on a thread (the SDK blocks), with a
loopback webhook receiver registered as the provider's webhook endpoint.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from paystab.stack.catalog import CARD_BRANDS, LatencyModel, ProviderSpec
from paystab.stack.dialects.stripe_wire import TEST_DECLINES, TEST_PAYMENT_METHODS
from paystab.stack.endpoints import ProviderEndpoint
from paystab.stack.providers import RunningProviders, read_ledger, start_providers
from tests.conftest import require

try:
    import stripe
except ModuleNotFoundError:  # pragma: no cover - CI installs the test extra
    stripe = None

T = TypeVar("T")
NAME = "card-alpha"
SPEC = ProviderSpec(NAME, "stripe", ("card",), card_brands=CARD_BRANDS, decline_mix={},
                    latency=LatencyModel(median_ms=1.0, sigma=0.1, max_ms=5.0))


class Sim:
    """The simulator's loop on a thread, and the webhooks it delivered."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.data_dir = data_dir
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.running: RunningProviders | None = None
        self._receiver: web.AppRunner | None = None

    def run(self, coro: Any, timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapped() -> T:
            return fn()
        return self.run(wrapped())  # type: ignore[no-any-return]

    def start(self) -> ProviderEndpoint:
        self.thread.start()
        url = self.run(self._start_receiver())
        self.running = self.run(start_providers([SPEC], data_dir=self.data_dir, seed=5,
                                                tls=True, webhook_url=url))
        return self.running.endpoints[NAME]

    async def _start_receiver(self) -> str:
        async def receive(request: web.Request) -> web.Response:
            self.received.append((dict(request.headers), await request.read()))
            return web.Response(text="ok")
        app = web.Application()
        app.router.add_post("/hooks", receive)
        self._receiver = web.AppRunner(app, access_log=None)
        await self._receiver.setup()
        site = web.TCPSite(self._receiver, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._receiver.addresses[0][1]}/hooks"

    def stop(self) -> None:
        if self.running is not None:
            self.run(self.running.stop())
        if self._receiver is not None:
            self.run(self._receiver.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def fault(self, body: dict[str, Any]) -> None:
        assert self.running is not None
        provider = self.running.providers[NAME]
        self.call(lambda: provider.faults.add(body, time.monotonic()))

    def clear_faults(self) -> None:
        assert self.running is not None
        provider = self.running.providers[NAME]
        self.call(provider.faults.clear)

    def events(self, wanted: Callable[[dict[str, Any]], bool], count: int = 1,
               timeout_s: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = [(h, b) for h, b in list(self.received) if wanted(json.loads(b))]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    require("the stripe SDK (pip install stripe)", stripe is not None)
    sim = Sim(tmp_path_factory.mktemp("stripe-sim"))
    try:
        sim.endpoint = sim.start()  # type: ignore[attr-defined]
        yield sim
    finally:
        sim.stop()


@pytest.fixture(autouse=True)
def sdk(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderEndpoint]:
    endpoint: ProviderEndpoint = sim.endpoint  # type: ignore[attr-defined]
    assert endpoint.url.startswith("https://") and endpoint.ca_file and endpoint.api_key
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(stripe, "api_base", endpoint.url)
    monkeypatch.setattr(stripe, "api_key", endpoint.api_key)
    monkeypatch.setattr(stripe, "ca_bundle_path", endpoint.ca_file)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    yield endpoint
    sim.clear_faults()


def _ledger(endpoint: ProviderEndpoint) -> dict[str, str]:
    return {row.provider_ref: row.status for row in read_ledger(endpoint.ledger or "")}


def test_create_confirm_retrieve_list(sdk: ProviderEndpoint) -> None:
    intent = stripe.PaymentIntent.create(amount=1200, currency="jpy", metadata={"order": "7"})
    assert intent.status == "requires_payment_method" and intent.metadata["order"] == "7"
    confirmed = stripe.PaymentIntent.confirm(intent.id, payment_method="pm_card_visa")
    assert confirmed.status == "succeeded" and confirmed.amount_received == 1200
    raw = stripe.PaymentIntent.create(amount=800, currency="usd", confirm=True,
                                      payment_method_data={"type": "card", "card": {
                                          "number": "5555555555554444", "exp_month": 12,
                                          "exp_year": 2034, "cvc": "123"}})
    assert raw.status == "succeeded"
    assert stripe.PaymentIntent.retrieve(intent.id).status == "succeeded"
    listed = stripe.PaymentIntent.list(limit=2)
    assert [i.id for i in listed.data] == [raw.id, intent.id]
    pm = stripe.PaymentMethod.retrieve(raw.payment_method)
    assert pm.card.last4 == "4444" and pm.card.brand == "mastercard"
    customer = stripe.Customer.create(email="shop@example.com")
    with_customer = stripe.PaymentIntent.create(amount=500, currency="jpy",
                                                customer=customer.id,
                                                payment_method="pm_card_jcb", confirm=True)
    assert with_customer.customer == customer.id
    assert stripe.PaymentIntent.list(customer=customer.id).data[0].id == with_customer.id
    ledger = _ledger(sdk)
    assert ledger[intent.id] == ledger[raw.id] == "captured"
    assert "5555555555554444" not in Path(sdk.ledger or "").read_bytes().decode(errors="replace")


def test_idempotent_replay_and_idempotency_error(sdk: ProviderEndpoint) -> None:
    args = {"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": True}
    first = stripe.PaymentIntent.create(**args, idempotency_key="order-42")
    again = stripe.PaymentIntent.create(**args, idempotency_key="order-42")
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert again.last_response.request_id.startswith("req_")
    with pytest.raises(stripe.IdempotencyError) as caught:
        stripe.PaymentIntent.create(**{**args, "amount": 2600}, idempotency_key="order-42")
    assert caught.value.http_status == 400
    assert list(_ledger(sdk)).count(first.id) == 1


@pytest.mark.parametrize("number", sorted(TEST_DECLINES))
def test_documented_test_cards_decline(number: str) -> None:
    code, decline_code, _ = TEST_DECLINES[number]
    pm = stripe.PaymentMethod.create(type="card", card={
        "number": number, "exp_month": 12, "exp_year": 2034, "cvc": "314"})
    with pytest.raises(stripe.CardError) as caught:
        stripe.PaymentIntent.create(amount=1000, currency="usd", payment_method=pm.id,
                                    confirm=True)
    error = caught.value
    assert (error.http_status, error.code, error.error.decline_code) == (402, code,
                                                                         decline_code)
    intent = stripe.PaymentIntent.retrieve(error.error.payment_intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.decline_code == decline_code


def test_test_payment_methods() -> None:
    for pm_id, number in TEST_PAYMENT_METHODS.items():
        if number in TEST_DECLINES:
            with pytest.raises(stripe.CardError) as caught:
                stripe.PaymentIntent.create(amount=300, currency="usd", payment_method=pm_id,
                                            confirm=True)
            assert caught.value.error.decline_code == TEST_DECLINES[number][1], pm_id
        else:
            intent = stripe.PaymentIntent.create(amount=300, currency="usd",
                                                 payment_method=pm_id, confirm=True)
            assert intent.status == "succeeded", pm_id


def test_manual_capture_cancel_and_refund(sdk: ProviderEndpoint) -> None:
    held = stripe.PaymentIntent.create(amount=4000, currency="jpy", payment_method="pm_card_visa",
                                       confirm=True, capture_method="manual")
    assert held.status == "requires_capture" and held.amount_capturable == 4000
    assert _ledger(sdk)[held.id] == "pending"  # promised, not moved
    captured = stripe.PaymentIntent.capture(held.id)
    assert captured.status == "succeeded" and captured.amount_received == 4000
    released = stripe.PaymentIntent.create(amount=900, currency="jpy",
                                           payment_method="pm_card_visa", confirm=True,
                                           capture_method="manual")
    assert stripe.PaymentIntent.cancel(released.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.capture(released.id)
    assert caught.value.code == "payment_intent_unexpected_state"
    refund = stripe.Refund.create(payment_intent=captured.id)
    assert (refund.status, refund.amount) == ("succeeded", 4000)
    with pytest.raises(stripe.InvalidRequestError) as again:
        stripe.Refund.create(payment_intent=captured.id)
    assert again.value.code == "charge_already_refunded"
    ledger = _ledger(sdk)
    assert (ledger[held.id], ledger[released.id]) == ("refunded", "voided")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe.PaymentIntent.retrieve("pi_nope")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"


def test_webhooks_are_signed_for_construct_event(sim: Sim, sdk: ProviderEndpoint) -> None:
    intent = stripe.PaymentIntent.create(amount=700, currency="usd",
                                         payment_method="pm_card_visa", confirm=True)
    stripe.Refund.create(payment_intent=intent.id)

    def about(kind: str) -> Callable[[dict[str, Any]], bool]:
        def check(doc: dict[str, Any]) -> bool:
            obj = doc["data"]["object"]
            return doc["type"] == kind and intent.id in (obj.get("id"), obj.get("payment_intent"))
        return check

    for kind in ("payment_intent.succeeded", "charge.refunded"):
        [(headers, body)] = sim.events(about(kind))
        event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"],
                                               sdk.webhook_secret)
        assert event.type == kind
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body.replace(b"700", b"900"),
                                           headers["Stripe-Signature"], sdk.webhook_secret)
    with pytest.raises(stripe.CardError):
        stripe.PaymentIntent.create(amount=701, currency="usd",
                                    payment_method="pm_card_chargeDeclined", confirm=True)
    assert sim.events(lambda d: d["type"] == "payment_intent.payment_failed"
                      and d["data"]["object"]["amount"] == 701)


def test_webhook_faults_duplicate_and_drop(sim: Sim) -> None:
    sim.fault({"type": "webhook_duplicate", "copies": 1})
    dup = stripe.PaymentIntent.create(amount=1111, currency="usd",
                                      payment_method="pm_card_visa", confirm=True)
    got = sim.events(lambda d: d["type"] == "payment_intent.succeeded"
                     and d["data"]["object"]["id"] == dup.id, count=2)
    assert len(got) == 2 and json.loads(got[0][1])["id"] == json.loads(got[1][1])["id"]
    sim.clear_faults()
    sim.fault({"type": "webhook_drop"})
    dropped = stripe.PaymentIntent.create(amount=1112, currency="usd",
                                          payment_method="pm_card_visa", confirm=True)
    sim.clear_faults()
    marker = stripe.PaymentIntent.create(amount=1113, currency="usd",
                                         payment_method="pm_card_visa", confirm=True)
    assert sim.events(lambda d: d["data"]["object"].get("id") == marker.id)
    assert not [b for _, b in sim.received if dropped.id.encode() in b]


def test_wrong_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_key", "sk_test_not_the_key")
    with pytest.raises(stripe.AuthenticationError) as caught:
        stripe.PaymentIntent.list()
    assert caught.value.http_status == 401
    assert caught.value.error.type == "invalid_request_error"


def test_injected_faults_raise_the_sdk_errors(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.fault({"type": "error_burst", "id": "burst"})
    with pytest.raises(stripe.APIError) as burst:
        stripe.PaymentIntent.create(amount=100, currency="usd", payment_method="pm_card_visa",
                                    confirm=True)
    assert burst.value.http_status == 500
    sim.clear_faults()
    sim.fault({"type": "error_burst", "error": "rate_limited"})
    with pytest.raises(stripe.RateLimitError) as limited:
        stripe.PaymentIntent.list()
    assert limited.value.http_status == 429 and limited.value.headers["Retry-After"] == "1"
    sim.clear_faults()
    # the magic value: the first two attempts fail, the SDK's retries get the third through
    monkeypatch.setattr(stripe, "max_network_retries", 2)
    intent = stripe.PaymentIntent.create(amount=100, currency="usd",
                                         payment_method="pm_card_visa", confirm=True,
                                         metadata={"paystab_fail_times": "2"})
    assert intent.status == "succeeded"
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    with pytest.raises(stripe.APIError):
        stripe.PaymentIntent.create(amount=100, currency="usd", payment_method="pm_card_visa",
                                    confirm=True, metadata={"paystab_fail_times": "1"})


def test_gateway_client_half_charges_looks_up_and_voids(sim: Sim, sdk: ProviderEndpoint) -> None:
    """What the reference gateway does with card-alpha, through its own ProviderClient."""
    import aiohttp

    from paystab.stack.dialects import get_dialect
    from paystab.stack.dialects.base import LOOKUP_NOT_FOUND, VOIDED, Card, ChargeRequest
    from paystab.stack.provider_client import OutcomeUnknown, ProviderClient

    dialect = get_dialect("stripe")

    def charge(key: str, number: str = "4242424242424242") -> ChargeRequest:
        return ChargeRequest(key, f"pay-{key}", 1500, "JPY", "card", "JP",
                             card=Card(number, 12, 2034, "123"))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = ProviderClient(sdk, dialect, session, 2.0)

            async def ask(call: Any) -> Any:
                return await client.send(call, 5.0)

            approved = dialect.parse_charge(*await ask(dialect.charge_call(charge("g-1"))))
            assert approved.code == "approved" and approved.provider_ref
            declined = dialect.parse_charge(*await ask(dialect.charge_call(
                charge("g-2", "4000000000009995"))))
            assert declined.code == "declined.insufficient_funds"
            found = dialect.parse_status(*await ask(dialect.status_call("g-1")))
            assert (found.code, found.provider_ref) == ("approved", approved.provider_ref)
            assert dialect.parse_status(*await ask(dialect.status_call("g-404"))).code == \
                LOOKUP_NOT_FOUND
            quoted = dialect.parse_charge(*await ask(dialect.charge_call(charge("g'5 \\x"))))
            assert dialect.parse_status(*await ask(dialect.status_call("g'5 \\x"))
                                        ).provider_ref == quoted.provider_ref
            voided = dialect.parse_void(*await ask(dialect.void_call("g-1",
                                                                     approved.provider_ref)))
            assert voided.code == VOIDED
            again = dialect.parse_void(*await ask(dialect.void_call("g-1",
                                                                    approved.provider_ref)))
            assert again.code == VOIDED  # voiding twice is harmless
            sim.fault({"type": "drop_response"})
            try:
                await ask(dialect.charge_call(charge("g-3")))
                raise AssertionError("the answer should have been dropped")
            except OutcomeUnknown:
                pass
            sim.clear_faults()
            late = dialect.parse_status(*await ask(dialect.status_call("g-3")))
            assert late.code == "approved"  # charged before the answer was lost
            sim.fault({"type": "error_burst", "error": "rate_limited"})
            limited = dialect.parse_charge(*await ask(dialect.charge_call(charge("g-4"))))
            assert limited.code == "error.rate_limited"

    asyncio.run(scenario())
    ledger = _ledger(sdk)
    assert "refunded" in ledger.values()


def test_webhook_reorder_and_delay(sim: Sim) -> None:
    sim.fault({"type": "webhook_reorder", "window_ms": 400})
    first = stripe.PaymentIntent.create(amount=1201, currency="usd",
                                        payment_method="pm_card_visa", confirm=True)
    second = stripe.PaymentIntent.create(amount=1202, currency="usd",
                                         payment_method="pm_card_visa", confirm=True)
    ids = {first.id, second.id}
    got = sim.events(lambda d: d["type"] == "payment_intent.succeeded"
                     and d["data"]["object"]["id"] in ids, count=2)
    assert [json.loads(b)["data"]["object"]["id"] for _, b in got] == [second.id, first.id]
    sim.clear_faults()
    sim.fault({"type": "webhook_delay", "added_ms": 300})
    sent = time.monotonic()
    late = stripe.PaymentIntent.create(amount=1203, currency="usd",
                                       payment_method="pm_card_visa", confirm=True)
    assert sim.events(lambda d: d["data"]["object"].get("id") == late.id)
    assert time.monotonic() - sent >= 0.3  # behaviour, not timing: it cannot come earlier


def test_bracket_notation_forms() -> None:
    from urllib.parse import urlencode

    from paystab.stack.dialects.stripe_wire import decode_form

    body = urlencode({"amount": "5", "metadata[order id]": "a b&c=d", "expand[0]": "x",
                      "expand[1]": "y", "tags[]": "t", "pmd[card][number]": "4242"}).encode()
    assert decode_form(body) == {"amount": "5", "metadata": {"order id": "a b&c=d"},
                                 "expand": ["x", "y"], "tags": ["t"],
                                 "pmd": {"card": {"number": "4242"}}}
    assert decode_form(b"") == {}
    for bad in (b"novalue", b"\xff=1", b"a=1&a[b]=2"):
        with pytest.raises(ValueError):
            decode_form(bad)


def test_search_by_metadata_reads_an_index_not_every_intent(
        sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway looks every timed-out attempt up with the Search API. Scanning every
    PaymentIntent made a look-up O(intents) and a capacity search fall run after run on one
    stack (300 -> 200 -> 169 payments/s): a metadata search now checks its matches only, with
    Stripe's semantics kept — newest first, current metadata, AND with status."""
    from paystab.stack.dialects import stripe_server
    from paystab.stack.dialects.stripe_state import StripeState, new_intent

    assert sim.running is not None
    state = sim.running.providers[NAME].state
    assert isinstance(state, StripeState)

    def fill() -> None:  # 2,000 intents of other payments, made in-process (fast)
        for i in range(2000):
            state.add_intent(new_intent(f"pi_filler{i}", 100, "usd",
                                        {"metadata": {"paystab_attempt": f"filler-{i}"}}))
    sim.call(fill)
    first = stripe.PaymentIntent.create(amount=100, currency="usd", payment_method="pm_card_visa",
                                        confirm=True, metadata={"order_id": "o-search"})
    second = stripe.PaymentIntent.create(amount=200, currency="usd", payment_method="pm_card_visa",
                                         metadata={"order_id": "o-search"})
    moved = stripe.PaymentIntent.create(amount=300, currency="usd", metadata={"order_id": "o-old"})
    stripe.PaymentIntent.modify(moved.id, metadata={"order_id": "o-search"})
    checked: list[str] = []
    field = stripe_server._field

    def counting(doc: dict[str, Any], name: str) -> object:
        checked.append(doc["id"])
        return field(doc, name)

    monkeypatch.setattr(stripe_server, "_field", counting)
    found = stripe.PaymentIntent.search(query="metadata['order_id']:'o-search'")
    assert [i.id for i in found.data] == [moved.id, second.id, first.id]  # newest first
    assert set(checked) == {moved.id, second.id, first.id}  # not the 2,000 others
    assert stripe.PaymentIntent.search(query="metadata['order_id']:'o-old'").data == []
    both = stripe.PaymentIntent.search(
        query="metadata['order_id']:'o-search' AND status:'succeeded'")
    assert [i.id for i in both.data] == [first.id]
    by_key = stripe.PaymentIntent.search(query="metadata['paystab_attempt']:'filler-7'")
    assert [i.id for i in by_key.data] == ["pi_filler7"]
