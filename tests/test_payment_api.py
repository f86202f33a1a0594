"""Validation of the payment API: every client mistake is a 4xx naming the field."""

from __future__ import annotations

import json

import pytest

from paystab.stack.payment_api import RequestProblem, parse_payment, validate_idempotency_key

GOOD = {"amount": 1999, "currency": "JPY", "method": "card", "country": "JP",
        "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}


def body(**changes: object) -> bytes:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def problem(raw: bytes, content_type: str = "application/json") -> RequestProblem:
    with pytest.raises(RequestProblem) as info:
        parse_payment(raw, content_type)
    return info.value


def test_a_good_card_payment_parses_and_fingerprints_the_canonical_body() -> None:
    a = parse_payment(body(), "application/json; charset=utf-8")
    reordered = json.dumps(dict(reversed(list(GOOD.items())))).encode()
    b = parse_payment(reordered, "application/json")
    assert a.amount == 1999 and a.card is not None and a.card.number.endswith("4242")
    assert a.fingerprint == b.fingerprint
    assert parse_payment(body(amount=2000), "application/json").fingerprint != a.fingerprint
    assert "4242424242424242" not in repr(a.card)


@pytest.mark.parametrize(("raw", "status", "field"), [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (body(amount=0), 422, "amount"),
    (body(amount=10**9 + 1), 422, "amount"),
    (body(amount="12"), 422, "amount"),
    (body(amount=True), 422, "amount"),
    (body(currency="XXX"), 422, "currency"),
    (body(currency="jpy"), 422, "currency"),
    (body(method="cash"), 422, "method"),
    (body(country="ZZ"), 422, "country"),
    (body(card=None), 422, "card"),
    (body(card={**GOOD["card"], "number": "4242424242424241"}), 422, "card.number"),  # type: ignore[dict-item]
    (body(card={**GOOD["card"], "exp_month": 13}), 422, "card.exp_month"),  # type: ignore[dict-item]
    (body(card={**GOOD["card"], "cvc": "12a"}), 422, "card.cvc"),  # type: ignore[dict-item]
    (body(method="wallet", card=None), 422, "wallet"),
    (body(method="wallet", card=None, wallet={"brand": "cash"}), 422, "wallet.brand"),
    (body(method="konbini"), 422, "card"),
    (body(surprise=1), 422, "surprise"),
])
def test_bad_bodies_are_4xx_naming_the_field(raw: bytes, status: int, field: str | None) -> None:
    p = problem(raw)
    assert p.status == status
    assert p.field == field
    assert p.body()["status"] == status and p.body()["type"].startswith("https://")


def test_wrong_content_type_and_oversized_bodies() -> None:
    assert problem(body(), "text/plain").status == 415
    assert problem(body(), "").status == 415
    big = json.dumps({**GOOD, "description": "x" * 70_000}).encode()
    assert problem(big).status == 413


def test_idempotency_key_rules() -> None:
    assert validate_idempotency_key("k-1") == "k-1"
    for bad in (None, "", "x" * 256, "tab\there"):
        with pytest.raises(RequestProblem) as info:
            validate_idempotency_key(bad)
        assert info.value.status == 400
