"""A provider's own ledger: one SQLite file per simulated PSP, one row per idempotency key.

This is what the provider believes happened to money, the ground truth the reconciler
compares with the gateway's ledger (``read_ledger``). Columns:

==================  ===========================================================================
idempotency_key     the key the gateway sent (unique: one row per key, however often retried)
payment_id          the merchant's reference: the gateway's payment id, or a shop's order
                    (Stripe metadata[order_id]/description, Adyen reference, PayPay
                    merchantPaymentId, KOMOJU external_order_num)
provider_ref        the provider's transaction id
amount, currency    minor units, ISO 4217
method              card | wallet | bank_transfer | konbini
status              captured | pending | declined | voided | refunded (where the money is now)
code                the unified code the charge was *answered* with (approved, pending,
                    declined.*); it does not change when a pending charge completes
created_at          unix seconds when the provider decided the charge
updated_at          unix seconds of the last status change
completes_at        pending charges: when the customer pays at the counter / the transfer lands
==================  ===========================================================================

Money is with the merchant exactly when ``status == "captured"``; ``pending`` may still
become captured. The file is in WAL mode with ``synchronous=NORMAL``: committed writes
survive a process crash (not a power cut), and readers never block the writer. Inside an
event loop, new charges are *group-committed*: the inserts of one loop iteration share one
short transaction, committed by a callback queued before any answer can be sent (under load
that is ~3x cheaper than a transaction per insert); status changes commit at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

STATUSES = ("captured", "pending", "declined", "voided", "refunded")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    payment_id TEXT NOT NULL,
    provider_ref TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('captured','pending','declined','voided','refunded')),
    code TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    completes_at REAL
);
CREATE INDEX IF NOT EXISTS captures_payment_id ON captures (payment_id);
"""
_COLUMNS = ("id, idempotency_key, payment_id, provider_ref, amount, currency, method, status, "
            "code, created_at, updated_at, completes_at")


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    idempotency_key: str
    payment_id: str
    provider_ref: str
    amount: int
    currency: str
    method: str
    status: str
    code: str
    created_at: float
    updated_at: float
    completes_at: float | None


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def read_ledger(path: str | Path) -> list[LedgerRow]:
    """Every row of the provider ledger at ``path``, oldest first.

    Safe to call while the provider runs (WAL readers see the last committed state).
    Raises FileNotFoundError when there is no ledger at ``path`` (it never creates one).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no provider ledger at {p}")
    conn = sqlite3.connect(p, timeout=5.0)
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM captures ORDER BY id").fetchall()
    finally:
        conn.close()
    return [LedgerRow(*row) for row in rows]


class ProviderLedger:
    """The writer side, owned by one simulated provider (one event loop thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(path)
        self._conn.executescript(_SCHEMA)
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._batch_open = False

    def _begin(self) -> None:
        if not self._batch_open:
            self._conn.execute("BEGIN")
            self._batch_open = True
            if self._loop is not None:
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Commit the open group of inserts, if any."""
        if self._batch_open:
            self._batch_open = False
            self._conn.execute("COMMIT")

    def rows(self) -> list[LedgerRow]:
        self.flush()
        cursor = self._conn.execute(f"SELECT {_COLUMNS} FROM captures ORDER BY id")
        return [LedgerRow(*row) for row in cursor.fetchall()]

    def insert(
        self, key: str, payment_id: str, provider_ref: str, amount: int, currency: str,
        method: str, status: str, code: str, at: float, completes_at: float | None,
    ) -> int:
        """Insert a decided charge; committed before the loop runs anything else."""
        self._begin()
        cursor = self._conn.execute(
            "INSERT INTO captures (idempotency_key, payment_id, provider_ref, amount, currency,"
            " method, status, code, created_at, updated_at, completes_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, payment_id, provider_ref, amount, currency, method, status, code, at, at,
             completes_at),
        )
        if self._loop is None:
            self.flush()
        return int(cursor.lastrowid or 0)

    def set_status(self, key: str, status: str, at: float) -> None:
        """Change where the money is; committed before returning (voids are answered
        right after)."""
        self._begin()
        self._conn.execute(
            "UPDATE captures SET status = ?, updated_at = ? WHERE idempotency_key = ?",
            (status, at, key),
        )
        self.flush()

    def max_id(self) -> int:
        self.flush()
        row = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM captures").fetchone()
        return int(row[0])

    def close(self) -> None:
        self.flush()
        self._conn.close()
