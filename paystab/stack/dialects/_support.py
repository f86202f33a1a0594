"""Plumbing every dialect shares: safe decoding, the transport rules, reply helpers.

:class:`DialectBase` implements the client-side rules that are the same for every provider
(429 → ``error.rate_limited``, any 5xx → ``error.provider_5xx``, an HTTP status the
operation cannot answer with, a wrong content type or an undecodable body →
``error.malformed``, and a mapper that trips over a missing field → ``error.malformed``) so
a dialect module only says how its own documents map to unified codes. Nothing here knows a
particular provider.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from paystab.stack.dialects.base import (
    AcceptEveryCaller,
    HttpReply,
    InjectedError,
    ProviderAnswer,
    SimOutcome,
)

JSON_CT = "application/json"
FORM_CT = "application/x-www-form-urlencoded"
MALFORMED = "error.malformed"
UNKNOWN = "error.unknown"

# ISO 4217 minor units, for the dialects that send decimal major-unit amounts.
MINOR_UNITS = {"JPY": 0, "KRW": 0}
ISO_NUMERIC = {
    "JPY": "392", "USD": "840", "EUR": "978", "KRW": "410",
    "SGD": "702", "IDR": "360", "BRL": "986", "GBP": "826",
}
ISO_ALPHA = {v: k for k, v in ISO_NUMERIC.items()}

_MASK64 = (1 << 64) - 1

# What an nginx in front of any provider answers when its upstream is gone.
_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def scramble(serial: int) -> int:
    """A bijection on 64 bits: unique references that do not look sequential."""
    return ((serial + 1) * 0x9E3779B97F4A7C15) & _MASK64


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_reply(status: int, obj: object, content_type: str = JSON_CT) -> HttpReply:
    return HttpReply(status, content_type, dumps(obj))


def bad_gateway() -> HttpReply:
    return HttpReply(502, "text/html", _BAD_GATEWAY_HTML)


def truncated(reply: HttpReply) -> HttpReply:
    """A reply cut in half: what a dying proxy or a buggy serializer sends."""
    return HttpReply(200, reply.content_type, reply.body[: max(1, len(reply.body) // 2)])


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def load_json_object(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def require_json(body: bytes) -> dict[str, Any]:
    """Server side: a JSON object or ValueError (the simulator answers 400)."""
    doc = load_json_object(body)
    if doc is None:
        raise ValueError("body is not a JSON object")
    return doc


def parse_form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("body is not a form") from None


def quote_key(key: str) -> str:
    return quote(key, safe="")


def split_target(target: str) -> tuple[list[str], dict[str, str]]:
    """``/a/b%2Fc?x=1`` → (["a", "b/c"], {"x": "1"}): decoded segments and query."""
    path, _, query = target.partition("?")
    segments = [unquote(s) for s in path.strip("/").split("/")]
    params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    return segments, params


def as_int(value: object, name: str) -> int:
    """Server side: an integer field (int or digit string) or ValueError naming it."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"{name} must be an integer")


def as_str(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def to_major(amount: int, currency: str) -> str:
    """Minor units → a decimal string in major units (``1999`` USD → ``"19.99"``)."""
    digits = MINOR_UNITS.get(currency, 2)
    if digits == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def from_major(text: str, currency: str) -> int:
    digits = MINOR_UNITS.get(currency, 2)
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > digits:
        raise ValueError("amount is not a decimal in major units")
    scale: int = 10**digits
    return int(whole) * scale + (int(frac.ljust(digits, "0")) if frac else 0)


def invert(table: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


Mapper = Callable[[int, Any], ProviderAnswer]


class DialectBase(AcceptEveryCaller):
    """Client-side rules shared by every dialect; subclasses map their own documents.

    A subclass sets ``name``, ``content_type`` and the HTTP statuses each operation may
    answer with, and implements ``charge_answer``/``status_answer``/``void_answer`` (which
    may raise anything on a missing or odd field: that becomes ``error.malformed``), plus
    the server half of :class:`~paystab.stack.dialects.base.Dialect`.
    """

    name = ""
    content_type = JSON_CT
    charge_statuses: frozenset[int] = frozenset({200})
    status_statuses: frozenset[int] = frozenset({200, 404})
    void_statuses: frozenset[int] = frozenset({200, 404})

    # -- decoding ----------------------------------------------------------------------
    def decode(self, content_type: str, body: bytes) -> Any | None:
        """The body as this dialect's document, or None when it cannot be read."""
        if media_type(content_type) != JSON_CT:
            return None
        return load_json_object(body)

    # -- client side -------------------------------------------------------------------
    def parse_charge(self, status: int, content_type: str, body: bytes) -> ProviderAnswer:
        return self._parse(status, content_type, body, self.charge_statuses, self.charge_answer)

    def parse_status(self, status: int, content_type: str, body: bytes) -> ProviderAnswer:
        return self._parse(status, content_type, body, self.status_statuses, self.status_answer)

    def parse_void(self, status: int, content_type: str, body: bytes) -> ProviderAnswer:
        return self._parse(status, content_type, body, self.void_statuses, self.void_answer)

    def charge_answer(self, status: int, doc: Any) -> ProviderAnswer:
        raise NotImplementedError

    def status_answer(self, status: int, doc: Any) -> ProviderAnswer:
        raise NotImplementedError

    def void_answer(self, status: int, doc: Any) -> ProviderAnswer:
        raise NotImplementedError

    def _parse(
        self, status: int, content_type: str, body: bytes, allowed: frozenset[int], mapper: Mapper
    ) -> ProviderAnswer:
        if status == 429:
            return ProviderAnswer("error.rate_limited", None, "HTTP 429", status)
        if status >= 500:
            return ProviderAnswer("error.provider_5xx", None, f"HTTP {status}", status)
        if status not in allowed:
            return ProviderAnswer(MALFORMED, None, f"unexpected HTTP {status}", status)
        doc = self.decode(content_type, body)
        if doc is None:
            kind = media_type(content_type) or "no content type"
            return ProviderAnswer(MALFORMED, None, f"unreadable {kind} body", status)
        try:
            answer = mapper(status, doc)
        except Exception as exc:  # a parser never raises: odd answers are the provider's fault
            return ProviderAnswer(MALFORMED, None, f"unexpected document ({type(exc).__name__})",
                                  status)
        return ProviderAnswer(answer.code, answer.provider_ref, answer.detail, status)

    # -- server side -------------------------------------------------------------------
    def render_injected_error(self, kind: InjectedError) -> HttpReply:
        if kind == "server_error":
            return self.server_error()
        if kind == "rate_limited":
            return self.rate_limited()
        if kind == "bad_gateway":
            return bad_gateway()
        return self.malformed()

    def server_error(self) -> HttpReply:
        raise NotImplementedError

    def rate_limited(self) -> HttpReply:
        raise NotImplementedError

    def malformed(self) -> HttpReply:
        """A success answer cut in half, with this dialect's content type."""
        return truncated(self.render_charge(_SAMPLE))

    def render_charge(self, outcome: SimOutcome) -> HttpReply:
        raise NotImplementedError


_SAMPLE = SimOutcome("approved", "sample-ref", 1000, "JPY", "pay_sample", "key-sample")
