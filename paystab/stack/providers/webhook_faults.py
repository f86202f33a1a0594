"""Webhook faults and fail-first sequences of the provider simulators.

The ``webhook_*`` faults (see the table in ``faults.py``) apply to a provider's outgoing
events (operation ``webhook``, ``stack/webhooks.py``): they set the webhook fields of a
:class:`~paystab.stack.providers.faults.FaultPlan`. :class:`FailFirst` counts the requests
that carry a dialect's fail-first magic value (``dialects.routes.parse_fail_first``).
Importing this module registers the faults; ``faults.py`` does so at its end.
"""

from __future__ import annotations

import random
from typing import ClassVar

from paystab.stack.dialects.base import ChargeRequest
from paystab.stack.providers.faults import WEBHOOK, Fault, FaultPlan, Param, _hit, register


@register
class WebhookDelay(Fault):
    type = "webhook_delay"
    params: ClassVar[dict[str, Param]] = {"added_ms": Param("ms"), "jitter_ms": Param("ms", 0.0)}
    default_operations = (WEBHOOK,)

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        added_ms = self.values["added_ms"]
        if self.values["jitter_ms"]:
            added_ms += rng.uniform(-self.values["jitter_ms"], self.values["jitter_ms"])
        plan.webhook_delay_s += max(0.0, added_ms) / 1000.0


@register
class WebhookDuplicate(Fault):
    type = "webhook_duplicate"
    params: ClassVar[dict[str, Param]] = {"ratio": Param("ratio", 1.0),
                                          "copies": Param("count", 1)}
    default_operations = (WEBHOOK,)

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        if _hit(self.values["ratio"], rng):
            plan.webhook_copies += self.values["copies"]


@register
class WebhookReorder(Fault):
    type = "webhook_reorder"
    params: ClassVar[dict[str, Param]] = {"window_ms": Param("ms")}
    default_operations = (WEBHOOK,)

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        plan.webhook_hold_s = max(plan.webhook_hold_s, self.values["window_ms"] / 1000.0)


@register
class WebhookDrop(Fault):
    type = "webhook_drop"
    params: ClassVar[dict[str, Param]] = {"ratio": Param("ratio", 1.0)}
    default_operations = (WEBHOOK,)

    def apply(self, plan: FaultPlan, request: ChargeRequest | None, now: float,
              rng: random.Random) -> None:
        if _hit(self.values["ratio"], rng):
            plan.webhook_drop = True


class FailFirst:
    """Fail the first N requests carrying the same magic token, then let them through.

    Counted per token for the provider's lifetime (a restart starts over); at most
    ``_MAX_TOKENS`` tokens are remembered, oldest forgotten first.
    """

    _MAX_TOKENS = 10_000

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def fails(self, token: str, times: int) -> bool:
        """True while fewer than ``times`` requests with ``token`` have failed."""
        count = self._seen.get(token, 0)
        if count >= times:
            return False
        if token not in self._seen and len(self._seen) >= self._MAX_TOKENS:
            del self._seen[next(iter(self._seen))]
        self._seen[token] = count + 1
        return True
