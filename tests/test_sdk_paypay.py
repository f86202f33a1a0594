"""The official PayPay OPA SDK (PyPI ``paypayopa``) against the ``paypay`` simulator.

Nothing in the SDK is changed but ``base_url``, the API key and secret, and the CA file
(``REQUESTS_CA_BUNDLE``; the SDK uses ``requests``): create a payment and a QR code, get
their details, replay a merchantPaymentId, every paystab test decline as the SDK returns it
(the SDK never raises: it returns PayPay's ``resultInfo``), cancel, delete a QR code,
refund and get the refund, the HMAC signature verified (a wrong secret is 401
``UNAUTHORIZED``), ``RATE_LIMIT`` and ``MAINTENANCE_MODE`` under faults, fail-first, and
the Transaction webhook of a QR payment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from paystab.stack.dialects.paypay import DECLINES
from paystab.stack.providers import read_ledger
from tests.conftest_providers import universal_spec
from tests.psp_sim_thread import SimThread

paypayopa = pytest.importorskip("paypayopa") if os.environ.get("CI") != "true" else \
    __import__("paypayopa")

NAME = "t-paypay"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    spec = replace(universal_spec("paypay"), async_completion_s=0.3)
    with SimThread([spec], tmp_path_factory.mktemp("paypay")) as thread:
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


def client(sim: SimThread, secret: str | None = None) -> Any:
    endpoint = _endpoint(sim)
    paypay = paypayopa.Client(auth=("a_shop_key", secret or endpoint.api_key),
                              production_mode=False, base_url=endpoint.url)
    paypay.set_assume_merchant("shop-merchant-1")
    return paypay


def payment(merchant_payment_id: str, amount: int = 700, **metadata: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"merchantPaymentId": merchant_payment_id,
                           "userAuthorizationId": "user-a1b2",
                           "amount": {"amount": amount, "currency": "JPY"},
                           "orderDescription": "coffee beans"}
    if metadata:
        doc["metadata"] = metadata
    return doc


def _ledger(sim: SimThread) -> dict[str, str]:
    return {r.idempotency_key: r.status for r in read_ledger(_endpoint(sim).ledger)}


def test_https_and_create_payment(sim: SimThread) -> None:
    assert _endpoint(sim).url.startswith("https://")
    paypay = client(sim)
    created = paypay.Payment.create(payment("mp-create"))
    assert created["resultInfo"]["code"] == "SUCCESS"
    data = created["data"]
    assert data["status"] == "COMPLETED" and data["merchantPaymentId"] == "mp-create"
    details = paypay.Payment.get_payment_details("mp-create")
    assert details["data"]["paymentId"] == data["paymentId"]
    assert _ledger(sim)["mp-create"] == "captured"


def test_merchant_payment_id_replays(sim: SimThread) -> None:
    paypay = client(sim)
    first = paypay.Payment.create(payment("mp-replay"))
    again = paypay.Payment.create(payment("mp-replay"))
    assert again["data"]["paymentId"] == first["data"]["paymentId"]
    other = paypay.Payment.create(payment("mp-replay", amount=701))
    assert other["resultInfo"]["code"] == "INVALID_REQUEST_PARAMS"
    assert list(_ledger(sim)).count("mp-replay") == 1


@pytest.mark.parametrize(("unified", "code"), [(u, c) for u, (_, c, _) in DECLINES.items()])
def test_test_declines(sim: SimThread, unified: str, code: str) -> None:
    answer = client(sim).Payment.create(payment(f"mp-{code}", paystabTestCode=code))
    assert answer["resultInfo"]["code"] == code
    assert answer["data"]["paymentId"]
    details = client(sim).Payment.get_payment_details(f"mp-{code}")
    assert details["data"]["status"] == "FAILED"
    assert details["data"]["failureCode"] == code
    assert _ledger(sim)[f"mp-{code}"] == "declined"


def test_cancel(sim: SimThread) -> None:
    paypay = client(sim)
    paypay.Payment.create(payment("mp-cancel"))
    cancelled = paypay.Payment.cancel_payment("mp-cancel")
    assert cancelled["resultInfo"]["code"] == "REQUEST_ACCEPTED"
    assert paypay.Payment.get_payment_details("mp-cancel")["data"]["status"] == "CANCELED"
    assert _ledger(sim)["mp-cancel"] == "voided"
    missing = paypay.Payment.get_payment_details("mp-never")
    assert missing["resultInfo"]["code"] == "DYNAMIC_QR_PAYMENT_NOT_FOUND"


def test_refund_by_payment_id(sim: SimThread) -> None:
    paypay = client(sim)
    payment_id = paypay.Payment.create(payment("mp-refund"))["data"]["paymentId"]
    amount = {"amount": 700, "currency": "JPY"}
    partial = paypay.Payment.refund_payment({"merchantRefundId": "rf-partial",
                                             "paymentId": payment_id,
                                             "amount": {"amount": 1, "currency": "JPY"}})
    assert partial["resultInfo"]["code"] == "INVALID_PARAMS"
    wrong_id = paypay.Payment.refund_payment({"merchantRefundId": "rf-wrong",
                                              "paymentId": "mp-refund", "amount": amount})
    assert wrong_id["resultInfo"]["code"] == "RESOURCE_NOT_FOUND"  # merchantPaymentId ≠ paymentId
    refunded = paypay.Payment.refund_payment({"merchantRefundId": "rf-1",
                                              "paymentId": payment_id, "amount": amount,
                                              "reason": "returned"})
    assert refunded["resultInfo"]["code"] == "SUCCESS"
    assert paypay.Payment.refund_details("rf-1")["data"]["status"] == "COMPLETED"
    assert paypay.Payment.get_payment_details("mp-refund")["data"]["status"] == "REFUNDED"
    assert _ledger(sim)["mp-refund"] == "refunded"


def test_qr_code_completes_later_with_a_transaction_webhook(sim: SimThread) -> None:
    paypay = client(sim)
    code = paypay.Code.create_qr_code({"merchantPaymentId": "mp-qr",
                                       "amount": {"amount": 500, "currency": "JPY"},
                                       "codeType": "ORDER_QR", "orderDescription": "tea"})
    assert code["resultInfo"]["code"] == "SUCCESS"
    assert code["data"]["codeId"].startswith("04-")
    assert paypay.Code.get_payment_details("mp-qr")["data"]["status"] == "CREATED"

    def completed(seen: list[Any]) -> bool:
        return any(json.loads(h.body).get("merchant_order_id") == "mp-qr"
                   and json.loads(h.body)["state"] == "COMPLETED" for h in seen)

    sim.wait_webhooks(completed)
    assert paypay.Code.get_payment_details("mp-qr")["data"]["status"] == "COMPLETED"
    second = paypay.Code.create_qr_code({"merchantPaymentId": "mp-qr-2",
                                         "amount": {"amount": 500, "currency": "JPY"},
                                         "codeType": "ORDER_QR"})
    deleted = paypay.Code.delete_qr_code(second["data"]["codeId"])
    assert deleted["resultInfo"]["code"] == "SUCCESS"
    assert paypay.Code.get_payment_details("mp-qr-2")["data"]["status"] == "CANCELED"
    assert _ledger(sim)["mp-qr-2"] == "voided"


def test_bad_signature_refused(sim: SimThread) -> None:
    refused = client(sim, secret="not-the-secret").Payment.create(payment("mp-forged"))
    assert refused["resultInfo"]["code"] == "UNAUTHORIZED"
    assert "mp-forged" not in _ledger(sim)


def test_rate_limit_maintenance_and_fail_first(sim: SimThread) -> None:
    provider = sim.running.providers[NAME]  # type: ignore[union-attr]
    paypay = client(sim)
    for error, code in (("rate_limited", "RATE_LIMIT"), ("bad_gateway", "MAINTENANCE_MODE"),
                        ("server_error", "INTERNAL_SERVER_ERROR")):
        fault = sim.call(lambda error=error: provider.faults.add(
            {"type": "error_burst", "error": error}, 0.0))
        try:
            answer = paypay.Payment.create(payment(f"mp-{error}"))
        finally:
            sim.call(lambda fault=fault: provider.faults.remove(fault.id))
        assert answer["resultInfo"]["code"] == code
    flaky = payment("mp-flaky", paystabFailTimes="2:rate_limited")
    codes = [paypay.Payment.create(flaky)["resultInfo"]["code"] for _ in range(3)]
    assert codes == ["RATE_LIMIT", "RATE_LIMIT", "SUCCESS"]


def test_ids_that_need_percent_encoding(sim: SimThread) -> None:
    paypay = client(sim)
    created = paypay.Payment.create(payment("order 42 ä"))
    assert created["resultInfo"]["code"] == "SUCCESS"
    details = paypay.Payment.get_payment_details("order 42 ä")
    assert details["resultInfo"]["code"] == "SUCCESS"  # signed unencoded, sent encoded
    assert details["data"]["merchantPaymentId"] == "order 42 ä"
