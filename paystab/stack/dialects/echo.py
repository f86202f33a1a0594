"""echo: the backup card acquirer, an ISO 8583 message dressed as JSON.

Fields are named after ISO 8583 data elements: ``mti`` 0200/0210 (financial request /
response), ``pan``, ``expiry`` as YYMM, ``amount`` as a 12-digit zero-padded string,
``currencyCode`` as the **numeric** ISO 4217 code ("392" = JPY), the payment id as
``merchantRef``; the idempotency key goes in the ``X-Echo-Dedup-Key`` header. The outcome is
a two-character ``responseCode``: "00" approved, "09" in progress, "51" insufficient funds,
"05" do not honor, "54" expired card, "14" invalid card number, "59" suspected fraud, "61"
over the amount limit, "57" not permitted, "91" issuer inoperative, "96" system malfunction
(HTTP 200: this acquirer reports its own failures in-band), "25" record not found (404),
"30" format error (400). Voids are reversals (MTI 0400/0410); refunds use processing code
"200000".
"""

from __future__ import annotations

from typing import Any

from paystab.stack.dialects._support import (
    ISO_ALPHA,
    ISO_NUMERIC,
    UNKNOWN,
    DialectBase,
    as_str,
    dumps,
    invert,
    json_reply,
    quote_key,
    require_json,
    scramble,
    split_target,
)
from paystab.stack.dialects.base import (
    LOOKUP_NOT_FOUND,
    REFUNDED,
    VOIDED,
    Card,
    ChargeRequest,
    HttpCall,
    HttpReply,
    ProviderAnswer,
    SimOutcome,
)

_API = "/iso/v2"
_RESPONSE_CODES = {
    "approved": "00",
    "pending": "09",
    "declined.do_not_honor": "05",
    "declined.invalid_data": "14",
    "declined.insufficient_funds": "51",
    "declined.expired_card": "54",
    "declined.not_supported": "57",
    "declined.fraud": "59",
    "declined.limit_exceeded": "61",
    "declined.issuer_unavailable": "91",
}
_BY_RESPONSE = invert(_RESPONSE_CODES)
_BY_RESPONSE.update({"96": "error.provider_5xx", "30": "declined.invalid_data",
                     "68": "error.timeout"})
_STATES = {"approved": "APPROVED", "pending": "PENDING", VOIDED: "REVERSED",
           REFUNDED: "REFUNDED"}
_BY_STATE = invert(_STATES)


