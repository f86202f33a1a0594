"""The orders table in PostgreSQL (psycopg 3, async), and the few statements the shop runs.

One row per order; ``reference`` is the merchant reference the PSPs file the payment under
(and what reconciliation matches on). ``state`` moves created → processing → paid |
declined | failed, each step one conditional UPDATE, so two pay requests for the same order
cannot both charge it. Amounts are integer minor units. No card data is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id            BIGSERIAL PRIMARY KEY,
    reference     TEXT NOT NULL UNIQUE,
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    currency      CHAR(3) NOT NULL,
    state         TEXT NOT NULL DEFAULT 'created'
                  CHECK (state IN ('created', 'processing', 'paid', 'declined', 'failed')),
    psp           TEXT,
    psp_reference TEXT,
    decline_code  TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
_COLUMNS = "reference, amount_minor, currency, state, psp, psp_reference, decline_code"


@dataclass(frozen=True)
class Order:
    reference: str
    amount_minor: int
    currency: str
    state: str
    psp: str | None = None
    psp_reference: str | None = None
    decline_code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.reference, "amount": self.amount_minor, "currency": self.currency,
                "state": self.state, "psp": self.psp, "psp_reference": self.psp_reference}


def _order(row: dict[str, Any] | None) -> Order | None:
    return None if row is None else Order(**row)


class Orders:
    """A few autocommit connections handed out in turn (enough for short statements)."""

    def __init__(self, url: str, size: int = 6) -> None:
        self.url = url
        self.size = size
        self._idle: asyncio.Queue[psycopg.AsyncConnection[dict[str, Any]]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self._idle.put_nowait(await self._connect())
        async with self._connection() as conn:
            await conn.execute(SCHEMA)

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        return await psycopg.AsyncConnection.connect(self.url, autocommit=True, row_factory=dict_row,
                                                     connect_timeout=10)

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        conn = await self._idle.get()
        try:
            if conn.closed:  # the server restarted: reconnect on next use
                conn = await self._connect()
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Order | None:
        async with self._connection() as conn:
            cursor = await conn.execute(sql, params)
            return _order(await cursor.fetchone())

    async def create(self, reference: str, amount_minor: int, currency: str) -> Order:
        order = await self._one(
            f"INSERT INTO orders (reference, amount_minor, currency) VALUES (%s, %s, %s) "
            f"RETURNING {_COLUMNS}", (reference, amount_minor, currency))
        assert order is not None
        return order

    async def get(self, reference: str) -> Order | None:
        return await self._one(f"SELECT {_COLUMNS} FROM orders WHERE reference = %s", (reference,))

    async def claim(self, reference: str) -> Order | None:
        """created → processing; None when the order is not (or no longer) payable."""
        return await self._one(
            f"UPDATE orders SET state = 'processing', updated_at = now() "
            f"WHERE reference = %s AND state = 'created' RETURNING {_COLUMNS}", (reference,))

    async def finish(self, reference: str, state: str, psp: str | None,
                     psp_reference: str | None, decline_code: str | None = None) -> Order | None:
        return await self._one(
            f"UPDATE orders SET state = %s, psp = %s, psp_reference = %s, decline_code = %s, "
            f"updated_at = now() WHERE reference = %s AND state = 'processing' "
            f"RETURNING {_COLUMNS}", (state, psp, psp_reference, decline_code, reference))
