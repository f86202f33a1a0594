"""The payment mix: seeded, realistic, routable, and careful with card numbers."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from pathlib import Path

import pytest

from paystab.exceptions import InvalidInput
from paystab.loadtest.mix import (
    APPROVING_CARDS,
    DECLINE_TEST_CARDS,
    Market,
    MethodShare,
    PaymentFactory,
    PaymentMix,
)
from paystab.stack.catalog import TEST_CARDS


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_same_seed_same_payments_other_seed_or_stream_differs() -> None:
    mix = PaymentMix()
    a = [PaymentFactory(mix, 42).payment(i) for i in range(200)]
    b = [PaymentFactory(mix, 42).payment(i) for i in range(200)]
    assert [p.body for p in a] == [p.body for p in b]
    c = [PaymentFactory(mix, 43).payment(i) for i in range(200)]
    d = [PaymentFactory(mix, 42, stream=1).payment(i) for i in range(200)]
    assert [p.body for p in a] != [p.body for p in c]
    assert [p.body for p in a] != [p.body for p in d]
    # a payment depends on its number only, not on which were drawn before
    assert PaymentFactory(mix, 42).payment(150).body == a[150].body


def test_mix_shares_markets_and_declines() -> None:
    factory = PaymentFactory(PaymentMix(), 7)
    payments = [factory.payment(i) for i in range(20000)]
    methods = Counter(p.method for p in payments)
    assert methods["card"] / 20000 == pytest.approx(0.65, abs=0.02)
    assert methods["wallet"] / 20000 == pytest.approx(0.20, abs=0.02)
    assert methods["konbini"] / 20000 == pytest.approx(0.08, abs=0.01)
    assert methods["bank_transfer"] / 20000 == pytest.approx(0.07, abs=0.01)
    cards = [json.loads(p.body) for p in payments if p.method == "card"]
    declines = [c for c in cards if c["card"]["number"] in DECLINE_TEST_CARDS]
    assert len(declines) / len(cards) == pytest.approx(0.03, abs=0.008)
    assert {c["card"]["number"] for c in declines} == set(DECLINE_TEST_CARDS)
    brands = {"paypay": "JPY", "kakaopay": "KRW", "grabpay": "SGD"}
    for p in payments:
        body = json.loads(p.body)
        assert 1 <= body["amount"] <= 10**9
        if p.method == "wallet":
            assert brands[body["wallet"]["brand"]] == body["currency"]
        if p.method == "konbini":
            assert (body["currency"], body["country"]) == ("JPY", "JP")
    jp_cards = [json.loads(p.body)["amount"] for p in payments
                if p.method == "card" and p.currency == "JPY"]
    assert statistics.median(jp_cards) == pytest.approx(4000, rel=0.1)  # log-normal median
    assert max(jp_cards) > 3 * 4000  # a long right tail


def test_test_cards_are_luhn_valid_and_match_the_stack_contract() -> None:
    numbers = [*DECLINE_TEST_CARDS, *(n for ns in APPROVING_CARDS.values() for n in ns)]
    assert all(luhn_ok(n) for n in numbers)
    for number, code in DECLINE_TEST_CARDS.items():
        assert TEST_CARDS[number] == code


def test_card_numbers_stay_out_of_repr() -> None:
    factory = PaymentFactory(PaymentMix(methods={"card": MethodShare(1.0, (
        Market("JPY", "JP", 1.0, 1000),))}), 1)
    payment = factory.payment(0)
    number = json.loads(payment.body)["card"]["number"]
    assert number not in repr(payment)


def test_custom_mix_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text(
        "decline_share: 0.5\n"
        "methods:\n"
        "  card:\n"
        "    weight: 1\n"
        "    markets:\n"
        "      - {currency: EUR, country: NL, weight: 1, median_amount: 2500, sigma: 0.1}\n"
    )
    mix = PaymentMix.load(path)
    factory = PaymentFactory(mix, 3)
    payments = [factory.payment(i) for i in range(2000)]
    assert {(p.method, p.currency) for p in payments} == {("card", "EUR")}
    declined = sum(1 for p in payments if p.expected.startswith("declined"))
    assert declined / 2000 == pytest.approx(0.5, abs=0.05)
    assert math.isclose(statistics.median(p.amount for p in payments), 2500, rel_tol=0.05)
    assert PaymentMix.from_json(mix.to_json()) == mix


def test_bad_mix_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text("methods:\n  card:\n    weight: 1\n    markets:\n"
                    "      - {currency: EUR, country: NL, weight: 1, median_amount: 0}\n")
    with pytest.raises(InvalidInput) as err:
        PaymentMix.load(path)
    text = err.value.render()
    assert f"{path}:5" in text and "median_amount" in text
    path.write_text("methods:\n  cash:\n    weight: 1\n    markets: []\n")
    with pytest.raises(InvalidInput, match="card, wallet, bank_transfer, konbini"):
        PaymentMix.load(path)
    with pytest.raises(InvalidInput, match="decline_share"):
        PaymentMix(decline_share=1.5)


def test_mix_reads_yaml12_and_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text("methods:\n  card:\n    weight: 1\n    markets:\n"
                    "      - {currency: NOK, country: NO, weight: 1, median_amount: 9000}\n")
    mix = PaymentMix.load(path)
    assert mix.methods["card"].markets[0].country == "NO"  # Norway, not False
    path.write_text("decline_share: 2\nmethods:\n  crad:\n    weight: 1\n    markets: []\n")
    with pytest.raises(InvalidInput) as err:
        PaymentMix.load(path)
    text = err.value.render()
    assert f"{path}:1: decline_share: 2 is too large" in text
    assert f"{path}:3: methods.crad: unknown method 'crad' (did you mean 'card'?)" in text
