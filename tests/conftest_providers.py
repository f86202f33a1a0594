"""Helpers for the provider simulator tests: real simulators, a gateway-side client.

``simulators(specs, tmp_path)`` starts real simulators on ephemeral 127.0.0.1 ports in the
test's event loop; :class:`DialectClient` is what the gateway does with a dialect: build
the call, send it over real HTTP, parse the answer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from paystab.stack.catalog import (
    CARD_BRANDS,
    METHODS,
    WALLET_BRANDS,
    LatencyModel,
    ProviderSpec,
    default_providers,
)
from paystab.stack.dialects import DIALECTS, get_dialect
from paystab.stack.dialects.base import Card, ChargeRequest, HttpCall, ProviderAnswer
from paystab.stack.dialects.routes import routes_of
from paystab.stack.endpoints import ProviderEndpoint
from paystab.stack.providers import RunningProviders, start_providers

T = TypeVar("T")
# Key-addressed dialects; routed ones (stripe) are tested with their SDKs (test_sdk_*).
DIALECT_NAMES = sorted(n for n, d in DIALECTS.items() if routes_of(d) is None)
FAST = LatencyModel(median_ms=1.0, sigma=0.1, max_ms=5.0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def universal_spec(dialect: str, **changes: Any) -> ProviderSpec:
    """A provider speaking ``dialect`` that takes every method, brand, currency, country."""
    spec = ProviderSpec(f"t-{dialect}", dialect, METHODS, card_brands=CARD_BRANDS,
                        wallet_brands=WALLET_BRANDS, latency=FAST, decline_mix={},
                        async_completion_s=0.3)
    return replace(spec, **changes)


def fast_catalog() -> list[ProviderSpec]:
    return [replace(s, latency=FAST, async_completion_s=0.3) for s in default_providers()]


@asynccontextmanager
async def simulators(specs: list[ProviderSpec], data_dir: Path,
                     **kwargs: Any) -> AsyncIterator[RunningProviders]:
    running = await start_providers(specs, data_dir=data_dir, seed=kwargs.pop("seed", 7),
                                    **kwargs)
    try:
        yield running
    finally:
        await running.stop()


class DialectClient:
    """The gateway side of one provider: dialect calls over a real HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: ProviderEndpoint) -> None:
        self.session = session
        self.endpoint = endpoint
        self.dialect = get_dialect(endpoint.dialect)
        auth = getattr(self.dialect, "client_auth_headers", None)  # as the gateway does
        self.auth: dict[str, str] = auth(endpoint.api_key) if auth and endpoint.api_key else {}

    async def send(self, call: HttpCall, timeout_s: float = 5.0) -> tuple[int, str, bytes]:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.request(call.method, self.endpoint.url + call.path,
                                        headers={**call.headers, **self.auth}, data=call.body,
                                        timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.read()

    async def charge(self, request: ChargeRequest, timeout_s: float = 5.0) -> ProviderAnswer:
        reply = await self.send(self.dialect.charge_call(request), timeout_s)
        return self.dialect.parse_charge(*reply)

    async def status(self, key: str) -> ProviderAnswer:
        return self.dialect.parse_status(*await self.send(self.dialect.status_call(key)))

    async def void(self, key: str, ref: str | None = None) -> ProviderAnswer:
        return self.dialect.parse_void(*await self.send(self.dialect.void_call(key, ref)))

    async def refund(self, key: str) -> ProviderAnswer:
        return self.dialect.parse_void(*await self.send(self.dialect.refund_call(key)))


def card_charge(key: str, number: str = "4242424242424242", amount: int = 1000,
                currency: str = "JPY", exp: tuple[int, int] = (12, 2030),
                payment_id: str | None = None, country: str = "JP") -> ChargeRequest:
    return ChargeRequest(key, payment_id or f"pay_{key}", amount, currency, "card", country,
                         card=Card(number, exp[0], exp[1], "123"))


def async_charge(key: str, method: str = "konbini") -> ChargeRequest:
    return ChargeRequest(key, f"pay_{key}", 5000, "JPY", method, "JP")


def wallet_charge(key: str, brand: str = "paypay", currency: str = "JPY") -> ChargeRequest:
    return ChargeRequest(key, f"pay_{key}", 700, currency, "wallet", "JP", wallet_brand=brand)


def random_card(rng: random.Random, prefix: str = "4") -> str:
    """A Luhn-valid 16-digit number that is not a test card."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    for check in range(10):
        candidate = body + str(check)
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0,
                     what: str = "condition") -> None:
    """Poll ``check`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
