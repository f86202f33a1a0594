"""The official Adyen Python SDK (PyPI ``Adyen``) against the ``adyen`` simulator.

Nothing in the SDK is changed but the base URL (``service.baseUrl``), the API key and the
CA file (``REQUESTS_CA_BUNDLE``, the simulator's local CA when it serves HTTPS): payments on
every version prefix, idempotent replay, every documented test refusal as the SDK returns
it, manual capture, cancel, refund, reversal, /payments/details after a redirect,
/paymentMethods, the wrong-key refusal, runtime faults, and standard notifications that
``Adyen.util.is_valid_hmac_notification`` accepts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from paystab.stack.dialects.adyen import VERSIONS
from paystab.stack.dialects.adyen_codes import REFUSALS
from paystab.stack.providers import read_ledger
from tests.conftest_providers import universal_spec
from tests.psp_sim_thread import SimThread

Adyen = pytest.importorskip("Adyen") if os.environ.get("CI") != "true" else __import__("Adyen")
from Adyen import util  # noqa: E402
from Adyen.exceptions import (  # noqa: E402
    AdyenAPIAuthenticationError,
    AdyenAPIResponseError,
    AdyenAPIUnprocessableEntity,
)

NAME = "t-adyen"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    spec = replace(universal_spec("adyen"), async_completion_s=0.3)
    with SimThread([spec], tmp_path_factory.mktemp("adyen")) as thread:
        endpoint = thread.running.endpoints[NAME]  # type: ignore[union-attr]
        saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "NO_PROXY")}
        if endpoint.ca_file:
            os.environ["REQUESTS_CA_BUNDLE"] = endpoint.ca_file
        os.environ["NO_PROXY"] = "127.0.0.1,localhost"
        try:
            yield thread
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _endpoint(sim: SimThread) -> Any:
    assert sim.running is not None
    return sim.running.endpoints[NAME]


def client(sim: SimThread, version: str = "v72", api_key: str | None = None) -> Any:
    """An SDK client pointed at the simulator: base URL and key, nothing else."""
    endpoint = _endpoint(sim)
    adyen = Adyen.Adyen()
    adyen.client.xapikey = api_key or endpoint.api_key
    adyen.client.platform = "test"
    for api in (adyen.checkout.payments_api, adyen.checkout.modifications_api):
        api.baseUrl = f"{endpoint.url}/{version}"
    return adyen


def card_payment(reference: str, holder: str = "John Smith", **extra: Any) -> dict[str, Any]:
    return {
        "merchantAccount": "ShopECOM", "reference": reference,
        "amount": {"value": 1250, "currency": "EUR"}, "countryCode": "NL",
        "paymentMethod": {"type": "scheme", "encryptedCardNumber": "test_4111111111111111",
                          "encryptedExpiryMonth": "test_03", "encryptedExpiryYear": "test_2030",
                          "encryptedSecurityCode": "test_737", "holderName": holder},
        **extra,
    }


def _ledger(sim: SimThread) -> dict[str, str]:
    path = _endpoint(sim).ledger
    return {r.provider_ref: r.status for r in read_ledger(path)}


def _notifications(sim: SimThread, psp: str, event: str) -> list[dict[str, Any]]:
    def matching(seen: list[Any]) -> list[dict[str, Any]]:
        out = []
        for hook in seen:
            doc = json.loads(hook.body)
            item = doc["notificationItems"][0]["NotificationRequestItem"]
            if event == item["eventCode"] and psp in (item["pspReference"],
                                                      item.get("originalReference")):
                out.append(doc)
        return out

    sim.wait_webhooks(lambda seen: bool(matching(seen)))
    return matching(sim.webhooks)


def test_served_over_https_with_the_ready_files_ca(sim: SimThread) -> None:
    endpoint = _endpoint(sim)
    assert endpoint.url.startswith("https://") == bool(endpoint.ca_file)
    assert sim.tls, "the runner serves HTTPS (paystab provider --tls)"
    assert endpoint.url.startswith("https://")


@pytest.mark.parametrize("version", VERSIONS)
def test_authorised_on_every_version(sim: SimThread, version: str) -> None:
    result = client(sim, version).checkout.payments_api.payments(
        card_payment(f"order-{version}"), idempotency_key=f"auth-{version}")
    assert result.status_code == 200
    assert result.message["resultCode"] == "Authorised"
    assert len(result.psp) == 16 and result.message["merchantReference"] == f"order-{version}"
    assert _ledger(sim)[result.psp] == "captured"


def test_unknown_version_is_adyens_404(sim: SimThread) -> None:
    with pytest.raises(AdyenAPIResponseError) as caught:
        client(sim, "v60").checkout.payments_api.payments(card_payment("order-v60"))
    assert caught.value.status_code == 404


def test_idempotency_key_replays_and_is_optional(sim: SimThread) -> None:
    api = client(sim).checkout.payments_api
    first = api.payments(card_payment("order-idem"), idempotency_key="idem-1")
    again = api.payments(card_payment("order-idem"), idempotency_key="idem-1")
    assert again.psp == first.psp and again.message == first.message
    keyless = [api.payments(card_payment("order-nokey")).psp for _ in range(2)]
    assert len(set(keyless)) == 2  # no key: two payments, as at Adyen
    with pytest.raises(AdyenAPIUnprocessableEntity) as caught:
        api.payments(card_payment("another-order"), idempotency_key="idem-1")
    assert caught.value.error_code == "704"


@pytest.mark.parametrize("refusal", [r for r in REFUSALS if r.result != "Authorised"],
                         ids=lambda r: r.trigger)
def test_documented_test_refusals(sim: SimThread, refusal: Any) -> None:
    api = client(sim).checkout.payments_api
    by_name = api.payments(card_payment(f"order-{refusal.trigger}", refusal.trigger))
    assert by_name.status_code == 200
    doc = by_name.message
    assert (doc["resultCode"], doc["refusalReason"], doc["refusalReasonCode"]) == (
        refusal.result, refusal.reason, refusal.code)
    by_code = api.payments(card_payment(f"order-c{refusal.code}", additionalData={
        "RequestedTestAcquirerResponseCode": refusal.code}))
    assert by_code.message["refusalReasonCode"] == refusal.code
    assert _ledger(sim)[by_name.psp] == "declined"


def test_manual_capture_then_refund_with_signed_notifications(sim: SimThread) -> None:
    adyen = client(sim)
    auth = adyen.checkout.payments_api.payments(card_payment(
        "order-capture", additionalData={"manualCapture": "true"}), idempotency_key="cap-1")
    assert auth.message["resultCode"] == "Authorised"
    psp = auth.psp
    assert _ledger(sim)[psp] == "pending"  # authorised, not captured
    amount = {"value": 1250, "currency": "EUR"}
    modify = adyen.checkout.modifications_api
    captured = modify.capture_authorised_payment(
        {"merchantAccount": "ShopECOM", "amount": amount, "reference": "cap"}, psp)
    assert captured.status_code == 201 and captured.message["status"] == "received"
    assert captured.message["paymentPspReference"] == psp
    assert _ledger(sim)[psp] == "captured"
    refunded = modify.refund_captured_payment({"merchantAccount": "ShopECOM",
                                               "amount": amount}, psp)
    assert refunded.message["status"] == "received"
    assert _ledger(sim)[psp] == "refunded"
    key = _endpoint(sim).webhook_secret
    assert key, "the ready file names the notification HMAC key"
    for event in ("AUTHORISATION", "CAPTURE", "REFUND"):
        (doc,) = _notifications(sim, psp, event)[:1]
        item = doc["notificationItems"][0]["NotificationRequestItem"]
        assert item["success"] == "true"
        assert util.is_valid_hmac_notification(doc, key)
        assert not util.is_valid_hmac_notification(doc, "00" * 32)


def test_cancel_and_reversal(sim: SimThread) -> None:
    adyen = client(sim)
    pay = adyen.checkout.payments_api.payments
    modify = adyen.checkout.modifications_api
    held = pay(card_payment("order-cancel", additionalData={"manualCapture": "true"})).psp
    cancelled = modify.cancel_authorised_payment_by_psp_reference(
        {"merchantAccount": "ShopECOM"}, held)
    assert cancelled.status_code == 201
    assert _ledger(sim)[held] == "voided"
    captured = pay(card_payment("order-reverse")).psp
    failed_cancel = modify.cancel_authorised_payment_by_psp_reference(
        {"merchantAccount": "ShopECOM"}, captured)
    assert failed_cancel.status_code == 201  # received; the notification says it failed
    (doc,) = _notifications(sim, captured, "CANCELLATION")[:1]
    assert doc["notificationItems"][0]["NotificationRequestItem"]["success"] == "false"
    assert _ledger(sim)[captured] == "captured"
    reversed_ = modify.refund_or_cancel_payment({"merchantAccount": "ShopECOM"}, captured)
    assert reversed_.status_code == 201
    assert _ledger(sim)[captured] == "voided"
    with pytest.raises(AdyenAPIUnprocessableEntity) as caught:
        modify.refund_or_cancel_payment({"merchantAccount": "ShopECOM"}, "8800000000000000")
    assert caught.value.error_code == "167"


def test_partial_refund_is_refused(sim: SimThread) -> None:
    adyen = client(sim)
    psp = adyen.checkout.payments_api.payments(card_payment("order-partial")).psp
    with pytest.raises(AdyenAPIUnprocessableEntity) as caught:
        adyen.checkout.modifications_api.refund_captured_payment(
            {"merchantAccount": "ShopECOM", "amount": {"value": 1, "currency": "EUR"}}, psp)
    assert caught.value.error_code == "137"


def test_wallet_redirect_then_details(sim: SimThread) -> None:
    api = client(sim).checkout.payments_api
    started = api.payments({
        "merchantAccount": "ShopECOM", "reference": "order-wallet",
        "amount": {"value": 900, "currency": "JPY"}, "countryCode": "JP",
        "paymentMethod": {"type": "paypay"}, "returnUrl": "https://shop.example/return"})
    assert started.message["resultCode"] == "RedirectShopper"
    url = started.message["action"]["url"]
    redirect_result = url.split("redirectResult=", 1)[1]
    details = api.payments_details({"details": {"redirectResult": redirect_result}})
    assert details.message["resultCode"] == "Authorised"
    assert details.psp == started.psp
    with pytest.raises(AdyenAPIUnprocessableEntity):
        api.payments_details({"details": {"redirectResult": "forged"}})


def test_konbini_voucher_then_authorisation_notification(sim: SimThread) -> None:
    result = client(sim).checkout.payments_api.payments({
        "merchantAccount": "ShopECOM", "reference": "order-konbini",
        "amount": {"value": 3000, "currency": "JPY"}, "countryCode": "JP",
        "paymentMethod": {"type": "econtext_stores"}})
    assert result.message["resultCode"] == "PresentToShopper"
    assert result.message["action"]["type"] == "voucher"
    (doc,) = _notifications(sim, result.psp, "AUTHORISATION")[:1]
    assert doc["notificationItems"][0]["NotificationRequestItem"]["success"] == "true"
    assert util.is_valid_hmac_notification(doc, _endpoint(sim).webhook_secret)
    assert _ledger(sim)[result.psp] == "captured"


def test_payment_methods(sim: SimThread) -> None:
    result = client(sim).checkout.payments_api.payment_methods(
        {"merchantAccount": "ShopECOM", "amount": {"value": 100, "currency": "JPY"}})
    types = {m["type"] for m in result.message["paymentMethods"]}
    assert {"scheme", "paypay", "econtext_stores"} <= types


def test_wrong_api_key_refused_as_adyen_does(sim: SimThread) -> None:
    with pytest.raises(AdyenAPIAuthenticationError) as caught:
        client(sim, api_key="AQE-not-the-key").checkout.payments_api.payments(
            card_payment("order-auth"))
    assert caught.value.status_code == 401
    assert caught.value.message["errorType"] == "security"


def test_runtime_faults_and_fail_first(sim: SimThread) -> None:
    provider = sim.running.providers[NAME]  # type: ignore[union-attr]
    api = client(sim).checkout.payments_api
    fault = sim.call(lambda: provider.faults.add(
        {"type": "error_burst", "error": "rate_limited"}, 0.0))
    try:
        with pytest.raises(AdyenAPIResponseError) as caught:
            api.payments(card_payment("order-burst"))
        assert caught.value.status_code == 429
    finally:
        sim.call(lambda: provider.faults.remove(fault.id))
    body = card_payment("order-flaky", additionalData={"paystabFailTimes": "2"})
    for _ in range(2):
        with pytest.raises(AdyenAPIResponseError) as failed:
            api.payments(body, idempotency_key="flaky-1")
        assert failed.value.status_code == 500
    assert api.payments(body, idempotency_key="flaky-1").message["resultCode"] == "Authorised"


def test_charge_then_drop_is_recovered_by_replaying_the_key(sim: SimThread) -> None:
    provider = sim.running.providers[NAME]  # type: ignore[union-attr]
    api = client(sim).checkout.payments_api
    fault = sim.call(lambda: provider.faults.add({"type": "drop_response"}, 0.0))
    try:
        with pytest.raises(requests.exceptions.ConnectionError):
            api.payments(card_payment("order-dropped"), idempotency_key="dropped-1")
    finally:
        sim.call(lambda: provider.faults.remove(fault.id))
    replayed = api.payments(card_payment("order-dropped"), idempotency_key="dropped-1")
    assert replayed.message["resultCode"] == "Authorised"
    assert _ledger(sim)[replayed.psp] == "captured"  # charged once, before the drop


def test_duplicated_notifications_under_a_webhook_fault(sim: SimThread) -> None:
    provider = sim.running.providers[NAME]  # type: ignore[union-attr]
    fault = sim.call(lambda: provider.faults.add({"type": "webhook_duplicate",
                                                  "copies": 2}, 0.0))
    try:
        psp = client(sim).checkout.payments_api.payments(card_payment("order-dup")).psp
        docs = sim.wait_webhooks(lambda seen: len([
            h for h in seen if psp in h.body.decode()]) >= 3)
    finally:
        sim.call(lambda: provider.faults.remove(fault.id))
    copies = [h.body for h in docs if psp in h.body.decode()]
    assert len(set(copies)) == 1  # the same notification, delivered three times
    assert util.is_valid_hmac_notification(json.loads(copies[0]),
                                           _endpoint(sim).webhook_secret)


def test_each_notification_endpoint_gets_its_own_signature(sim: SimThread) -> None:
    provider = sim.running.providers[NAME]  # type: ignore[union-attr]
    second_key = "AB" * 32
    endpoint = sim.call(lambda: provider.state.add_endpoint(
        sim.webhook_url + "?second=1", ["AUTHORISATION"], second_key))
    try:
        psp = client(sim).checkout.payments_api.payments(card_payment("order-two-hooks")).psp
        docs = _notifications(sim, psp, "AUTHORISATION")
        sim.wait_webhooks(lambda seen: len([h for h in seen if psp in h.body.decode()]) >= 2)
        docs = _notifications(sim, psp, "AUTHORISATION")
    finally:
        sim.call(lambda: provider.webhooks.targets.pop(endpoint["id"], None))
    first_key = _endpoint(sim).webhook_secret
    assert len(docs) == 2
    assert sorted(util.is_valid_hmac_notification(d, first_key) for d in docs) == [False, True]
    assert sorted(util.is_valid_hmac_notification(d, second_key) for d in docs) == [False, True]


def test_technical_cancel_by_merchant_reference(sim: SimThread) -> None:
    adyen = client(sim)
    psp = adyen.checkout.payments_api.payments(card_payment("order-technical")).psp
    cancelled = adyen.checkout.modifications_api.cancel_authorised_payment(
        {"merchantAccount": "ShopECOM", "paymentReference": "order-technical",
         "reference": "tc-1"})
    assert cancelled.status_code == 201 and cancelled.message["status"] == "received"
    assert _ledger(sim)[psp] == "voided"
    (doc,) = _notifications(sim, psp, "TECHNICAL_CANCEL")[:1]
    assert doc["notificationItems"][0]["NotificationRequestItem"]["success"] == "true"
    unknown = adyen.checkout.modifications_api.cancel_authorised_payment(
        {"merchantAccount": "ShopECOM", "paymentReference": "never-paid"})
    assert unknown.status_code == 201  # received; nothing to cancel
