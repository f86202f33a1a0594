"""The dialect contract: how one provider's wire format maps to paystab's neutral types.

A dialect module holds both sides of one provider API, so they cannot drift apart:

* the **client side**, used by the gateway: build the HTTP call for a charge, a status
  look-up by idempotency key and a void; parse each answer into a :class:`ProviderAnswer`
  with a unified code (``stack/errors.py``). Parsers never raise: anything they cannot read
  (bad JSON/XML, wrong content type, truncated body, unexpected status) is
  ``error.malformed``; a 5xx in the provider's style is ``error.provider_5xx``; 429 is
  ``error.rate_limited``.
* the **server side**, used by the simulator: authenticate a request the way that PSP does
  (``authenticate``, called before any payment endpoint is served), parse a request in the
  dialect into a :class:`ChargeRequest`, and render a :class:`SimOutcome` or an injected
  error in the dialect (status code, content type, body).

Dialects register themselves by name in ``stack/dialects/__init__.py``; provider specs in
``stack/catalog.py`` name the dialect they speak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

# What a status look-up answers when the provider never saw that key: safe to retry
# elsewhere without any risk of a double charge.
LOOKUP_NOT_FOUND = "lookup.not_found"
VOIDED = "voided"
# A captured charge whose money went back after settlement (server side: the refund
# operation). Look-ups and voids of a refunded charge answer this.
REFUNDED = "refunded"

InjectedError = Literal["server_error", "rate_limited", "malformed", "bad_gateway"]


@dataclass(frozen=True, slots=True)
class Card:
    number: str
    exp_month: int
    exp_year: int
    cvc: str

    def __repr__(self) -> str:  # never print a PAN, even by accident in a traceback
        return f"Card(****{self.number[-4:]}, {self.exp_month:02d}/{self.exp_year})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """A charge as the gateway asks for it, independent of any dialect."""

    idempotency_key: str  # per provider attempt; the same key may be sent again to retry
    payment_id: str  # the gateway's payment; every dialect carries it as a reference
    amount: int  # minor units
    currency: str
    method: str  # card | wallet | bank_transfer | konbini
    country: str
    card: Card | None = None
    wallet_brand: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class HttpCall:
    method: str  # GET | POST | DELETE
    path: str  # with query string
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InboundCall:
    """One request to a simulator's payment endpoint, as ``Dialect.authenticate`` sees it.

    The simulator builds it after ``match`` and after reading the whole body (an HMAC
    signature covers the body), before anything else happens to the request: no fault,
    no parsing, no charge-book access. New fields may be added; dialects read only the
    ones they need.
    """

    method: str  # GET | POST | DELETE
    path: str  # the raw request target, percent-encoded, with its query string
    headers: dict[str, str]  # lower-case names
    body: bytes
    operation: str  # what ``match`` said: charge | status | void | refund
    # The provider's own API secret for this simulator (a secret key, an API key, an HMAC
    # key), or None when the stack configured none: then a dialect accepts the call as it
    # does today. Never log it, never put it in a reply.
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderAnswer:
    """A provider's answer on the gateway side, in unified terms."""

    code: str  # a unified code, or LOOKUP_NOT_FOUND / VOIDED for look-ups and voids
    provider_ref: str | None = None  # the provider's transaction id
    detail: str = ""  # the provider's own reason, for logs and spans (never a PAN)
    http_status: int = 0


@dataclass(frozen=True, slots=True)
class SimOutcome:
    """What the simulator decided for one charge (or found for a look-up)."""

    code: str  # unified code: approved | pending | declined.* ; or VOIDED
    provider_ref: str
    amount: int
    currency: str
    payment_id: str
    idempotency_key: str
    method: str = ""  # card | wallet | bank_transfer | konbini, when known


