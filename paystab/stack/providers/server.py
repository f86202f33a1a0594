"""The HTTP face of one simulated provider: an aiohttp low-level handler.

The low-level ``aiohttp.web.Server`` skips routing, middlewares and access logs, which
matters at thousands of requests per second on two cores: the dialect's ``match`` is the
router. Per request the handler asks the dialect what the request is, then whether the caller
is authenticated the way that PSP authenticates (``Dialect.authenticate``, before faults,
parsing or any look-up), the fault set what
to do to it (``None`` when no fault is active), and the charge book for the outcome; then
it renders the answer in the dialect, or hangs, drops, trickles or fails it as the faults
say. Card numbers are never logged: nothing here logs request data at all.

A *routed* dialect (one that serves a PSP's whole API, e.g. ``stripe``) declares its routes
instead: a :class:`~paystab.stack.dialects.routes.RouteTable` of (method, path pattern,
operation, handler[, charge parser]). :meth:`SimProvider.handle` then routes the request
through the table, and authentication, faults, latency, drops and trickling apply per route
exactly as they do per operation for the key-addressed dialects; the contract (who spends
the service time, how a handler refuses a request, how it reaches the charge book) is in
``stack/dialects/routes.py``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable

from aiohttp import web

from paystab.stack.catalog import ProviderSpec
from paystab.stack.dialects.base import ChargeRequest, Dialect, HttpReply, InboundCall
from paystab.stack.dialects.routes import RouteCall, RouteError, RouteTable, routes_of
from paystab.stack.providers.book import ChargeBook, ProviderStopped
from paystab.stack.providers.faults import FailFirst, FaultPlan, FaultSet
from paystab.stack.providers.ledger import ProviderLedger
from paystab.stack.providers.metrics import SimMetrics
from paystab.stack.providers.model import ChargeModel
from paystab.stack.webhooks import WebhookSender

MAX_BODY_BYTES = 64 * 1024
MAX_AMOUNT = 10**9
_SLOW_PIECES = 10


def _validate(request: ChargeRequest) -> None:
    if not 1 <= len(request.idempotency_key) <= 255:
        raise ValueError("idempotency key must be 1-255 characters")
    if not 1 <= request.amount <= MAX_AMOUNT:
        raise ValueError("amount must be between 1 and 10^9 minor units")
    if len(request.currency) != 3 or not request.currency.isalpha():
        raise ValueError("currency must be an ISO 4217 code")


def _response(reply: HttpReply) -> web.Response:
    headers = {"Content-Type": reply.content_type, **reply.headers}
    return web.Response(status=reply.status, body=reply.body, headers=headers)


def _detached(work: Awaitable[HttpReply]) -> asyncio.Future[HttpReply]:
    """A task that outlives its request; its error is retrieved even if nobody waits."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task


