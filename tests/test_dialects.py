"""The dialect contract, checked over every registered dialect without a network.

Each dialect must round-trip its own requests (client ``charge_call`` → server
``parse_charge_request``), its own answers (server ``render_*`` → client ``parse_*``) for
every unified code, and turn garbage into ``error.malformed`` without raising. The HTTP
round trips against the running simulators are in ``test_providers.py``.
"""

from __future__ import annotations

import pytest

from paystab.stack.catalog import METHODS
from paystab.stack.dialects import DIALECTS, get_dialect
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    REFUNDED,
    VOIDED,
    Card,
    ChargeRequest,
    Dialect,
    HttpReply,
    SimOutcome,
)
from paystab.stack.dialects.routes import routes_of
from paystab.stack.errors import CODES, DECLINE_CODES

# Dialects with a gateway (client) side: the key-addressed ones, and the routed ones the
# reference gateway speaks (adyen, paypay). A routed dialect's server side is tested with
# its PSP's SDK (test_sdk_*).
NAMES = sorted(n for n, d in DIALECTS.items()
               if routes_of(d) is None or n in ("adyen", "paypay", "komoju"))
CHARGE_CODES = ("approved", "pending", *DECLINE_CODES)
CARD = Card("4242424242424242", 12, 2030, "123")
REQUESTS = {
    "card": ChargeRequest("key-1/a b", "pay_1", 1999, "USD", "card", "US", card=CARD,
                          customer_id="c_9"),
    "wallet": ChargeRequest("key-2", "pay_2", 500, "JPY", "wallet", "JP", wallet_brand="paypay"),
    "konbini": ChargeRequest("key-3", "pay_3", 3000, "JPY", "konbini", "JP"),
    "bank_transfer": ChargeRequest("key-4", "pay_4", 12000, "JPY", "bank_transfer", "JP",
                                   customer_id="c_4"),
}


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _outcome(code: str, method: str = "card") -> SimOutcome:
    return SimOutcome(code, "ref-0001", 1999, "USD", "pay_1", "key-1/a b", method)


@pytest.fixture(params=NAMES)
def dialect(request: pytest.FixtureRequest) -> Dialect:
    return get_dialect(request.param)


def test_ten_distinct_dialects_registered() -> None:
    assert len(DIALECTS) >= 10
    assert {d.content_type for d in DIALECTS.values()} >= {"application/json", "application/xml"}
    with pytest.raises(KeyError, match="known"):
        get_dialect("nope")


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_charge_request_round_trip(dialect: Dialect, kind: str) -> None:
    request = REQUESTS[kind]
    if request.method not in getattr(dialect, "wire_methods", METHODS):
        return  # e.g. PayPay's API has no card fields: its providers take wallets only
    call = dialect.charge_call(request)
    assert call.method == "POST"
    assert dialect.match(call.method, call.path) == ("charge", None)
    assert dialect.parse_charge_request(_lower(call.headers), call.body) == request


def test_key_addressed_calls_match(dialect: Dialect) -> None:
    key = "pay_7-attempt/2 ü?&"
    assert dialect.match(*_target(dialect.status_call(key))) == ("status", key)
    # without the provider's reference: routed dialects address a void by it when they have it
    assert dialect.match(*_target(dialect.void_call(key, None))) == ("void", key)
    assert dialect.match(*_target(dialect.refund_call(key))) == ("refund", key)
    assert dialect.match("GET", "/definitely/not/an/api") is None


def _target(call: object) -> tuple[str, str]:
    return call.method, call.path  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", CHARGE_CODES)
def test_charge_answer_round_trip(dialect: Dialect, code: str) -> None:
    method = "konbini" if code == "pending" else "card"
    reply = dialect.render_charge(_outcome(code, method))
    answer = dialect.parse_charge(reply.status, reply.content_type, reply.body)
    assert answer.code == code, answer
    assert answer.http_status == reply.status
    if code in ("approved", "pending"):
        assert answer.provider_ref == "ref-0001"


@pytest.mark.parametrize("code", (*CHARGE_CODES, VOIDED, REFUNDED))
def test_status_answer_round_trip(dialect: Dialect, code: str) -> None:
    reply = dialect.render_status(_outcome(code))
    assert dialect.parse_status(reply.status, reply.content_type, reply.body).code == code
    missing = dialect.render_status(None)
    assert dialect.parse_status(missing.status, missing.content_type,
                                missing.body).code == LOOKUP_NOT_FOUND


@pytest.mark.parametrize("code", (VOIDED, REFUNDED, *DECLINE_CODES))
def test_void_answer_round_trip(dialect: Dialect, code: str) -> None:
    reply = dialect.render_void(_outcome(code))
    assert dialect.parse_void(reply.status, reply.content_type, reply.body).code == code
    missing = dialect.render_void(None)
    assert dialect.parse_void(missing.status, missing.content_type,
                              missing.body).code == LOOKUP_NOT_FOUND


