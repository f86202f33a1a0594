"""charlie: a CyberSource/Worldpay-like card processor that speaks XML.

A ``<requestMessage>`` carries ``merchantReferenceCode`` (the payment id), the idempotency
key as ``<clientRequestToken>``, amounts as **decimals in major units**
(``<grandTotalAmount>19.99</grandTotalAmount>``) and the card. Every answer, declines and
most errors included, is HTTP 200 with a ``<replyMessage>``: ``<decision>`` ACCEPT / REJECT /
ERROR and a numeric ``<reasonCode>`` (100 success, 2xx declines, 102 invalid field, 150
general system failure, 151/152 timeouts). Only throttling (429) and a missing record (404)
use other HTTP statuses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from paystab.stack.dialects._support import (
    UNKNOWN,
    DialectBase,
    as_int,
    from_major,
    media_type,
    quote_key,
    scramble,
    split_target,
    to_major,
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

XML_CT = "application/xml"
_XML_TYPES = ("application/xml", "text/xml")
_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'
_PROCESSOR = "/commerce/1.x/transactionProcessor"
_TX = "/commerce/1.x/transactions"
_DECLINES = {
    "declined.expired_card": "202",
    "declined.do_not_honor": "203",
    "declined.insufficient_funds": "204",
    "declined.fraud": "205",
    "declined.limit_exceeded": "210",
    "declined.invalid_data": "231",
    "declined.issuer_unavailable": "236",
    "declined.not_supported": "240",
}
_BY_REASON = {v: k for k, v in _DECLINES.items()}
_BY_REASON.update({"102": "declined.invalid_data", "101": "declined.invalid_data"})
_STATES = {"approved": "AUTHORIZED", "pending": "PENDING", VOIDED: "VOIDED",
           REFUNDED: "REFUNDED"}
_BY_STATE = {v: k for k, v in _STATES.items()}


def _el(tag: str, value: object) -> str:
    return f"<{tag}>{escape(str(value))}</{tag}>"


class CharlieDialect(DialectBase):
    name = "charlie"
    content_type = XML_CT
    charge_statuses = frozenset({200})
    status_statuses = frozenset({200, 404})
    void_statuses = frozenset({200, 404})

    def decode(self, content_type: str, body: bytes) -> Any | None:
        if media_type(content_type) not in _XML_TYPES or b"<!DOCTYPE" in body:
            return None  # no DTDs: no entity expansion tricks
        try:
            return ET.fromstring(body)
        except ET.ParseError:
            return None

    # -- client side -------------------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall:
        parts = [
            "<requestMessage>", _el("merchantID", "paystab_jp"),
            _el("merchantReferenceCode", request.payment_id),
            _el("clientRequestToken", request.idempotency_key),
            "<billTo>", _el("country", request.country),
        ]
        if request.customer_id:
            parts.append(_el("customerID", request.customer_id))
        parts += ["</billTo>", "<purchaseTotals>", _el("currency", request.currency),
                  _el("grandTotalAmount", to_major(request.amount, request.currency)),
                  "</purchaseTotals>"]
        if request.card is not None:
            c = request.card
            parts += ["<card>", _el("accountNumber", c.number),
                      _el("expirationMonth", f"{c.exp_month:02d}"),
                      _el("expirationYear", c.exp_year), _el("cvNumber", c.cvc), "</card>",
                      '<ccAuthService run="true"/>', '<ccCaptureService run="true"/>']
        else:
            parts += ["<apPaymentType>", _el("method", request.method)]
            if request.wallet_brand:
                parts.append(_el("brand", request.wallet_brand))
            parts += ["</apPaymentType>", '<apSaleService run="true"/>']
        parts.append("</requestMessage>")
        body = (_PROLOG + "".join(parts)).encode()
        return HttpCall("POST", _PROCESSOR, {"Content-Type": XML_CT}, body)

    def status_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("GET", f"{_TX}?clientRequestToken={quote_key(idempotency_key)}", {})

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall:
        return HttpCall("POST", f"{_TX}/{quote_key(idempotency_key)}/void",
                        {"Content-Type": XML_CT}, b"")

    def refund_call(self, idempotency_key: str) -> HttpCall:
        return HttpCall("POST", f"{_TX}/{quote_key(idempotency_key)}/credit",
                        {"Content-Type": XML_CT}, b"")

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        return _reply_answer(doc)

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        state = doc.findtext("transactionStatus")
        if state in ("VOIDED", "REFUNDED"):
            return ProviderAnswer(_BY_STATE[state], doc.findtext("requestID"), state)
        return _reply_answer(doc)

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        if status == 404:
            return _not_found(doc)
        answer = _reply_answer(doc)
        if answer.code != "approved":
            return answer
        if doc.find("voidReply") is not None:
            return ProviderAnswer(VOIDED, answer.provider_ref, "voidReply 100")
        if doc.find("ccCreditReply") is not None:
            return ProviderAnswer(REFUNDED, answer.provider_ref, "ccCreditReply 100")
        return ProviderAnswer(UNKNOWN, answer.provider_ref, "no void or credit reply")

    # -- server side -------------------------------------------------------------------
    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        seg, query = split_target(path)
        if seg == ["commerce", "1.x", "transactionProcessor"] and method == "POST":
            return ("charge", None)
        if seg[:3] != ["commerce", "1.x", "transactions"]:
            return None
        if len(seg) == 3 and method == "GET" and query.get("clientRequestToken"):
            return ("status", query["clientRequestToken"])
        if len(seg) == 5 and method == "POST":
            return {"void": ("void", seg[3]), "credit": ("refund", seg[3])}.get(seg[4])
        return None

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        root = self.decode(headers.get("content-type", ""), body)
        if root is None or root.tag != "requestMessage":
            raise ValueError("body is not an XML requestMessage")
        currency = _text(root, "purchaseTotals/currency")
        card_el = root.find("card")
        card = None
        wallet = None
        if card_el is not None:
            method = "card"
            card = Card(_text(card_el, "accountNumber"),
                        as_int(_text(card_el, "expirationMonth"), "expirationMonth"),
                        as_int(_text(card_el, "expirationYear"), "expirationYear"),
                        card_el.findtext("cvNumber") or "")
        else:
            method = _text(root, "apPaymentType/method")
            wallet = root.findtext("apPaymentType/brand")
        return ChargeRequest(
            idempotency_key=_text(root, "clientRequestToken"),
            payment_id=_text(root, "merchantReferenceCode"),
            amount=from_major(_text(root, "purchaseTotals/grandTotalAmount"), currency),
            currency=currency,
            method=method,
            country=root.findtext("billTo/country") or "",
            card=card,
            wallet_brand=wallet,
            customer_id=root.findtext("billTo/customerID"),
        )

    def provider_ref(self, serial: int) -> str:
        return f"{scramble(serial):022d}"

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        return _xml(200, _reply(outcome, outcome.code))

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        code = outcome.code
        shown = "approved" if code in (VOIDED, REFUNDED) else code
        state = _STATES.get(code, "DECLINED")
        return _xml(200, _reply(outcome, shown, _el("transactionStatus", state)))

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        if outcome is None:
            return _missing_reply()
        if outcome.code.startswith("declined."):  # the original decline, nothing to void
            return _xml(200, _reply(outcome, outcome.code))
        tag = "voidReply" if outcome.code == VOIDED else "ccCreditReply"
        extra = f"<{tag}><reasonCode>100</reasonCode>{_el('amount', _major(outcome))}</{tag}>"
        return _xml(200, _reply(outcome, "approved", extra))

    def render_bad_request(self, reason: str) -> HttpReply:
        body = ("<replyMessage><decision>REJECT</decision><reasonCode>102</reasonCode>"
                f"{_el('invalidField', reason)}</replyMessage>")
        return _xml(200, body)

    def server_error(self) -> HttpReply:
        return _xml(200, "<replyMessage><decision>ERROR</decision><reasonCode>150</reasonCode>"
                         "</replyMessage>")

    def rate_limited(self) -> HttpReply:
        return _xml(429, "<fault><faultcode>Throttled</faultcode>"
                         "<faultstring>request rate too high</faultstring></fault>")


def _major(outcome: SimOutcome) -> str:
    return to_major(outcome.amount, outcome.currency)


def _reply(outcome: SimOutcome, code: str, extra: str = "") -> str:
    if code in ("approved", "pending"):
        decision, reason = "ACCEPT", "100"
        service = (f"<ccAuthReply><reasonCode>100</reasonCode>{_el('amount', _major(outcome))}"
                   "<authorizationCode>831000</authorizationCode></ccAuthReply>")
        if code == "pending":
            service = "<apReply><paymentStatus>PENDING</paymentStatus></apReply>"
    else:
        decision, reason = "REJECT", _DECLINES[code]
        service = ""
    return ("<replyMessage>" + _el("merchantReferenceCode", outcome.payment_id)
            + _el("requestID", outcome.provider_ref) + _el("decision", decision)
            + _el("reasonCode", reason) + _el("clientRequestToken", outcome.idempotency_key)
            + service + extra + "</replyMessage>")


def _reply_answer(doc: Any) -> ProviderAnswer:
    if doc.tag != "replyMessage":
        raise ValueError("not a replyMessage")
    decision = doc.findtext("decision")
    reason = doc.findtext("reasonCode") or ""
    if not decision or not reason:
        raise ValueError("replyMessage without decision or reasonCode")
    ref = doc.findtext("requestID")
    detail = f"{decision} {reason}"
    if decision == "ACCEPT" and reason == "100":
        pending = doc.findtext("apReply/paymentStatus") == "PENDING"
        return ProviderAnswer("pending" if pending else "approved", ref, detail)
    if decision == "REJECT":
        return ProviderAnswer(_BY_REASON.get(reason, UNKNOWN), ref, detail)
    if decision == "ERROR":
        code = "error.timeout" if reason in ("151", "152") else "error.provider_5xx"
        return ProviderAnswer(code, ref, detail)
    return ProviderAnswer(UNKNOWN, ref, detail)


def _not_found(doc: Any) -> ProviderAnswer:
    if doc.tag == "error" and doc.findtext("code") == "NOT_FOUND":
        return ProviderAnswer(LOOKUP_NOT_FOUND, None, "NOT_FOUND")
    return ProviderAnswer(UNKNOWN, None, "404 without NOT_FOUND")


def _missing_reply() -> HttpReply:
    return _xml(404, "<error><code>NOT_FOUND</code>"
                     "<message>no transaction for this clientRequestToken</message></error>")


def _text(root: Any, path: str) -> str:
    value = root.findtext(path)
    if not value:
        raise ValueError(f"{path} is required")
    return str(value)


def _xml(status: int, body: str) -> HttpReply:
    return HttpReply(status, XML_CT, (_PROLOG + body).encode())
