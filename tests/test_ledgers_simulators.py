"""The simulators' own ledgers keep the merchant's reference each PSP's API carries.

A shop talks to four simulators the way it talks to the real PSPs — the official Stripe and
PayPay SDKs, Adyen's and KOMOJU's JSON APIs — putting its order id where each PSP takes
it: Stripe ``metadata[order_id]`` (or only a ``description``), Adyen ``reference``, PayPay
``merchantPaymentId``, KOMOJU ``external_order_num``. Reconciling the shop's orders
against ``kind: simulators`` then finds exactly the defects planted: a second charge for one
order, an order paid by nobody, a capture for an order the shop marked failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from paystab.cli import main as cli_main
from paystab.exceptions import InvalidInput
from paystab.ledgers.reconcile import reconcile_ledgers
from paystab.ledgers.spec import LedgersSpec
from paystab.stack.endpoints import StackEndpoints
from tests.conftest import require
from tests.conftest_providers import universal_spec
from tests.psp_sim_thread import SimThread

try:
    import paypayopa
    import stripe
except ModuleNotFoundError:  # pragma: no cover - CI installs the test extra
    stripe = paypayopa = None

DIALECTS = ("stripe", "adyen", "komoju", "paypay")


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimThread]:
    require("the stripe and paypayopa SDKs (pip install -e .[test])",
            stripe is not None and paypayopa is not None)
    with SimThread([universal_spec(d) for d in DIALECTS],
                   tmp_path_factory.mktemp("ledger-sims")) as thread:
        yield thread


def _endpoint(sims: SimThread, dialect: str) -> Any:
    assert sims.running is not None
    return sims.running.endpoints[f"t-{dialect}"]


def _session(endpoint: Any) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = endpoint.ca_file or True
    return session


def _stripe(sims: SimThread, monkeypatch: pytest.MonkeyPatch, **params: Any) -> None:
    endpoint = _endpoint(sims, "stripe")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name, value in (("api_base", endpoint.url), ("api_key", endpoint.api_key),
                        ("ca_bundle_path", endpoint.ca_file), ("max_network_retries", 0)):
        monkeypatch.setattr(stripe, name, value)
    intent = stripe.PaymentIntent.create(confirm=True, payment_method="pm_card_visa", **params)
    assert intent.status == "succeeded"


def _adyen(sims: SimThread, reference: str, cents: int) -> None:
    endpoint = _endpoint(sims, "adyen")
    answer = _session(endpoint).post(f"{endpoint.url}/v71/payments", timeout=10, headers={
        "X-API-Key": endpoint.api_key}, json={
        "merchantAccount": "ShopECOM", "reference": reference,
        "amount": {"value": cents, "currency": "EUR"}, "countryCode": "NL",
        "paymentMethod": {"type": "scheme", "encryptedCardNumber": "test_4111111111111111",
                          "encryptedExpiryMonth": "test_03", "encryptedExpiryYear": "test_2030",
                          "encryptedSecurityCode": "test_737", "holderName": "J Smith"}})
    assert answer.json()["resultCode"] == "Authorised", answer.text


def _komoju(sims: SimThread, order: str, yen: int) -> None:
    endpoint = _endpoint(sims, "komoju")
    session = _session(endpoint)
    session.auth = (endpoint.api_key, "")
    answer = session.post(f"{endpoint.url}/api/v1/payments", timeout=10, json={
        "amount": yen, "currency": "JPY", "external_order_num": order,
        "payment_details": {"type": "credit_card", "number": "4111111111111111", "month": "12",
                            "year": "30", "verification_value": "123", "name": "Taro"}})
    assert answer.json()["status"] == "captured", answer.text


def _paypay(sims: SimThread, monkeypatch: pytest.MonkeyPatch, merchant_payment_id: str,
            yen: int) -> None:
    endpoint = _endpoint(sims, "paypay")
    if endpoint.ca_file:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", endpoint.ca_file)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = paypayopa.Client(auth=("a_shop_key", endpoint.api_key), production_mode=False,
                              base_url=endpoint.url)
    client.set_assume_merchant("shop-merchant-1")
    answer = client.Payment.create({"merchantPaymentId": merchant_payment_id,
                                    "userAuthorizationId": "user-a1b2",
                                    "amount": {"amount": yen, "currency": "JPY"},
                                    "orderDescription": "coffee beans"})
    assert answer["data"]["status"] == "COMPLETED", answer


ORDERS = """\
id,status,amount,currency
s-1,succeeded,1999,USD
s-2,succeeded,500,USD
s-3,succeeded,1200,USD
a-1,succeeded,1250,EUR
k-1,succeeded,1500,JPY
k-2,failed,900,JPY
p-1,succeeded,700,JPY
lost-1,pending,4000,JPY
"""


def test_each_dialect_keeps_the_merchants_reference(sims: SimThread, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _stripe(sims, monkeypatch, amount=1999, currency="usd", metadata={"order_id": "s-1"})
    _stripe(sims, monkeypatch, amount=500, currency="usd", description="s-2")
    for _ in range(2):  # the shop retried with a new PaymentIntent: charged twice
        _stripe(sims, monkeypatch, amount=1200, currency="usd", metadata={"order_id": "s-3"})
    _adyen(sims, "a-1", 1250)
    _komoju(sims, "k-1", 1500)
    _komoju(sims, "k-2", 900)  # the shop timed out and marked it failed: an orphan
    _paypay(sims, monkeypatch, "p-1", 700)
    (tmp_path / "orders.csv").write_text(ORDERS)
    spec = LedgersSpec.model_validate({"merchant": {"kind": "csv", "path": "orders.csv",
                                                    "columns": {"reference": "id"}},
                                       "psp": [{"kind": "simulators"}]})
    ledgers = {f"t-{d}": str(_endpoint(sims, d).ledger) for d in DIALECTS}
    result = reconcile_ledgers(spec, tmp_path, ledgers)
    found = sorted((f.kind, f.payment_id, tuple(f.providers), f.amount, f.captured)
                   for f in result.findings)
    assert found == [("double_charge", "s-3", ("t-stripe",), 1200, 2400),
                     ("lost_payment", "lost-1", (), 4000, None),
                     ("orphan", "k-2", ("t-komoju",), 900, 900)]
    assert (result.payments, result.captures) == (8, 8)
    double = next(f for f in result.findings if f.kind == "double_charge")
    assert all(ref.startswith("t-stripe/pi_") for ref in double.psp_references)

    only = LedgersSpec.model_validate({"merchant": {"kind": "csv", "path": "orders.csv",
                                                    "columns": {"reference": "id"}},
                                       "psp": [{"kind": "simulators", "only": ["t-strip"]}]})
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(only, tmp_path, ledgers)
    assert caught.value.field == "ledgers.psp[0].only" and "'t-stripe'" in caught.value.message
    with pytest.raises(InvalidInput, match="no simulator ledgers"):
        reconcile_ledgers(spec, tmp_path, {})

    # The CLI: the ledgers file beside the orders, the simulators from the ready file.
    assert sims.running is not None
    StackEndpoints("http://127.0.0.1:9", dict(sims.running.endpoints)).write(
        tmp_path / "ready.json")
    (tmp_path / "ledgers.yaml").write_text("merchant: {kind: csv, path: orders.csv, "
                                           "columns: {reference: id}}\npsp: [{kind: simulators}]\n")
    (tmp_path / "stack.yaml").write_text(
        "version: 1\nname: shop\nready_file: ready.json\ncheckout: {base_url: "
        "'http://127.0.0.1:9', flow: {name: c, steps: [{name: pay, path: /pay}]}}\n"
        "ledgers:\n  merchant: {kind: csv, path: orders.csv, columns: {reference: id}}\n")
    for args in (["--ledgers", str(tmp_path / "ledgers.yaml"), "--ready-file",
                  str(tmp_path / "ready.json")],
                 ["--ledgers", str(tmp_path / "stack.yaml")]):  # its ready_file: is used
        monkeypatch.setattr(sys, "argv", ["paystab", "reconcile", *args, "--json", "-"])
        with pytest.raises(SystemExit) as exit_info:
            cli_main()
        assert exit_info.value.code == 1, args
        data = json.loads(capsys.readouterr().out)
        assert (data["double_charges"], data["lost_payments"], data["orphans"]) == (1, 1, 1)
