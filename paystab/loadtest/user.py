"""The checkout user: waits for an arrival, pays, records what the customer saw.

A FastHttpUser (host, timeouts and Locust's statistics work as usual). Against an
``http://`` target each user owns a lane of the process's event-driven engine
(``engine.py``): the engine sends and reads for every user from one greenlet, and the user's
own greenlet only waits to be stopped. Against ``https://`` each user drives its own
geventhttpclient connection (:class:`DirectTransport`) and reports every attempt to
Locust's request event. Either way attempts appear in Locust's statistics under
``POST /v1/payments [method]``.

Users form the pool the pacer hands arrivals to. Waiting for an arrival happens inside
Locust's ``wait_time`` — i.e. in Locust's *waiting* state — so stopping a run never waits
for idle users, while a checkout in progress is allowed to finish (``stop_timeout``).
The first task iteration has no arrival yet (Locust runs a task before the first wait) and
does nothing.
"""

from __future__ import annotations

import time
from typing import Any

from gevent.event import Event
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from paystab.loadtest.checkout import perform_checkout
from paystab.loadtest.engine import CheckoutEngine, Lane
from paystab.loadtest.pacing import UserSlot
from paystab.loadtest.records import CheckoutRecord
from paystab.loadtest.session import LoadSession, session_for
from paystab.loadtest.transport import DirectTransport


class CheckoutUser(FastHttpUser):
    """A shop customer paying through the payment API (``POST /v1/payments``)."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        session = session_for(environment)
        timeout_s = session.plan.retry.attempt_timeout_s if session.plan else 10.0
        # FastHttpUser reads these while building its client, so set them first.
        self.network_timeout = self.connection_timeout = timeout_s
        super().__init__(environment)
        self._session: LoadSession = session
        self._slot = UserSlot()
        self._lane: Lane | None = None
        self._transport: DirectTransport | None = None
        if str(self.host).startswith("http://"):
            if session.engine is None:
                session.engine = CheckoutEngine(session, str(self.host))
        else:
            self._transport = DirectTransport(str(self.host), timeout_s)
        self._request_event = environment.events.request

    def _report(self, name: str, ms: float, length: int, error: BaseException | None) -> None:
        self._request_event.fire(request_type="POST", name=name, response_time=ms,
                                 response_length=length, exception=error, context={},
                                 start_time=time.time() - ms / 1000.0, url=name)

    def on_start(self) -> None:
        if self._transport is None and self._session.engine is not None:
            self._lane = self._session.engine.add_lane()

    def on_stop(self) -> None:
        if self._lane is not None and self._session.engine is not None:
            self._session.engine.retire(self._lane)
            self._lane = None
        if self._transport is not None:
            self._transport.close()

    def wait_time(self) -> float:
        if self._lane is not None:
            # The engine works this user's lane; the greenlet waits (in Locust's *waiting*
            # state, so a stop never waits for it) until Locust stops the user.
            Event().wait()
            return 0.0
        pacer = self._session.pacer
        if pacer is None:
            return 0.5  # no plan yet (a worker before the master's plan arrives)
        pacer.wait_for_arrival(self._slot)
        return 0.0

    @task
    def checkout(self) -> None:
        slot = self._slot
        seq = slot.seq
        if seq < 0:
            return
        slot.seq = -1
        session = self._session
        pacer, factory, plan = session.pacer, session.factory, session.plan
        assert pacer is not None and factory is not None and plan is not None
        started = time.time()
        lag_ms = max(started - slot.scheduled_at, 0.0) * 1000.0
        finished = False
        assert self._transport is not None
        try:
            payment = factory.payment(seq)
            key = f"{plan.run_id}-{session.stream}-{seq}"
            result = perform_checkout(self._transport, payment, key, plan.retry, plan.path,
                                      self._report)
            session.record(CheckoutRecord(
                started_at=started, method=payment.method, currency=payment.currency,
                outcome=result.outcome, status=result.status, code=result.code,
                latency_ms=result.latency_ms, attempts=result.attempts,
                http_status=result.http_status, lag_ms=lag_ms, stream=session.stream, seq=seq,
            ))
            finished = True
        finally:
            if not finished:
                # killed mid-checkout (forced stop): the outcome is unknown to the customer
                session.interrupted_checkouts += 1
            pacer.done(seq, lag_ms)
