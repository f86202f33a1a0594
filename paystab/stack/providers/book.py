"""The charge book of one simulated provider: idempotency, look-ups, voids, completion.

Every charge is keyed by its idempotency key. The first request for a key starts the
provider's *processing*: a timer that fires after the sampled service time, decides the
charge and writes it to the ledger. That processing belongs to the provider, not to the
HTTP request, so a client that gives up (timeout, dropped connection) does not stop it:
the charge still lands, as it would at a real PSP — the "late success" a gateway must
void. While it runs, the key has an in-flight future: concurrent requests with the same
key, status look-ups and voids wait for it instead of starting a second charge or
answering "not found" (which would tell the gateway a retry elsewhere is safe).

Konbini and bank-transfer charges are decided ``pending`` and become ``captured`` after
``async_completion_s`` unless voided first. A card charge made with ``hold=True`` (a manual-
capture authorization, e.g. Stripe's ``capture_method=manual``) is also ``pending`` — the
money is promised, not moved — until :meth:`ChargeBook.capture` captures it or a void
releases it; an authorization nobody captures expires (``voided``) after
``AUTHORIZATION_VALIDITY_S``, as card authorizations do. State survives restarts: the book
reloads the ledger, and pending charges complete (or expire) on schedule.

Routed dialects address charges by their own ids: ``charge`` takes the ``provider_ref`` to
record (else ``dialect.provider_ref(serial)``) and a ``decide`` override (a PSP's own test
cards), and ``key_of(provider_ref)`` finds the key back. ``on_change`` listeners hear every
status change made by the book itself (async completion, expiry), so a dialect can emit
its webhook events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from paystab.stack.catalog import ProviderSpec
from paystab.stack.dialects.base import REFUNDED, VOIDED, ChargeRequest, Dialect, SimOutcome
from paystab.stack.providers.ledger import ProviderLedger
from paystab.stack.providers.model import ChargeModel

_DECISION_STATUS = {"approved": "captured", "pending": "pending"}
_STATUS_CODE = {"captured": "approved", "pending": "pending", "voided": VOIDED,
                "refunded": REFUNDED}


# Card authorizations held for manual capture expire after this long (7 days, as Stripe's).
AUTHORIZATION_VALIDITY_S = 7 * 24 * 3600.0


class ProviderStopped(ConnectionError):
    """The provider shut down while a charge was being processed."""


@dataclass(slots=True)
class ChargeRecord:
    key: str
    payment_id: str
    provider_ref: str
    amount: int
    currency: str
    method: str
    decision: str  # what the charge was answered with
    status: str  # captured | pending | declined | voided | refunded

    def charge_outcome(self) -> SimOutcome:
        return SimOutcome(self.decision, self.provider_ref, self.amount, self.currency,
                          self.payment_id, self.key, self.method)

    def current_outcome(self) -> SimOutcome:
        code = _STATUS_CODE.get(self.status, self.decision)
        return SimOutcome(code, self.provider_ref, self.amount, self.currency, self.payment_id,
                          self.key, self.method)

    def same_request(self, request: ChargeRequest) -> bool:
        return (self.payment_id, self.amount, self.currency) == (
            request.payment_id, request.amount, request.currency)


class ChargeBook:
    def __init__(self, spec: ProviderSpec, dialect: Dialect, ledger: ProviderLedger,
                 model: ChargeModel) -> None:
        self.spec = spec
        self._dialect = dialect
        self._ledger = ledger
        self._model = model
        self._loop = asyncio.get_running_loop()
        self._records: dict[str, ChargeRecord] = {}
        self._inflight: dict[str, asyncio.Future[ChargeRecord]] = {}
        self._processing: dict[str, asyncio.Handle] = {}
        self._completions: dict[str, asyncio.TimerHandle] = {}
        self._serial = ledger.max_id()
        self._by_ref: dict[str, str] = {}
        self.on_change: list[Callable[[ChargeRecord], None]] = []
        self._reload()

    def _reload(self) -> None:
        now = time.time()
        for row in self._ledger.rows():
            record = ChargeRecord(row.idempotency_key, row.payment_id, row.provider_ref,
                                  row.amount, row.currency, row.method, row.code, row.status)
            self._records[row.idempotency_key] = record
            self._by_ref[row.provider_ref] = row.idempotency_key
            if row.status == "pending":
                due = max(0.0, (row.completes_at or now) - now)
                self._completions[record.key] = self._loop.call_later(
                    due, self._complete, record.key)

    # -- operations --------------------------------------------------------------------
    async def charge(self, request: ChargeRequest, delay_s: float, *,
                     provider_ref: str | None = None,
                     decide: Callable[[ChargeRequest], str] | None = None,
                     hold: bool = False) -> tuple[SimOutcome, bool]:
        """The charge's outcome and whether it was a replay of an earlier request.

        ``provider_ref`` names the charge (default: the dialect's ``provider_ref``),
        ``decide`` replaces the model's decision, ``hold`` authorizes an approved card
        charge without capturing it (see the module docstring). Raises ValueError when the
        key was used before for another payment or amount.
        """
        key = request.idempotency_key
        record = self._records.get(key)
        if record is not None:
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            return self._replay(record, request), True
        pending = self._inflight.get(key)
        if pending is not None:
            return self._replay(await asyncio.shield(pending), request), True
        future: asyncio.Future[ChargeRecord] = self._loop.create_future()
        self._inflight[key] = future
        # Decided in a loop callback even without delay, so the ledger's group commit runs
        # before this handler resumes and answers.
        options = (provider_ref, decide, hold)
        self._processing[key] = (
            self._loop.call_later(delay_s, self._decide, request, future, options)
            if delay_s > 0 else self._loop.call_soon(self._decide, request, future, options))
        record = await asyncio.shield(future)
        return record.charge_outcome(), False

    def key_of(self, provider_ref: str) -> str | None:
        """The idempotency key of the charge called ``provider_ref``, if any."""
        return self._by_ref.get(provider_ref)

    def record(self, key: str) -> ChargeRecord | None:
        """The settled record of ``key`` (None while in flight or unknown)."""
        return self._records.get(key)

    async def capture(self, key: str) -> SimOutcome | None:
        """Capture a held authorization: pending card charge → captured.

        Anything else is answered as it stands (capturing twice is harmless).
        """
        record = await self._settled(key)
        if record is None:
            return None
        if record.status == "pending" and record.method == "card":
            timer = self._completions.pop(key, None)
            if timer is not None:
                timer.cancel()
            self._set_status(record, "captured")
        return record.current_outcome()

    async def lookup(self, key: str) -> SimOutcome | None:
        record = await self._settled(key)
        return None if record is None else record.current_outcome()

    async def void(self, key: str, refund: bool = False) -> SimOutcome | None:
        """Give the money back: VOIDED (or REFUNDED for a refund of a captured charge).

        A declined charge answers its decline (nothing to give back); voiding twice is
        harmless.
        """
        record = await self._settled(key)
        if record is None:
            return None
        if record.status in ("captured", "pending"):
            status = "refunded" if refund and record.status == "captured" else "voided"
            timer = self._completions.pop(key, None)
            if timer is not None:
                timer.cancel()
            self._set_status(record, status)
        return record.current_outcome()

    def close(self) -> None:
        """Stop timers; requests still waiting on processing get ProviderStopped."""
        for handle in (*self._processing.values(), *self._completions.values()):
            handle.cancel()
        self._processing.clear()
        self._completions.clear()
        for future in self._inflight.values():
            if not future.done():
                future.set_exception(ProviderStopped("provider stopped"))
                future.exception()  # retrieved: nobody may be waiting any more
        self._inflight.clear()

    # -- internals ---------------------------------------------------------------------
    async def _settled(self, key: str) -> ChargeRecord | None:
        pending = self._inflight.get(key)
        record = await asyncio.shield(pending) if pending is not None else self._records.get(key)
        self._ledger.flush()  # what we answer about must be committed
        return record

    def _replay(self, record: ChargeRecord, request: ChargeRequest) -> SimOutcome:
        if not record.same_request(request):
            raise ValueError("idempotency key already used for a different request")
        self._ledger.flush()  # never answer from a decision that is not committed yet
        return record.charge_outcome()

    def _decide(self, request: ChargeRequest, future: asyncio.Future[ChargeRecord],
                options: tuple[str | None, Callable[[ChargeRequest], str] | None, bool]
                ) -> None:
        key = request.idempotency_key
        self._processing.pop(key, None)
        provider_ref, decide, hold = options
        try:
            decision = (decide or self._model.decide)(request)
            status = _DECISION_STATUS.get(decision, "declined")
            self._serial += 1
            ref = provider_ref or self._dialect.provider_ref(self._serial)
            now = time.time()
            wait_s = self.spec.async_completion_s
            if hold and status == "captured" and request.method == "card":
                status, wait_s = "pending", AUTHORIZATION_VALIDITY_S
            completes_at = now + wait_s if status == "pending" else None
            self._ledger.insert(key, request.payment_id, ref, request.amount, request.currency,
                                request.method, status, decision, now, completes_at)
            record = ChargeRecord(key, request.payment_id, ref, request.amount,
                                  request.currency, request.method, decision, status)
            self._records[key] = record
            self._by_ref[ref] = key
            if completes_at is not None:
                self._completions[key] = self._loop.call_later(wait_s, self._complete, key)
        except Exception as exc:  # the ledger failed: answer an error, never a fake outcome
            self._inflight.pop(key, None)
            if not future.done():
                future.set_exception(exc)
                future.exception()  # waiters still get it; no "never retrieved" noise
            return
        self._inflight.pop(key, None)
        if not future.done():
            future.set_result(record)

    def _complete(self, key: str) -> None:
        self._completions.pop(key, None)
        record = self._records.get(key)
        if record is not None and record.status == "pending":
            # an uncaptured card authorization expires; a konbini slip gets paid
            self._set_status(record, "voided" if record.method == "card" else "captured")
            for listener in self.on_change:
                listener(record)

    def _set_status(self, record: ChargeRecord, status: str) -> None:
        self._ledger.set_status(record.key, status, time.time())
        record.status = status
