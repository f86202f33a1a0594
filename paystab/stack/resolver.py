"""Attempts whose outcome is unknown, and payments a crash left half-done.

After a response timeout or a dropped answer the processor moves on to another provider,
but the first provider may still have charged. The resolver keeps asking it (status
look-up by key) and, when it finds a capture the payment did not use, voids it: the
customer is charged once. It also runs at start-up over what the ledger says was in flight
when the gateway last stopped: a payment whose attempt turns out captured is finished as
approved (the customer's retry with the same key then gets that answer), one with no
capture anywhere is released as failed so the retry runs again. Nothing is lost, nothing is
charged twice, and the reconciler can check both.
"""

from __future__ import annotations

import asyncio
import logging
import time

from paystab.collector.stats import GatewayStats
from paystab.stack.dialects.base import LOOKUP_NOT_FOUND, VOIDED
from paystab.stack.errors import lookup
from paystab.stack.ledger import GatewayLedger
from paystab.stack.processor import Processor, UnknownAttempt
from paystab.stack.provider_client import ConnectFailed, OutcomeUnknown, ProviderClient

log = logging.getLogger(__name__)

# A provider that still has not heard of a key this long after the attempt was given up
# never will: a PSP processes a charge within its own request lifetime (the simulators cap
# theirs at 1.5 s by default). Should one capture later anyway, the reconciler reports it as
# an orphan: nothing is hidden by giving up here.
ABSENT_AFTER_S = 10.0


class Resolver:
    def __init__(self, processor: Processor, ledger: GatewayLedger, stats: GatewayStats,
                 clients: dict[str, ProviderClient], interval_s: float = 0.5) -> None:
        self.processor = processor
        self.ledger = ledger
        self.stats = stats
        self.clients = clients
        self.interval_s = interval_s
        self.inflight_payments: set[str] = set()  # payments the processor is working on now
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._load_from_ledger()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def pending_count(self) -> int:
        return len(self.processor.unknown) + len(self._stranded())

    def _load_from_ledger(self) -> None:
        for row in self.ledger.attempts_in(("sent", "unknown")):
            self.processor.unknown[row.provider_key] = UnknownAttempt(
                row.payment_id, row.n, row.provider, row.provider_key, time.monotonic())

    def _stranded(self) -> list[str]:
        """Payments left ``processing`` by a previous process (none of ours in flight)."""
        return [p for p in self.ledger.payments_in(("processing",))
                if p not in self.inflight_payments]

    async def _loop(self) -> None:
        while True:
            try:
                await self.resolve_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the resolver must outlive any single bad answer
                log.exception("resolver pass failed")
            await asyncio.sleep(self.interval_s)

    async def resolve_once(self) -> int:
        """One pass; returns how many attempts or payments are still unresolved."""
        items = list(self.processor.unknown.values())
        if items:
            await asyncio.gather(*(self._resolve(item) for item in items))
        for payment_id in self._stranded():
            self._finish_stranded(payment_id)
        return self.pending_count()

    async def _resolve(self, item: UnknownAttempt) -> None:
        if item.payment_id in self.inflight_payments:
            return  # the processor may still adopt it; look again once the payment is final
        client = self.clients.get(item.provider)
        if client is None:
            self.processor.unknown.pop(item.key, None)
            return
        try:
            status, ctype, body = await client.send(client.dialect.status_call(item.key),
                                                    self.processor.lookup_timeout_s)
        except (ConnectFailed, OutcomeUnknown):
            return  # still unknown; try again next pass
        answer = client.dialect.parse_status(status, ctype, body)
        if answer.code == LOOKUP_NOT_FOUND:
            now = time.monotonic()
            if item.first_not_found is None:
                item.first_not_found = now
            # Counted from the first answer, not from the timeout: while a partition lasts
            # the provider cannot answer at all, and that time proves nothing.
            if now - item.first_not_found > ABSENT_AFTER_S:
                self.ledger.update_attempt(item.payment_id, item.n, "absent", None, None)
                self.processor.unknown.pop(item.key, None)
            return
        code = lookup(answer.code)
        if code.outcome == "declined" or answer.code == VOIDED:
            self.ledger.update_attempt(item.payment_id, item.n,
                                       "voided" if answer.code == VOIDED else "declined",
                                       answer.code, answer.provider_ref)
            self.processor.unknown.pop(item.key, None)
            return
        if code.outcome not in ("approved", "pending"):
            return  # an error answer to a look-up says nothing; ask again
        payment_status = self.ledger.payment_status(item.payment_id)
        if payment_status == "processing":
            self._adopt(item, answer.code, answer.provider_ref)
            return
        await self._void(client, item, answer.provider_ref)

    def _adopt(self, item: UnknownAttempt, code: str, provider_ref: str | None) -> None:
        status = "approved" if lookup(code).outcome == "approved" else "pending"
        response = {"id": item.payment_id, "status": status, "code": code,
                    "provider": item.provider, "attempts": item.n}
        stored = self.ledger.find_by_id(item.payment_id)
        if stored and stored.response:
            response = {**stored.response, **response}
        self.ledger.finish_payment(item.payment_id, status, code, item.provider, item.n, response,
                                   attempt=(item.n, "adopted", provider_ref))
        self.processor.unknown.pop(item.key, None)

    async def _void(self, client: ProviderClient, item: UnknownAttempt, ref: str | None) -> None:
        try:
            status, ctype, body = await client.send(client.dialect.void_call(item.key, ref),
                                                    self.processor.lookup_timeout_s * 3)
        except (ConnectFailed, OutcomeUnknown):
            return
        answer = client.dialect.parse_void(status, ctype, body)
        if answer.code == VOIDED:
            self.ledger.update_attempt(item.payment_id, item.n, "voided", VOIDED, ref)
            self.stats.provider(item.provider).late_success_voids += 1
            self.processor.unknown.pop(item.key, None)
            log.info("voided a late success at %s for %s", item.provider, item.payment_id)

    def _finish_stranded(self, payment_id: str) -> None:
        attempts = self.ledger.attempts_of(payment_id)
        if any(a.provider_key in self.processor.unknown for a in attempts):
            return  # wait until every attempt of it is known
        for a in attempts:
            if a.state in ("approved", "pending", "adopted") and a.code:
                item = UnknownAttempt(payment_id, a.n, a.provider, a.provider_key, 0.0)
                self._adopt(item, a.code, a.provider_ref)
                return
        stored = self.ledger.find_by_id(payment_id)
        response = dict(stored.response or {}) if stored else {}
        response.update({"id": payment_id, "status": "failed", "code": "error.unknown"})
        self.ledger.finish_payment(payment_id, "failed", "error.unknown", None, len(attempts),
                                   response)
