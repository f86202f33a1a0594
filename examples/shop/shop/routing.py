"""Which PSP a payment goes to, the failover switch, and voiding late successes.

Routing is primary/secondary: PSPs in ``SHOP_PSPS`` order, enabled ones first; a payment
goes to the first and moves to the next when the answer is not a decision (error, timeout).
Should every PSP be switched off, all are tried anyway in order: a switch that refused every
customer would turn a drill's mistake into an outage.

The switch (``PUT /internal/psp/{name}``) is what on-call, a feature-flag service or
``paystab watch`` flips. Switching a PSP off also releases the customers waiting on it right
now: their payments move on to the next PSP instead of waiting out the timeout, and the calls
left behind are handed to the :class:`LateSuccessVoider`.

A call that ended without a decision may still have charged the card (a read timeout, a lost
connection, a 5xx). The voider waits for the call to end, then asks the PSP to void whatever
it charged for that order (Stripe: search by reference, refund; Adyen: technical cancel),
retrying with backoff until the PSP answers: the order was paid elsewhere or failed, and the
customer must not pay twice. (It keeps its list in memory; a real shop would keep it in the
database to survive a restart.)
"""

from __future__ import annotations

import asyncio
import logging

from shop.metrics import ShopMetrics
from shop.psps import ChargeResult, Payment, Psp

log = logging.getLogger("shop.routing")


class Router:
    def __init__(self, psps: list[Psp], metrics: ShopMetrics) -> None:
        self.psps = {p.name: p for p in psps}
        self.order = [p.name for p in psps]
        self.enabled = dict.fromkeys(self.order, True)
        self._switched_off = {name: asyncio.Event() for name in self.order}
        self.metrics = metrics

    def candidates(self) -> list[Psp]:
        on = [self.psps[n] for n in self.order if self.enabled[n]]
        return on or [self.psps[n] for n in self.order]

    def set_enabled(self, name: str, enabled: bool, reason: str = "") -> None:
        if self.enabled[name] != enabled:
            log.warning("PSP %s %s%s", name, "enabled" if enabled else "disabled",
                        f" ({reason})" if reason else "")
        self.enabled[name] = enabled
        self.metrics.psp_enabled.labels(name).set(1 if enabled else 0)
        if enabled:
            self._switched_off[name].clear()
        else:
            self._switched_off[name].set()

    async def until_switched_off(self, name: str) -> None:
        await self._switched_off[name].wait()

    def describe(self) -> list[dict[str, object]]:
        return [{"name": n, "kind": self.psps[n].kind, "enabled": self.enabled[n],
                 "priority": i + 1} for i, n in enumerate(self.order)]


class LateSuccessVoider:
    """Voids what a PSP charged for a payment the shop finished elsewhere (or failed)."""

    def __init__(self, metrics: ShopMetrics, first_retry_s: float = 0.5,
                 max_retry_s: float = 5.0, give_up_after_s: float = 600.0) -> None:
        self.metrics = metrics
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self.give_up_after_s = give_up_after_s
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def watch(self, psp: Psp, payment: Payment, call: asyncio.Future[ChargeResult]) -> None:
        task = asyncio.get_running_loop().create_task(self._void(psp, payment, call))
        self._tasks.add(task)
        self.metrics.in_doubt.labels(psp.name).inc()

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self.metrics.in_doubt.labels(psp.name).dec()

        task.add_done_callback(done)

    async def _void(self, psp: Psp, payment: Payment, call: asyncio.Future[ChargeResult]) -> None:
        known: ChargeResult | None
        try:
            known = await asyncio.shield(call)  # the call has its own timeout
        except Exception:
            known = None
        if known is not None and not known.in_doubt and known.outcome != "approved":
            return  # the PSP decided against charging, or never got the request
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after_s
        delay_s = self.first_retry_s
        # Not at once: a PSP that just timed out is likely still down (and may still be
        # deciding the charge); then back off while it stays down.
        await asyncio.sleep(delay_s)
        while not await psp.void_late_success(payment, known):
            delay_s = min(self.max_retry_s, delay_s * 2)
            if loop.time() + delay_s > deadline:
                log.error("gave up voiding %s at %s: reconcile by hand", payment.reference, psp.name)
                return
            await asyncio.sleep(delay_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for the voids in progress, at shutdown."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