class SimProvider:
    """One simulated PSP: spec, dialect, ledger, charge book, faults and HTTP handler."""

    def __init__(self, spec: ProviderSpec, dialect: Dialect, ledger: ProviderLedger,
                 book: ChargeBook, model: ChargeModel, faults: FaultSet, metrics: SimMetrics,
                 stopping: asyncio.Event, secret: str | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.dialect = dialect
        self.ledger = ledger
        self.book = book
        self.model = model
        self.faults = faults
        self._metrics = metrics
        self._stopping = stopping
        self.url = ""  # set once listening
        # This PSP's own API secret, handed to ``dialect.authenticate`` (None = none set).
        self.secret = secret
        # Routed dialects: their route table, per-provider state and webhook sender.
        self.routes: RouteTable | None = routes_of(dialect)
        self.state: object = None
        self.webhooks: WebhookSender | None = None
        self.fail_first = FailFirst()
        new_state = getattr(dialect, "new_state", None)
        if self.routes is not None:
            self.webhooks = WebhookSender(faults)
            if new_state is not None:
                self.state = new_state(self)

    def _count(self, operation: str, result: str) -> None:
        self._metrics.count(self.name, operation, result)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self.routes is not None:
            return await self._handle_routed(request, self.routes)
        dialect = self.dialect
        matched = dialect.match(request.method, request.raw_path)
        if matched is None:
            self._count("unknown", "no_route")
            return web.Response(status=404, text="no such endpoint\n")
        operation, key = matched
        if (request.content_length or 0) > MAX_BODY_BYTES:
            self._count(operation, "bad_request")
            return _response(dialect.render_bad_request("request body too large"))
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        rejection = dialect.authenticate(InboundCall(
            request.method, request.raw_path, headers, body, operation, self.secret))
        if rejection is not None:
            self._count(operation, "unauthenticated")
            return _response(rejection)
        charge: ChargeRequest | None = None
        problem: str | None = None
        if operation == "charge":
            try:
                charge = dialect.parse_charge_request(headers, body)
                _validate(charge)
            except ValueError as exc:
                problem, charge = str(exc), None
        plan = self.faults.plan(operation, charge, time.monotonic()) if self.faults else None
        if plan is not None and plan.hang:
            return await self._hang(request, operation)
        delay_s = self.model.latency_s() + (plan.added_s if plan is not None else 0.0)
        try:
            reply, result = await self._answer(operation, key, charge, problem, plan, delay_s)
        except ProviderStopped:
            return self._drop(request)
        if (plan is not None and plan.drop and plan.error is None and charge is not None
                and result != "bad_request"):  # charged, then the answer is lost
            self._count(operation, "dropped")
            return self._drop(request)
        self._count(operation, result)
        if plan is not None and plan.slow_s > 0:
            return await self._trickle(request, reply, plan.slow_s)
        return _response(reply)

    async def _answer(self, operation: str, key: str | None, charge: ChargeRequest | None,
                      problem: str | None, plan: FaultPlan | None,
                      delay_s: float) -> tuple[HttpReply, str]:
        dialect = self.dialect
        if problem is not None or (plan is not None and plan.error is not None):
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if problem is not None:
                return dialect.render_bad_request(problem), "bad_request"
            assert plan is not None and plan.error is not None
            return dialect.render_injected_error(plan.error), f"injected.{plan.error}"
        if operation == "charge":
            assert charge is not None
            try:
                outcome, _replay = await self.book.charge(charge, delay_s)
            except ValueError as exc:  # the key was used for another request
                return dialect.render_bad_request(str(exc)), "bad_request"
            return dialect.render_charge(outcome), outcome.code
        assert key is not None
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if operation == "status":
            found = await self.book.lookup(key)
            return dialect.render_status(found), "found" if found else "not_found"
        voided = await self.book.void(key, refund=operation == "refund")
        return dialect.render_void(voided), voided.code if voided else "not_found"

    async def _handle_routed(self, request: web.BaseRequest,
                             routes: RouteTable) -> web.StreamResponse:
        """Serve one request of a routed dialect (see ``stack/dialects/routes.py``)."""
        dialect = self.dialect
        found = routes.match(request.method, request.raw_path)
        if found is None:
            self._count("unknown", "no_route")
            render_no_route = getattr(dialect, "render_no_route", None)
            if render_no_route is None:
                return web.Response(status=404, text="no such endpoint\n")
            return _response(render_no_route(request.method, request.raw_path))
        route, params, query = found
        operation = route.operation
        if (request.content_length or 0) > MAX_BODY_BYTES:
            self._count(operation, "bad_request")
            return _response(dialect.render_bad_request("request body too large"))
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        rejection = dialect.authenticate(InboundCall(
            request.method, request.raw_path, headers, body, operation, self.secret))
        if rejection is not None:
            self._count(operation, "unauthenticated")
            return _response(rejection)
        call = RouteCall(request.method, request.raw_path, params, query, headers, body, self)
        if route.parse is not None:
            try:
                call.charge = route.parse(call)
            except RouteError as exc:
                self._count(operation, exc.result)
                return _response(exc.reply)
        plan = self.faults.plan(operation, call.charge, time.monotonic()) if self.faults else None
        if call.fail_first is not None:
            token, times, error = call.fail_first
            if self.fail_first.fails(token, times):
                plan = plan or FaultPlan()
                plan.error = plan.error or error
        if plan is not None and plan.hang:
            return await self._hang(request, operation)
        call.delay_s = self.model.latency_s() + (plan.added_s if plan is not None else 0.0)
        if plan is not None and plan.error is not None:
            await call.wait()
            reply, result = dialect.render_injected_error(plan.error), f"injected.{plan.error}"
        else:
            try:
                if operation == "status":
                    reply = await route.handler(call)
                else:  # money moves: finish even if the client goes away (see book.py)
                    reply = await asyncio.shield(_detached(route.handler(call)))
                result = call.result or ("ok" if reply.status < 300 else f"http_{reply.status}")
            except RouteError as exc:
                reply, result = exc.reply, exc.result
            except ProviderStopped:
                return self._drop(request)
            await call.wait()  # a handler that answered early still takes the service time
            if (plan is not None and plan.drop and operation == "charge"
                    and reply.status != 400):  # charged, then the answer is lost
                self._count(operation, "dropped")
                return self._drop(request)
        self._count(operation, result)
        if plan is not None and plan.slow_s > 0:
            return await self._trickle(request, reply, plan.slow_s)
        return _response(reply)

    async def _hang(self, request: web.BaseRequest, operation: str) -> web.StreamResponse:
        """Accept and never answer. The server cancels this handler when the client goes
        away (``handler_cancellation``); on shutdown the connection is closed unanswered."""
        self._count(operation, "hang")
        await self._stopping.wait()
        return self._drop(request)

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.close()
        return web.Response(status=503)  # never reaches the client: the socket is closed

    @staticmethod
    async def _trickle(request: web.BaseRequest, reply: HttpReply,
                       duration_s: float) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status,
                                      headers={"Content-Type": reply.content_type,
                                               **reply.headers})
        response.content_length = len(reply.body)
        await response.prepare(request)
        body = reply.body
        step = max(1, math.ceil(len(body) / _SLOW_PIECES))
        pieces = max(1, math.ceil(len(body) / step))
        for start in range(0, len(body), step):
            await asyncio.sleep(duration_s / pieces)
            await response.write(body[start:start + step])
        await response.write_eof()
        return response
