"""Routed dialects: a dialect that serves a PSP's whole API declares its routes here.

The original dialects are *key-addressed*: ``Dialect.match`` maps a request to one of four
operations (charge, status, void, refund) plus the gateway's idempotency key, and the
simulator does the rest. A real PSP API has many more endpoints, addressed by the PSP's
own ids (``POST /v1/payment_intents/{intent}/confirm``). A dialect that speaks such an API
sets ``routes`` (a :class:`RouteTable`) and ``match`` returns None for everything; the
simulator (``stack/providers/server.py``) then serves each request like this:

1. ``RouteTable.match(method, raw_path)`` finds the :class:`Route` and its path parameters
   (``{name}`` matches one percent-decoded segment; a literal segment wins over a
   parameter). No route: ``dialect.render_no_route(method, path)`` (the PSP's own 404).
2. ``dialect.authenticate`` (the PSP's own credential check) runs with
   ``operation=route.operation``.
3. ``route.parse(call)`` (optional) returns the :class:`ChargeRequest` the request would
   charge, or None; it raises :class:`RouteError` carrying the PSP's own error reply.
   Faults see that request (``partial_outage`` matches by method, currency and BIN).
4. The fault plan for ``route.operation`` applies as for every dialect: hang, injected
   error (rendered by ``dialect.render_injected_error``), added latency, trickled answer,
   and ``drop_response`` (the handler runs — money moves — then the connection closes).
5. ``await route.handler(call)`` answers with an :class:`HttpReply`. The handler must spend
   ``call.delay_s`` (the sampled service time plus latency faults): pass it to
   ``ChargeBook.charge`` for a charge, or ``await call.wait()`` otherwise. It reaches the
   provider through ``call.host`` (:class:`RouteHost`: spec, charge book, model, webhooks,
   and ``state``, the per-provider object ``dialect.new_state(host)`` built at start).
   It may raise :class:`RouteError` too.

``operation`` is one of charge | status | void | refund (the names faults and metrics use):
a capture counts as ``charge``, a cancel as ``void``, list/retrieve/search as ``status``.
Route handlers keep their PSP's ids in ``state``; money still moves only through the
charge book, so the provider ledger stays the reconciler's ground truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote

from paystab.stack.dialects.base import ChargeRequest, HttpReply, InjectedError

if TYPE_CHECKING:
    from paystab.stack.catalog import ProviderSpec
    from paystab.stack.providers.book import ChargeBook
    from paystab.stack.providers.model import ChargeModel
    from paystab.stack.webhooks import WebhookSender

ROUTE_OPERATIONS = ("charge", "status", "void", "refund")


class RouteError(Exception):
    """Answer ``reply`` instead of going on (the PSP's own 4xx document)."""

    def __init__(self, reply: HttpReply, result: str = "bad_request") -> None:
        super().__init__(result)
        self.reply = reply
        self.result = result  # the metrics label for this answer


class RouteHost(Protocol):
    """What a route handler may use of the simulated provider that serves it."""

    name: str
    spec: ProviderSpec
    book: ChargeBook
    model: ChargeModel
    url: str
    secret: str | None
    state: Any  # what ``dialect.new_state(host)`` built for this provider
    webhooks: WebhookSender | None


@dataclass(slots=True)
class RouteCall:
    """One request to a routed dialect, as its parser and handler see it."""

    method: str
    path: str  # raw target, with its query string
    params: dict[str, str]  # path parameters, decoded
    query: list[tuple[str, str]]  # decoded query pairs, in order (repeats kept)
    headers: dict[str, str]  # lower-case names
    body: bytes
    host: RouteHost
    delay_s: float = 0.0  # service time the handler must spend (see the module docstring)
    charge: ChargeRequest | None = None  # what ``route.parse`` returned
    # Set by ``route.parse`` from a request's magic value: (token, n, error) = the first n
    # requests carrying ``token`` answer the injected ``error`` (faults.FailFirst).
    fail_first: tuple[str, int, InjectedError] | None = None
    result: str = ""  # metrics label of the answer; default "ok" or "http_<status>"
    scratch: dict[str, Any] = field(default_factory=dict)  # parse → handler hand-over

    async def wait(self) -> None:
        """Spend the service time (for handlers that do not charge)."""
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
            self.delay_s = 0.0


RouteHandler = Callable[[RouteCall], Awaitable[HttpReply]]
ChargeParser = Callable[[RouteCall], "ChargeRequest | None"]


@dataclass(frozen=True, slots=True)
class Route:
    method: str  # GET | POST | DELETE
    pattern: str  # "/v1/payment_intents/{intent}/confirm"
    operation: str  # charge | status | void | refund
    handler: RouteHandler
    parse: ChargeParser | None = None

    def __post_init__(self) -> None:
        if self.operation not in ROUTE_OPERATIONS:
            raise ValueError(f"route {self.pattern}: operation must be one of "
                             f"{', '.join(ROUTE_OPERATIONS)}")


class RouteTable:
    """Routes indexed by (method, number of segments); literal segments beat parameters."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._index: dict[tuple[str, int], list[tuple[Route, tuple[str, ...]]]] = {}
        for route in self.routes:
            segments = tuple(route.pattern.strip("/").split("/"))
            self._index.setdefault((route.method, len(segments)), []).append((route, segments))
        for candidates in self._index.values():  # fewest parameters first
            candidates.sort(key=lambda c: sum(s.startswith("{") for s in c[1]))

    def match(self, method: str, target: str
              ) -> tuple[Route, dict[str, str], list[tuple[str, str]]] | None:
        """The route for ``method target``, its path parameters and query pairs; or None."""
        path, _, query = target.partition("?")
        segments = [unquote(s) for s in path.strip("/").split("/")]
        candidates = self._index.get((method, len(segments)))
        if not candidates:
            return None
        for route, pattern in candidates:
            params: dict[str, str] = {}
            for want, got in zip(pattern, segments, strict=True):
                if want.startswith("{"):
                    if not got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                pairs = parse_qsl(query, keep_blank_values=True) if query else []
                return route, params, pairs
        return None


class RoutedDialect(Protocol):
    """What a routed dialect adds to :class:`~paystab.stack.dialects.base.Dialect`."""

    routes: RouteTable

    def new_state(self, host: RouteHost) -> Any:
        """The per-provider state its handlers keep (objects by id, idempotency cache)."""
        ...

    def render_no_route(self, method: str, path: str) -> HttpReply:
        """The PSP's own answer to an endpoint it does not have."""
        ...


_INJECTED: tuple[InjectedError, ...] = ("server_error", "rate_limited", "malformed",
                                        "bad_gateway")


def parse_fail_first(value: str) -> tuple[int, InjectedError]:
    """A fail-first magic value: ``"N"`` or ``"N:error"`` → (N, error), N in 1..100.

    The error is one of server_error (default), rate_limited, malformed, bad_gateway;
    ValueError names what is wrong.
    """
    count, _, error = value.partition(":")
    if not count.isdigit() or not 1 <= int(count) <= 100:
        raise ValueError("paystab_fail_times must be N or N:error with N in 1..100")
    kind = error or "server_error"
    for known in _INJECTED:
        if kind == known:
            return int(count), known
    raise ValueError(f"paystab_fail_times error must be one of {', '.join(_INJECTED)}")


def routes_of(dialect: object) -> RouteTable | None:
    """The dialect's :class:`RouteTable`, or None for a key-addressed dialect."""
    table = getattr(dialect, "routes", None)
    return table if isinstance(table, RouteTable) else None