class Dialect(Protocol):
    """One provider API. See the module docstring for who uses which half."""

    name: str
    content_type: str  # what this dialect speaks, e.g. application/json or application/xml

    # -- client side (gateway) ---------------------------------------------------------
    def charge_call(self, request: ChargeRequest) -> HttpCall: ...

    def parse_charge(self, status: int, content_type: str, body: bytes) -> ProviderAnswer: ...

    def status_call(self, idempotency_key: str) -> HttpCall: ...

    def parse_status(self, status: int, content_type: str, body: bytes) -> ProviderAnswer: ...

    def void_call(self, idempotency_key: str, provider_ref: str | None) -> HttpCall: ...

    def parse_void(self, status: int, content_type: str, body: bytes) -> ProviderAnswer:
        """VOIDED, REFUNDED, the charge's own declined.* code (nothing was captured, so
        nothing to void), LOOKUP_NOT_FOUND, or an error.* code. Also parses refund answers."""
        ...

    def refund_call(self, idempotency_key: str) -> HttpCall:
        """Give back the money of a captured charge (answer parsed by ``parse_void``)."""
        ...

    # -- server side (simulator) -------------------------------------------------------
    def authenticate(self, call: InboundCall) -> HttpReply | None:
        """The PSP's own authentication of a payment-endpoint request.

        None = accepted; otherwise the reply this PSP sends to a caller it does not
        accept (e.g. 401 with its own error document), which the simulator sends as is
        and counts as ``unauthenticated``. It runs for every operation ``match``
        recognises, before faults and parsing, so a refused caller can neither charge,
        look up, void nor refund, nor learn whether a key exists. It must compare secrets
        in constant time (``hmac.compare_digest``) and must not raise.
        ``AcceptEveryCaller.authenticate`` (the default every dialect inherits through
        ``DialectBase``) accepts every call.
        """
        ...

    def match(self, method: str, path: str) -> tuple[str, str | None] | None:
        """Which operation a request is: ("charge"|"status"|"void"|"refund", key or None).

        ``path`` is the raw request target (percent-encoded, with its query string); the
        key is returned decoded. Every dialect carries the key of status/void/refund in
        the path or query, so the key is None only for "charge".
        """
        ...

    def parse_charge_request(self, headers: dict[str, str], body: bytes) -> ChargeRequest:
        """Raise ValueError with a reason for a request the provider would reject.

        ``headers`` has lower-case names.
        """
        ...

    def provider_ref(self, serial: int) -> str:
        """The provider's transaction id for the ``serial``-th charge (unique per serial)."""
        ...

    def render_charge(self, outcome: SimOutcome) -> HttpReply: ...

    def render_status(self, outcome: SimOutcome | None) -> HttpReply:
        """``outcome.code`` is the charge's current state: approved, pending, declined.*,
        VOIDED or REFUNDED; None = the key is unknown."""
        ...

    def render_void(self, outcome: SimOutcome | None) -> HttpReply:
        """Answer to a void or a refund: code VOIDED, REFUNDED, or the charge's declined.*
        code (nothing to give back); None = the key is unknown."""
        ...

    def render_bad_request(self, reason: str) -> HttpReply: ...

    def render_injected_error(self, kind: InjectedError) -> HttpReply: ...


class AcceptEveryCaller:
    """The default ``authenticate``, for dialects whose PSP has no scheme of its own.

    With no secret configured (a simulator on loopback) every call is accepted. Bound off
    loopback the stack gives each such provider a random secret, and then a call must carry
    ``Authorization: Bearer <secret>`` (compared in constant time) or gets a plain 401: an
    unauthenticated caller on the network can neither charge, look up nor void. Dialects
    inherit this through ``_support.DialectBase`` and override ``authenticate`` and
    ``client_auth_headers`` with their PSP's own scheme (secret-key bearer, API-key header,
    HMAC signature).
    """

    def authenticate(self, call: InboundCall) -> HttpReply | None:
        if not call.secret:
            return None
        import hmac

        given = call.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {call.secret}".encode()):
            return None
        return HttpReply(401, "application/problem+json",
                         b'{"type":"about:blank","title":"Unauthorized","status":401,'
                         b'"detail":"a bearer token is required off loopback"}',
                         {"WWW-Authenticate": "Bearer"})



def uses_bearer_default(dialect: object) -> bool:
    """Does ``dialect`` authenticate callers with :class:`AcceptEveryCaller`'s bearer rule
    (so the gateway presents its secret as ``Authorization: Bearer``)?"""
    method = getattr(type(dialect), "authenticate", None)
    return method is AcceptEveryCaller.authenticate
