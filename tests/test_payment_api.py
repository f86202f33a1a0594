"""Validation of the payment API: every client mistake is a 4xx naming the field."""

from __future__ import annotations

import json

import pytest

from paystab.exceptions import InvalidInput
from paystab.stack.catalog import RoutingSettings
from paystab.stack.http_guard import GatewayLimits
from paystab.stack.ledger import keyed_hash
from paystab.stack.payment_api import (
    KeyedHash,
    RequestProblem,
    json_depth_exceeds,
    parse_payment,
    validate_idempotency_key,
)

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
    for bad in (None, "", "x" * 256, "tab\there", " lead", "k\ud800", "ключ"):
        with pytest.raises(RequestProblem) as info:
            validate_idempotency_key(bad)
        assert info.value.status == 400


@pytest.mark.parametrize(("changes", "field"), [
    ({"customer_id": "\ud800"}, "customer_id"),
    ({"customer_id": "tab\there"}, "customer_id"),
    ({"customer_id": "4242 4242 4242 4242"}, "customer_id"),
    ({"description": "x\udfffy"}, "description"),
    ({"description": "x" * 1001}, "description"),
    ({"metadata": {"k": "\ud83d"}}, "metadata.k"),
    ({"metadata": {"k": {"nested": 1}}}, "metadata.k"),
    ({"metadata": [1]}, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
    ({"card": {**GOOD["card"], "cvc": "١٢٣"}}, "card.cvc"),  # type: ignore[dict-item]
    ({"card": {**GOOD["card"], "number": "４２４２４２４２４２４２４２４２"}}, "card.number"),  # type: ignore[dict-item]
    ({"card": {**GOOD["card"], "extra": 1}}, "card.extra"),  # type: ignore[dict-item]
    ({"amount": 1.0}, "amount"),
])
def test_text_must_be_valid_unicode_and_every_field_is_checked(changes: dict[str, object], field: str) -> None:
    raw = json.dumps({**GOOD, **changes}).encode()  # json escapes lone surrogates as \\ud800
    p = problem(raw)
    assert (p.status, p.field) == (422, field)


def test_deep_nesting_is_refused_before_parsing_and_shallow_bodies_pass() -> None:
    deep = b'{"metadata": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    p = problem(deep)
    assert (p.status, p.slug) == (400, "json-too-deep")
    assert problem(b"[" * 60_000).status == 400
    assert json_depth_exceeds(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 3) is False
    assert json_depth_exceeds(b"[[[[]]]]", 3) is True
    assert parse_payment(body(metadata={"order": "[[[[{{{{"}), "application/json").amount == 1999


def test_the_fingerprint_is_keyed() -> None:
    a = parse_payment(body(), "application/json", keyed=KeyedHash(b"a" * 32))
    b = parse_payment(body(), "application/json", keyed=KeyedHash(b"b" * 32))
    assert a.fingerprint != b.fingerprint
    assert KeyedHash(b"s" * 32).hex(b"4242424242424242") == keyed_hash(b"s" * 32, "4242424242424242")


def test_unknown_card_schemes_are_routed_nowhere() -> None:
    from paystab.collector.stats import GatewayStats
    from paystab.stack.catalog import default_providers
    from paystab.stack.routing import Router

    specs = default_providers()
    stats = GatewayStats()
    for s in specs:
        stats.provider(s.name, s.methods)
    router = Router(specs, stats.providers, RoutingSettings())
    for number in ("6011111111111117", "6200000000000005", "0000000000000"):
        payment = parse_payment(body(card={**GOOD["card"], "number": number}), "application/json")  # type: ignore[dict-item]
        assert payment.brand is None
        assert not router.routable("card", "JPY", "JP", payment.brand)
    assert router.routable("card", "JPY", "JP", parse_payment(body(), "application/json").brand)


def test_gateway_limits_from_the_command_line() -> None:
    limits = GatewayLimits.from_pairs(["header_read_timeout_s=2.5", "max-body-bytes=1024"])
    assert limits.header_read_timeout_s == 2.5 and limits.max_body_bytes == 1024
    assert limits.handler_kwargs()["max_field_size"] == GatewayLimits().max_header_bytes
    for bad in ("nope=1", "max_body_bytes=-1", "max_body_bytes=1.5", "header_read_timeout_s=nan", "x"):
        with pytest.raises(InvalidInput):
            GatewayLimits.from_pairs([bad])


def test_problems_never_echo_a_card_number() -> None:
    for changes in ({"currency": "4242 4242 4242 4242 424"}, {"x4242424242424242": 1},
                    {"metadata": {"k": 4242424242424242}}, {"method": "4000-0000-0000-9995"}):
        p = problem(json.dumps({**GOOD, **changes}).encode())
        text = json.dumps(p.body())
        assert "4242424242424242" not in text.replace(" ", "") and "4000000000009995" not in text.replace("-", "")
