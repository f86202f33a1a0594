"""A connect time-out the gateway's own event-loop lateness explains is retried once; one it
does not explain is the provider's (``ConnectFailed``, counted against it)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from paystab.stack.dialects import get_dialect
from paystab.stack.dialects.base import HttpCall
from paystab.stack.endpoints import ProviderEndpoint
from paystab.stack.provider_client import ConnectFailed, ProviderClient


class _Answer:
    def __init__(self) -> None:
        self.status = 200
        self.headers = {"Content-Type": "application/json"}

    async def read(self) -> bytes:
        return b"{}"

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None


class _FlakySession:
    """Times out the first ``failures`` connects, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise aiohttp.ConnectionTimeoutError("connect timed out")
        return _Answer()


def _client(session: _FlakySession, lag_s: float) -> ProviderClient:
    endpoint = ProviderEndpoint("card-x", "http://127.0.0.1:9", ["card"], "charlie", "/dev/null")
    return ProviderClient(endpoint, get_dialect("charlie"), session, 0.25,  # type: ignore[arg-type]
                          loop_lag_s=lambda: lag_s)


CALL = HttpCall("POST", "/charge", {}, b"{}")


def test_a_late_loop_gets_one_more_connect() -> None:
    session = _FlakySession(failures=1)
    client = _client(session, lag_s=0.4)
    assert asyncio.run(client.send(CALL, 2.0))[0] == 200
    assert session.calls == 2 and client.late_connects_retried == 1


def test_a_punctual_loop_blames_the_provider() -> None:
    session = _FlakySession(failures=1)
    client = _client(session, lag_s=0.01)
    with pytest.raises(ConnectFailed):
        asyncio.run(client.send(CALL, 2.0))
    assert session.calls == 1


def test_only_one_retry_even_when_the_loop_stays_late() -> None:
    session = _FlakySession(failures=5)
    client = _client(session, lag_s=1.0)
    with pytest.raises(ConnectFailed):
        asyncio.run(client.send(CALL, 2.0))
    assert session.calls == 2
