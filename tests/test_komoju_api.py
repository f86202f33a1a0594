"""KOMOJU's API, as its documentation describes it, against the ``komoju`` simulator.

KOMOJU publishes no official Python SDK on PyPI, so these tests speak plain HTTP with
``requests`` (as a shop without an SDK would), over HTTPS with the simulator's CA: cards,
the documented test cards and the ``Komoju-Scenario`` header, idempotency, manual capture,
refund, cancel, konbini and bank transfer completed later by a signed ``payment.captured``
webhook, sessions (create, show, pay), the wrong-key refusal, runtime faults, fail-first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from paystab.stack.dialects.komoju import TEST_CARDS
from paystab.stack.providers import read_ledger
from tests.conftest_providers import universal_spec
from tests.psp_sim_thread import SimThread

NAME = "t-komoju"


class Komoju:
    """A tiny KOMOJU client: Basic auth with the secret key, JSON, the CA file."""

    def __init__(self, endpoint: Any, secret_key: str | None = None) -> None:
        self.base = f"{endpoint.url}/api/v1"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.auth = (secret_key or endpoint.api_key, "")
        self.session.verify = endpoint.ca_file or True

    def post(self, path: str, body: dict[str, Any] | None = None,
             **headers: str) -> requests.Response:
        return self.session.post(self.base + path, json=body or {}, timeout=10,
                                 headers={k.replace("_", "-"): v for k, v in headers.items()})

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base + path, timeout=10)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    spec = replace(universal_spec("komoju"), async_completion_s=0.3)
    with SimThread([spec], tmp_path_factory.mktemp("komoju")) as thread:
        yield thread


def _endpoint(sim: SimThread) -> Any:
    assert sim.running is not None
    return sim.running.endpoints[NAME]


def api(sim: SimThread, secret_key: str | None = None) -> Komoju:
    return Komoju(_endpoint(sim), secret_key)


def card(number: str = "4111111111111111", **extra: Any) -> dict[str, Any]:
    return {"amount": 1500, "currency": "JPY", "external_order_num": extra.pop("order", "o-1"),
            "payment_details": {"type": "credit_card", "number": number, "month": "12",
                                "year": "30", "verification_value": "123",
                                "name": "Taro Yamada"}, **extra}


def _ledger(sim: SimThread) -> dict[str, str]:
    return {r.provider_ref: r.status for r in read_ledger(_endpoint(sim).ledger)}


def _events(sim: SimThread, payment_id: str, event: str) -> list[Any]:
    def matching(seen: list[Any]) -> list[Any]:
        return [h for h in seen if h.headers.get("X-Komoju-Event") == event
                and json.loads(h.body)["data"]["id"] == payment_id]

    sim.wait_webhooks(lambda seen: bool(matching(seen)))
    return matching(sim.webhooks)


def test_card_payment_captured_over_https(sim: SimThread) -> None:
    assert _endpoint(sim).url.startswith("https://")
    response = api(sim).post("/payments", card(order="o-card"))
    assert response.status_code == 200
    payment = response.json()
    assert payment["resource"] == "payment" and payment["status"] == "captured"
    assert payment["payment_details"]["last_four_digits"] == "1111"
    assert "4111111111111111" not in response.text
    shown = api(sim).get(f"/payments/{payment['id']}").json()
    assert shown["status"] == "captured" and shown["external_order_num"] == "o-card"
    assert _ledger(sim)[payment["id"]] == "captured"


@pytest.mark.parametrize(("number", "code"), sorted(TEST_CARDS.items()))
def test_documented_test_cards(sim: SimThread, number: str, code: str) -> None:
    response = api(sim).post("/payments", card(number, order=f"o-{number}"))
    assert response.status_code == 402
    assert response.json()["error"]["code"] == code


def test_scenario_header_on_payments_and_sessions(sim: SimThread) -> None:
    failed = api(sim).post("/payments", card(order="o-scn"),
                           Komoju_Scenario="insufficient_funds")
    assert (failed.status_code, failed.json()["error"]["code"]) == (402, "insufficient_funds")
    session = api(sim).post("/sessions", {"amount": 2000, "currency": "JPY",
                                          "return_url": "https://shop.example/back"},
                            Komoju_Scenario="card_declined").json()
    paid = api(sim).post(f"/sessions/{session['id']}/pay",
                         {"payment_details": card()["payment_details"]})
    assert (paid.status_code, paid.json()["error"]["code"]) == (402, "card_declined")


def test_session_create_show_pay(sim: SimThread) -> None:
    session = api(sim).post("/sessions", {"amount": 2500, "currency": "JPY",
                                          "external_order_num": "o-session",
                                          "return_url": "https://shop.example/back"}).json()
    assert session["resource"] == "session" and session["status"] == "pending"
    paid = api(sim).post(f"/sessions/{session['id']}/pay",
                         {"payment_details": card()["payment_details"]}).json()
    assert paid["status"] == "completed" and paid["payment"]["status"] == "captured"
    shown = api(sim).get(f"/sessions/{session['id']}").json()
    assert shown["status"] == "completed"
    assert shown["payment"]["id"] == paid["payment"]["id"]
    again = api(sim).post(f"/sessions/{session['id']}/pay",
                          {"payment_details": card()["payment_details"]}).json()
    assert again["payment"]["id"] == paid["payment"]["id"]  # one payment per session


def test_idempotency_header(sim: SimThread) -> None:
    first = api(sim).post("/payments", card(order="o-idem"), X_KOMOJU_IDEMPOTENCY="idem-1")
    again = api(sim).post("/payments", card(order="o-idem"), X_KOMOJU_IDEMPOTENCY="idem-1")
    assert again.json()["id"] == first.json()["id"]
    other = api(sim).post("/payments", card(order="o-other"), X_KOMOJU_IDEMPOTENCY="idem-1")
    assert other.status_code == 409


def test_manual_capture_refund_and_cancel(sim: SimThread) -> None:
    held = api(sim).post("/payments", card(order="o-hold", capture=False)).json()
    assert held["status"] == "authorized"
    assert _ledger(sim)[held["id"]] == "pending"
    captured = api(sim).post(f"/payments/{held['id']}/capture").json()
    assert captured["status"] == "captured"
    refunded = api(sim).post(f"/payments/{held['id']}/refund").json()
    assert refunded["status"] == "refunded"
    assert _ledger(sim)[held["id"]] == "refunded"
    assert api(sim).post(f"/payments/{held['id']}/refund").status_code == 422
    second = api(sim).post("/payments", card(order="o-hold2", capture=False)).json()
    cancelled = api(sim).post(f"/payments/{second['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert _ledger(sim)[second["id"]] == "voided"
    assert api(sim).get("/payments/nosuchpayment").status_code == 404


@pytest.mark.parametrize("details", [
    {"type": "konbini", "store": "family-mart", "email": "a@example.com"},
    {"type": "bank_transfer", "email": "a@example.com", "family_name": "Yamada",
     "given_name": "Taro", "phone": "0312345678"},
], ids=["konbini", "bank_transfer"])
def test_async_methods_complete_by_signed_webhook(sim: SimThread,
                                                  details: dict[str, Any]) -> None:
    created = api(sim).post("/payments", {"amount": 3000, "currency": "JPY",
                                          "external_order_num": f"o-{details['type']}",
                                          "payment_details": details}).json()
    assert created["status"] == "authorized" and created["payment_deadline"]
    (hook,) = _events(sim, created["id"], "payment.captured")[:1]
    secret = _endpoint(sim).webhook_secret
    expected = hmac.new(secret.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Komoju-Signature"] == expected
    assert json.loads(hook.body)["type"] == "payment.captured"
    assert api(sim).get(f"/payments/{created['id']}").json()["status"] == "captured"
    assert _ledger(sim)[created["id"]] == "captured"


def test_cancelled_konbini_never_completes(sim: SimThread) -> None:
    created = api(sim).post("/payments", {"amount": 800, "currency": "JPY",
                                          "payment_details": {"type": "konbini",
                                                              "store": "lawson",
                                                              "email": "b@example.com"}}).json()
    assert api(sim).post(f"/payments/{created['id']}/cancel").json()["status"] == "cancelled"
    (hook,) = _events(sim, created["id"], "payment.cancelled")[:1]
    assert json.loads(hook.body)["data"]["status"] == "cancelled"
    assert _ledger(sim)[created["id"]] == "voided"


def test_wrong_secret_key_refused(sim: SimThread) -> None:
    response = api(sim, "sk_test_wrong").post("/payments", card(order="o-auth"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_faults_and_fail_first(sim: SimThread) -> None:
    provider = sim.running.providers[NAME]  # type: ignore[union-attr]
    fault = sim.call(lambda: provider.faults.add({"type": "error_burst"}, 0.0))
    try:
        response = api(sim).post("/payments", card(order="o-burst"))
    finally:
        sim.call(lambda: provider.faults.remove(fault.id))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_server_error"
    body = card(order="o-flaky", metadata={"paystab_fail_times": "1:rate_limited"})
    first = api(sim).post("/payments", body, X_KOMOJU_IDEMPOTENCY="flaky")
    assert first.status_code == 429 and first.headers.get("Retry-After")
    assert api(sim).post("/payments", body, X_KOMOJU_IDEMPOTENCY="flaky").status_code == 200


def test_webhook_faults_drop_and_reorder(sim: SimThread) -> None:
    provider = sim.running.providers[NAME]  # type: ignore[union-attr]
    dropped = sim.call(lambda: provider.faults.add({"type": "webhook_drop"}, 0.0))
    try:
        lost = api(sim).post("/payments", card(order="o-hook-drop")).json()
    finally:
        sim.call(lambda: provider.faults.remove(dropped.id))
    held = sim.call(lambda: provider.faults.add({"type": "webhook_reorder",
                                                 "window_ms": 300}, 0.0))
    try:
        first = api(sim).post("/payments", card(order="o-hook-1")).json()
        second = api(sim).post("/payments", card(order="o-hook-2")).json()
        ids = (first["id"], second["id"])
        seen = sim.wait_webhooks(lambda hooks: {json.loads(h.body)["data"]["id"]
                                                for h in hooks} >= set(ids))
    finally:
        sim.call(lambda: provider.faults.remove(held.id))
    order = [json.loads(h.body)["data"]["id"] for h in seen
             if json.loads(h.body)["data"]["id"] in ids]
    assert order == [second["id"], first["id"]]  # held, then delivered newest first
    assert lost["id"] not in {json.loads(h.body)["data"]["id"] for h in sim.webhooks}


def test_decline_mix_and_latency_model_apply(tmp_path: Any) -> None:
    from paystab.stack.catalog import LatencyModel

    spec = replace(universal_spec("komoju"), latency=LatencyModel(60.0, 0.01, 100.0),
                   decline_mix={"declined.insufficient_funds": 1.0})
    with SimThread([spec], tmp_path) as thread:
        client = api(thread)
        started = time.monotonic()
        declined = client.post("/payments", card(order="o-mix"))
        assert time.monotonic() - started >= 0.05  # the provider's service time
        assert (declined.status_code, declined.json()["error"]["code"]) == (
            402, "insufficient_funds")
        slip = client.post("/payments", {"amount": 500, "currency": "JPY", "payment_details": {
            "type": "konbini", "store": "lawson", "email": "c@example.com"}})
        assert slip.status_code == 402  # the mix applies to every method it is given for
