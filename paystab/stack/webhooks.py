"""Outgoing webhooks of a simulated PSP: signed delivery, retries, and webhook faults.

A routed dialect (``stack/dialects/routes.py``) turns what happens to money into its PSP's
event documents and hands each one to :meth:`WebhookSender.send` with the dialect's
``sign`` function; the sender POSTs it to every registered :class:`WebhookTarget` (the shop's
endpoint), signed per target secret, off the request path (a slow or dead endpoint never
slows the API). A delivery that does not get a 2xx is retried with exponential backoff
(``RETRY_DELAYS_S``: bounded, like the PSPs' own retry schedules, only shorter).

Webhook faults (``stack/providers/faults.py``, operation ``webhook``) apply per event:
``webhook_delay`` (leave late), ``webhook_duplicate`` (deliver more than once, same event id),
``webhook_reorder`` (hold events for a window, then deliver the newest first) and
``webhook_drop`` (never deliver). Only loopback URLs are accepted: all traffic stays local.
Nothing here logs payloads; ``deliveries`` keeps the last outcomes for tests and the docs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from paystab.net import is_loopback_host

if TYPE_CHECKING:  # imported lazily: dialects import this module, providers import dialects
    from paystab.stack.providers.faults import FaultSet

log = logging.getLogger(__name__)

# Seconds before each retry of a failed delivery; then the event is given up.
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
_DELIVERY_TIMEOUT_S = 5.0
_HISTORY = 1000

# (payload, secret, unix time) -> headers that sign it, in the PSP's scheme
Signer = Callable[[bytes, str, float], dict[str, str]]


def check_webhook_url(url: str) -> str:
    """``url`` if it is an http(s) URL on a loopback host; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("webhook url must be an http:// or https:// URL")
    if not is_loopback_host(parts.hostname):
        raise ValueError("webhook url must be on a loopback host (127.0.0.1, ::1, localhost)")
    return url


@dataclass(slots=True)
class WebhookTarget:
    """One endpoint of the shop: where events go and the secret that signs them."""

    id: str
    url: str
    secret: str
    events: frozenset[str] | None = None  # None = every event type

    def wants(self, event_type: str) -> bool:
        return self.events is None or "*" in self.events or event_type in self.events


@dataclass(frozen=True, slots=True)
class Delivery:
    target_id: str
    event_type: str
    event_id: str
    attempt: int
    status: int  # HTTP status; 0 = no answer; -1 = dropped by a webhook_drop fault
    at: float  # unix seconds


@dataclass
class WebhookSender:
    """Delivers one provider's events; faults come from that provider's :class:`FaultSet`."""

    faults: FaultSet
    ssl_context: ssl.SSLContext | None = None  # trust for https:// endpoints
    targets: dict[str, WebhookTarget] = field(default_factory=dict)
    deliveries: deque[Delivery] = field(default_factory=lambda: deque(maxlen=_HISTORY))
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _held: list[tuple[str, str, bytes, Signer]] = field(default_factory=list, repr=False)
    _held_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def add_target(self, target: WebhookTarget) -> None:
        check_webhook_url(target.url)
        self.targets[target.id] = target

    def wants(self, event_type: str) -> bool:
        """Whether any target takes ``event_type`` (skip building events nobody gets)."""
        return any(t.wants(event_type) for t in self.targets.values())

    def send(self, event_type: str, event_id: str, payload: bytes, sign: Signer) -> None:
        """Queue one event for every target that wants it; returns at once."""
        if not self.wants(event_type):
            return
        plan = self.faults.plan("webhook", None, time.monotonic()) if self.faults else None
        if plan is not None and plan.webhook_drop:
            self._record("*", event_type, event_id, 0, -1)
            return
        copies = plan.webhook_copies if plan is not None else 0
        added_s = plan.webhook_delay_s if plan is not None else 0.0
        hold_s = plan.webhook_hold_s if plan is not None else 0.0
        for copy in range(1 + copies):
            delay_s = added_s + 0.01 * copy
            if hold_s > 0:
                self._hold(event_type, event_id, payload, sign, hold_s)
            else:
                self._spawn(event_type, event_id, payload, sign, delay_s)

    def _hold(self, event_type: str, event_id: str, payload: bytes, sign: Signer,
              hold_s: float) -> None:
        self._held.append((event_type, event_id, payload, sign))
        if self._held_timer is None:
            loop = asyncio.get_running_loop()
            self._held_timer = loop.call_later(hold_s, self._release)

    def _release(self) -> None:
        held, self._held, self._held_timer = self._held, [], None
        for index, (event_type, event_id, payload, sign) in enumerate(reversed(held)):
            self._spawn(event_type, event_id, payload, sign, 0.005 * index)

    def _spawn(self, event_type: str, event_id: str, payload: bytes, sign: Signer,
               delay_s: float) -> None:
        for target in list(self.targets.values()):
            if target.wants(event_type):
                task = asyncio.get_running_loop().create_task(
                    self._deliver(target, event_type, event_id, payload, sign, delay_s))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, target: WebhookTarget, event_type: str, event_id: str,
                       payload: bytes, sign: Signer, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        for attempt, retry_s in enumerate((*RETRY_DELAYS_S, None), start=1):
            status = await self._post(target, payload, sign)
            self._record(target.id, event_type, event_id, attempt, status)
            if 200 <= status < 300 or retry_s is None:
                return
            await asyncio.sleep(retry_s)

    async def _post(self, target: WebhookTarget, payload: bytes, sign: Signer) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=_DELIVERY_TIMEOUT_S), trust_env=False)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "paystab-webhooks/1.0",
                   **sign(payload, target.secret, time.time())}
        try:
            async with self._session.post(target.url, data=payload, headers=headers,
                                          ssl=self.ssl_context or True) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0

    def _record(self, target_id: str, event_type: str, event_id: str, attempt: int,
                status: int) -> None:
        self.deliveries.append(Delivery(target_id, event_type, event_id, attempt, status,
                                        time.time()))

    async def close(self) -> None:
        """Cancel pending deliveries and close the HTTP session."""
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None