def test_bad_request_is_invalid_data(dialect: Dialect) -> None:
    reply = dialect.render_bad_request("amount must be an integer")
    assert reply.status < 500
    answer = dialect.parse_charge(reply.status, reply.content_type, reply.body)
    assert answer.code == "declined.invalid_data"


@pytest.mark.parametrize(("kind", "code"), [
    ("server_error", "error.provider_5xx"), ("bad_gateway", "error.provider_5xx"),
    ("rate_limited", "error.rate_limited"), ("malformed", "error.malformed"),
])
def test_injected_errors_parse_to_their_code(dialect: Dialect, kind: str, code: str) -> None:
    reply = dialect.render_injected_error(kind)  # type: ignore[arg-type]
    for parse in (dialect.parse_charge, dialect.parse_status, dialect.parse_void):
        assert parse(reply.status, reply.content_type, reply.body).code == code


def _garbage(dialect: Dialect) -> list[HttpReply]:
    good = dialect.render_charge(_outcome("approved"))
    ct = good.content_type
    return [
        HttpReply(good.status, "text/html", good.body),  # right body, wrong content type
        HttpReply(good.status, "", good.body),  # no content type
        HttpReply(good.status, ct, good.body[: len(good.body) // 2]),  # truncated
        HttpReply(good.status, ct, b""),
        HttpReply(good.status, ct, b"\xff\xfe\x00garbage"),
        HttpReply(good.status, ct, b"[1, 2, 3]" if "json" in ct else b"<other/>"),
        HttpReply(good.status, ct, b"{}" if "json" in ct else b"<replyMessage/>"),
        HttpReply(good.status, ct, b'{"status": 7, "resultInfo": 1, "error": [], "code": "x"}'),
        HttpReply(418, ct, good.body),  # unexpected status
        HttpReply(302, ct, good.body),
        HttpReply(204, ct, b""),
    ]


def test_garbage_is_malformed_and_never_raises(dialect: Dialect) -> None:
    for reply in _garbage(dialect):
        for parse in (dialect.parse_charge, dialect.parse_status, dialect.parse_void):
            answer = parse(reply.status, reply.content_type, reply.body)
            assert answer.code == "error.malformed", (reply, answer)
            assert CODES[answer.code].counts_against_provider


def test_transport_statuses(dialect: Dialect) -> None:
    for status, code in ((500, "error.provider_5xx"), (502, "error.provider_5xx"),
                         (503, "error.provider_5xx"), (504, "error.provider_5xx"),
                         (429, "error.rate_limited")):
        answer = dialect.parse_charge(status, "text/plain", b"whatever")
        assert (answer.code, answer.http_status) == (code, status)


def test_server_rejects_requests_it_cannot_read(dialect: Dialect) -> None:
    call = dialect.charge_call(REQUESTS["card"])
    for body in (b"", b"\x00\x01", b"{not json", b"<requestMessage><oops"):
        with pytest.raises(ValueError):
            dialect.parse_charge_request(_lower(call.headers), body)


def test_provider_refs_unique_and_pan_free(dialect: Dialect) -> None:
    refs = {dialect.provider_ref(i) for i in range(5000)}
    assert len(refs) == 5000
    reply = dialect.render_charge(_outcome("approved"))
    assert CARD.number.encode() not in reply.body


def test_psp_code_tables_cover_every_documented_code() -> None:
    """The gateway side maps every code of the real-PSP dialects to a unified code."""
    import json

    from paystab.stack.dialects import adyen_codes, komoju, paypay

    adyen = get_dialect("adyen")
    for refusal in adyen_codes.REFUSALS:
        if refusal.result == "Authorised":
            continue
        body = json.dumps({"pspReference": "8815658961765250", "resultCode": refusal.result,
                           "refusalReason": refusal.reason,
                           "refusalReasonCode": refusal.code}).encode()
        answer = adyen.parse_charge(200, "application/json", body)
        assert answer.code == refusal.unified, refusal
        assert answer.code in CODES
    pp = get_dialect("paypay")
    for code, unified in paypay.BY_CODE.items():
        body = json.dumps({"resultInfo": {"code": code, "message": "", "codeId": "0"},
                           "data": None}).encode()
        assert pp.parse_charge(400, "application/json", body).code == unified in CODES
    kj = get_dialect("komoju")
    for code, unified in komoju.DECLINES.items():
        body = json.dumps({"error": {"code": code, "message": "", "param": None}}).encode()
        assert kj.parse_charge(402, "application/json", body).code == unified in CODES