class EchoDialect(DialectBase):
    name = "echo"
    charge_statuses = frozenset({200, 400})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({200, 404})

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        doc: dict[str, Any] = {
            "mti": "0200", "processingCode": "000000",
            "amount": f"{request.amount:012d}",
            "currencyCode": ISO_NUMERIC.get(request.currency, "999"),
            "merchantRef": request.payment_id, "merchantCountry": request.country,
            "posEntryMode": "812",
        }
        if request.card is not None:
            c = request.card
            doc.update(pan=c.number, expiry=f"{c.exp_year % 100:02d}{c.exp_month:02d}",
                       cvv2=c.cvc)
        else:
            doc["instrument"] = (f"wallet:{request.wallet_brand}" if request.method == "wallet"
                                 else request.method)
        if request.customer_id:
            doc["cardholderRef"] = request.customer_id
        headers = {"Content-Type": "application/json", "X-Echo-Dedup-Key": request.idempotency_key,
                   "X-Echo-Terminal": "PAYSTAB1"}
        return HttpCall("POST", f"{_API}/authorize", headers, dumps(doc))

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_API}/transactions/{quote_key(idempotency_key)}", {})

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        body = dumps({"mti": "0400", "originalRrn": provider_ref})
        return HttpCall("POST", f"{_API}/transactions/{quote_key(idempotency_key)}/reversal",
                        {"Content-Type": "application/json"}, body)

    def refund_call(self, idempotency_key: str) -> HttpCall:
        body = dumps({"mti": "0200", "processingCode": "200000"})
        return HttpCall("POST", f"{_API}/transactions/{quote_key(idempotency_key)}/refund",
                        {"Content-Type": "application/json"}, body)

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        rc = str(doc["responseCode"])
        return ProviderAnswer(_BY_RESPONSE.get(rc, UNKNOWN), doc.get("retrievalRef"), f"RC {rc}")

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        state = doc.get("txnState")
        if state in (None, "DECLINED"):  # in-band failures ("96") carry no state
            return self.charge_answer(status, doc)
        return ProviderAnswer(_BY_STATE.get(state, UNKNOWN), doc["retrievalRef"], state)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        rc = str(doc["responseCode"])
        if rc == "12":  # invalid transaction: the original was declined, nothing to reverse
            original = str(doc["originalResponseCode"])
            return ProviderAnswer(_BY_RESPONSE.get(original, UNKNOWN), doc.get("retrievalRef"),
                                  f"RC 12 (original {original})")
        if rc != "00":
            return self.charge_answer(status, doc)
        code = VOIDED if doc["mti"] == "0410" else REFUNDED
        return ProviderAnswer(code, doc.get("retrievalRef"), f"MTI {doc['mti']} RC 00")

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, _ = split_target(path)
        if seg[:2] != ["iso", "v2"]:
            return None
        if seg[2:] == ["authorize"] and method == "POST":
            return ("charge", None)
        if len(seg) >= 4 and seg[2] == "transactions":
            if len(seg) == 4 and method == "GET":
                return ("status", seg[3])
            if len(seg) == 5 and method == "POST":
                return {"reversal": ("void", seg[3]), "refund": ("refund", seg[3])}.get(seg[4])
        return None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        key = headers.get("x-echo-dedup-key", "")
        if not key:
            raise ValueError("X-Echo-Dedup-Key header is required")
        doc = require_json(body)
        if doc.get("mti") != "0200":
            raise ValueError("mti must be 0200")
        amount = as_str(doc.get("amount"), "amount")
        if len(amount) != 12 or not amount.isdigit():
            raise ValueError("amount must be 12 digits")
        currency = ISO_ALPHA.get(str(doc.get("currencyCode")))
        if currency is None:
            raise ValueError("currencyCode is not a known ISO 4217 numeric code")
        card = None
        wallet = None
        if "pan" in doc:
            method = "card"
            expiry = as_str(doc.get("expiry"), "expiry")
            if len(expiry) != 4 or not expiry.isdigit():
                raise ValueError("expiry must be YYMM")
            card = Card(str(doc["pan"]), int(expiry[2:]), 2000 + int(expiry[:2]),
                        str(doc.get("cvv2", "")))
        else:
            instrument = as_str(doc.get("instrument"), "instrument")
            method, _, brand = instrument.partition(":")
            wallet = brand or None
        return ChargeRequest(
            idempotency_key=key,
            payment_id=as_str(doc.get("merchantRef"), "merchantRef"),
            amount=int(amount),
            currency=currency,
            method=method,
            country=str(doc.get("merchantCountry", "")),
            card=card,
            wallet_brand=wallet,
            customer_id=doc.get("cardholderRef"),
        )

    def provider_ref(self, serial: int) -> str:
        return f"{scramble(serial) % 10**12:012d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        doc = _message(outcome, "0210", _RESPONSE_CODES[outcome.code])
        if outcome.code == "approved":
            doc["authIdResponse"] = outcome.provider_ref[-6:]
        return json_reply(200, doc)

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_found_reply()
        code = outcome.code
        rc = _RESPONSE_CODES.get(code, "00")
        doc = _message(outcome, "0110", rc)
        doc["txnState"] = _STATES.get(code, "DECLINED")
        return json_reply(200, doc)

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _not_found_reply()
        if outcome.code.startswith("declined."):
            doc = _message(outcome, "0410", "12")
            doc["originalResponseCode"] = _RESPONSE_CODES[outcome.code]
        elif outcome.code == REFUNDED:
            doc = _message(outcome, "0210", "00")
            doc["processingCode"] = "200000"
        else:
            doc = _message(outcome, "0410", "00")
        return json_reply(200, doc)

    def render_bad_request(self, reason: str) -> HttpReply:
        return json_reply(400, {"mti": "0210", "responseCode": "30", "message": reason})

    def server_error(self) -> HttpReply:
        return json_reply(200, {"mti": "0210", "responseCode": "96",
                                "message": "system malfunction"})

    def rate_limited(self) -> HttpReply:
        return HttpReply(429, "text/plain", b"Too Many Requests\n")


def _message(outcome: SimOutcome, mti: str, rc: str) -> dict[str, Any]:
    return {"mti": mti, "responseCode": rc, "retrievalRef": outcome.provider_ref,
            "merchantRef": outcome.payment_id, "amount": f"{outcome.amount:012d}",
            "currencyCode": ISO_NUMERIC.get(outcome.currency, "999")}


def _not_found(doc: dict[str, Any]) -> ProviderAnswer:
    if str(doc["responseCode"]) == "25":
        return ProviderAnswer(LOOKUP_NOT_FOUND, None, "RC 25")
    return ProviderAnswer(UNKNOWN, None, f"RC {doc['responseCode']}")


def _not_found_reply() -> HttpReply:
    return json_reply(404, {"mti": "0110", "responseCode": "25",
                            "message": "unable to locate record"})
