"""The gateway's SQLite ledger of payments and provider attempts.

WAL mode with ``synchronous=NORMAL``: a committed row survives the gateway process being
killed (the drill's ``gateway-crash`` runbook does exactly that), which is what RPO = 0
needs here. The order of writes is the point: a payment row and each attempt's *intent*
are committed **before** the provider is called, so after a crash the gateway (on restart)
and the reconciler know every provider key that may have been charged and can look it up.

States: payment ``processing`` → ``approved`` | ``declined`` | ``pending`` | ``failed``;
attempt ``sent`` → ``approved`` | ``declined`` | ``pending`` | ``error`` | ``unknown``
(outcome not known: timeout, dropped answer) → ``voided`` (a late success voided) |
``adopted`` (a late success that became the payment's answer) | ``absent`` (the provider
never saw it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paystab.exceptions import EnvironmentProblem
from paystab.stack.group_commit import GroupCommit, Statement

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
  id TEXT PRIMARY KEY,
  idempotency_key TEXT NOT NULL UNIQUE,  -- HMAC-SHA256 of the key (keyed_hash), never the key
  fingerprint TEXT NOT NULL,
  status TEXT NOT NULL,
  code TEXT,
  provider TEXT,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  method TEXT NOT NULL,
  country TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  response TEXT,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
  payment_id TEXT NOT NULL,
  n INTEGER NOT NULL,
  provider TEXT NOT NULL,
  provider_key TEXT NOT NULL,
  state TEXT NOT NULL,
  code TEXT,
  provider_ref TEXT,
  started_at REAL NOT NULL,
  ended_at REAL,
  PRIMARY KEY (payment_id, n)
);
CREATE INDEX IF NOT EXISTS attempts_state ON attempts(state);
CREATE INDEX IF NOT EXISTS payments_status ON payments(status);
"""

FINAL_STATUSES = ("approved", "declined", "pending")
log = logging.getLogger(__name__)

# What a staged write returns: await it for durability (None when no event loop runs).
Commit = asyncio.Future[None] | None


@dataclass(frozen=True)
class StoredPayment:
    id: str
    idempotency_key: str
    fingerprint: str
    status: str
    response: dict[str, Any] | None
    attempts: int


@dataclass(frozen=True)
class AttemptRow:
    payment_id: str
    n: int
    provider: str
    provider_key: str
    state: str
    code: str | None
    provider_ref: str | None
    started_at: float


class WalCheckpointer:
    """Copies the WAL back into the database file, on a thread of its own.

    SQLite's automatic checkpoint runs inside whichever COMMIT crosses its threshold and
    syncs the database file: on the gateway's event loop that stalls every payment in flight
    for a disk sync, every few dozen commits. So the gateway's connection never checkpoints;
    this thread does, every ``interval_s``, on its own connection. A PASSIVE checkpoint never
    blocks the writer (and is one statement: the thread holds the GIL only to start it), but
    under constant writes it never catches up with the end of the log, so the log would
    grow without end. Once it holds more than ``restart_frames`` frames, a RESTART
    checkpoint follows the PASSIVE one: it copies the few frames written meanwhile and makes
    the next transaction write the log from its start. The writer waits for that short
    remainder only (its busy timeout covers it).
    """

    def __init__(self, path: Path, interval_s: float = 0.25, restart_frames: int = 4096) -> None:
        self.path = path
        self.interval_s = interval_s
        self.restart_frames = restart_frames
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    self._checkpoint(db)
                except sqlite3.Error as exc:  # retried next interval; the log only grows meanwhile
                    log.warning("ledger checkpoint failed: %s", exc)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        _busy, log_frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log_frames > self.restart_frames:
            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            self.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class GatewayLedger:
    """Small on purpose: a few statements per payment, written through a group commit.

    Two ways to write. The gateway's hot path *stages* its writes (``begin_payment``,
    ``stage_intent``, ...) and awaits the returned future only where durability matters:
    before a provider is called and before the customer is answered (see
    ``group_commit``). Everything else (the resolver, tools) calls the plain methods, which
    commit at once after whatever is staged. Reads flush what is staged first, except
    :meth:`find_by_key`, which the gateway calls for keys that cannot have staged writes (a
    key with writes in flight is in the gateway's in-flight table until they are durable).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.executescript(SCHEMA)
        # Checkpoints run on a thread of their own (see WalCheckpointer), never in a COMMIT.
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        self.commits = GroupCommit(self.db)
        self.checkpointer = WalCheckpointer(self.path)

    def close(self) -> None:
        self.commits.flush()
        self.checkpointer.stop()
        self.db.close()

    def _now(self, owner: str, statements: list[Statement]) -> None:
        self.commits.write_now(owner, statements)

    # -- reads ------------------------------------------------------------------------
    def find_by_key(self, idempotency_key: str) -> StoredPayment | None:
        """Committed state only (no flush): see the class docstring for why that is enough."""
        row = self.db.execute(
            "SELECT id, idempotency_key, fingerprint, status, response, attempts "
            "FROM payments WHERE idempotency_key = ?", (idempotency_key,),
        ).fetchone()
        return self._payment(row)

    def find_by_id(self, payment_id: str) -> StoredPayment | None:
        self.commits.flush()
        row = self.db.execute(
            "SELECT id, idempotency_key, fingerprint, status, response, attempts "
            "FROM payments WHERE id = ?", (payment_id,),
        ).fetchone()
        return self._payment(row)

    @staticmethod
    def _payment(row: Any) -> StoredPayment | None:
        if row is None:
            return None
        return StoredPayment(row[0], row[1], row[2], row[3],
                             json.loads(row[4]) if row[4] else None, row[5])

    def attempts_in(self, states: tuple[str, ...]) -> list[AttemptRow]:
        self.commits.flush()
        marks = ",".join("?" * len(states))
        rows = self.db.execute(
            f"SELECT payment_id, n, provider, provider_key, state, code, provider_ref, started_at"
            f" FROM attempts WHERE state IN ({marks}) ORDER BY started_at", states,
        ).fetchall()
        return [AttemptRow(*r) for r in rows]

    def attempts_of(self, payment_id: str) -> list[AttemptRow]:
        self.commits.flush()
        rows = self.db.execute(
            "SELECT payment_id, n, provider, provider_key, state, code, provider_ref, started_at"
            " FROM attempts WHERE payment_id=? ORDER BY n", (payment_id,),
        ).fetchall()
        return [AttemptRow(*r) for r in rows]

    def payments_in(self, statuses: tuple[str, ...]) -> list[str]:
        self.commits.flush()
        marks = ",".join("?" * len(statuses))
        return [r[0] for r in self.db.execute(
            f"SELECT id FROM payments WHERE status IN ({marks})", statuses)]

    def payment_status(self, payment_id: str) -> str | None:
        self.commits.flush()
        row = self.db.execute("SELECT status FROM payments WHERE id=?", (payment_id,)).fetchone()
        return str(row[0]) if row else None

    # -- staged writes (the gateway's hot path) -----------------------------------------
    def begin_payment(self, payment_id: str, idempotency_key: str, fingerprint: str,
                      amount: int, currency: str, method: str, country: str) -> None:
        """Stage a new ``processing`` payment; durable with the first attempt's intent."""
        self.commits.stage(payment_id, [
            _new_payment(payment_id, idempotency_key, fingerprint, amount, currency, method, country)],
            wait=False)

    def stage_restart(self, payment_id: str) -> None:
        """A failed payment retried by the customer with the same key runs again."""
        self.commits.stage(payment_id, [(
            "UPDATE payments SET status='processing', updated_at=? WHERE id=?",
            (time.time(), payment_id),
        )], wait=False)

    def stage_intent(self, payment_id: str, n: int, provider: str, key: str) -> Commit:
        """Stage attempt ``n``'s intent; await it before the provider is called."""
        return self.commits.stage(payment_id, [_intent(payment_id, n, provider, key)])

    def stage_attempt_result(self, payment_id: str, n: int, state: str, code: str | None,
                             provider_ref: str | None) -> None:
        """Stage an attempt's outcome; durable with the payment's next awaited write."""
        self.commits.stage(payment_id, [_attempt_result(payment_id, n, state, code, provider_ref)],
                           wait=False)

    def stage_finish(self, payment_id: str, status: str, code: str, provider: str | None,
                     attempts: int, response: dict[str, Any] | str) -> Commit:
        """Stage the final state; await it before the customer is answered."""
        return self.commits.stage(payment_id, [_finish(payment_id, status, code, provider, attempts, response)])

    # -- immediate writes (the resolver) -----------------------------------------------
    def finish_payment(self, payment_id: str, status: str, code: str, provider: str | None,
                       attempts: int, response: dict[str, Any],
                       attempt: tuple[int, str, str | None] | None = None) -> None:
        """Final payment state, and the deciding attempt's state, in one transaction."""
        statements: list[Statement] = []
        if attempt is not None:
            n, state, provider_ref = attempt
            statements.append((
                "UPDATE attempts SET state=?, code=?, provider_ref=?, ended_at=? "
                "WHERE payment_id=? AND n=?",
                (state, code, provider_ref, time.time(), payment_id, n),
            ))
        statements.append(_finish(payment_id, status, code, provider, attempts, response))
        self._now(payment_id, statements)

    def update_attempt(self, payment_id: str, n: int, state: str, code: str | None,
                       provider_ref: str | None) -> None:
        self._now(payment_id, [_attempt_result(payment_id, n, state, code, provider_ref)])


SECRET_SUFFIX = ".secret"


def ledger_secret(ledger_path: str | Path) -> bytes:
    """The stack's secret for keyed hashes, kept beside the ledger (``<ledger>.secret``, 0600).

    Created (32 random bytes, hex) by the first gateway to open the ledger, read by every
    restart, so a replayed Idempotency-Key still finds its payment. Refused when others
    can read it: the hashes are only as private as this file.
    """
    path = Path(str(ledger_path) + SECRET_SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read the ledger secret {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EnvironmentProblem(f"the ledger secret {path} is readable by others",
                                 hint=f"chmod 600 {path}")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise EnvironmentProblem(f"the ledger secret {path} is not 32+ hex digits",
                                 hint="delete it to have a new one made (replays of old keys stop working)")
    return secret


def keyed_hash(secret: bytes, text: str) -> str:
    """HMAC-SHA256 of ``text``, hex: what the ledger stores instead of an Idempotency-Key."""
    return hmac.digest(secret, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hex()


async def durable(commit: Commit) -> None:
    """Wait until a staged write (and every write staged before it) is committed."""
    if commit is not None:
        await commit


def _new_payment(payment_id: str, idempotency_key: str, fingerprint: str, amount: int, currency: str,
                 method: str, country: str) -> Statement:
    now = time.time()
    return ("INSERT INTO payments (id, idempotency_key, fingerprint, status, amount, currency,"
            " method, country, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (payment_id, idempotency_key, fingerprint, "processing", amount, currency, method,
             country, now, now))


def _intent(payment_id: str, n: int, provider: str, key: str) -> Statement:
    return ("INSERT OR REPLACE INTO attempts (payment_id, n, provider, provider_key, state, "
            "started_at) VALUES (?,?,?,?,?,?)", (payment_id, n, provider, key, "sent", time.time()))


def _attempt_result(payment_id: str, n: int, state: str, code: str | None,
                    provider_ref: str | None) -> Statement:
    return ("UPDATE attempts SET state=?, code=?, provider_ref=COALESCE(?, provider_ref), "
            "ended_at=? WHERE payment_id=? AND n=?",
            (state, code, provider_ref, time.time(), payment_id, n))


def _finish(payment_id: str, status: str, code: str, provider: str | None, attempts: int,
            response: dict[str, Any] | str) -> Statement:
    text = response if isinstance(response, str) else json.dumps(response)
    return ("UPDATE payments SET status=?, code=?, provider=?, attempts=?, response=?, "
            "updated_at=? WHERE id=?", (status, code, provider, attempts, text, time.time(), payment_id))


def read_gateway_ledger(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(payments, attempts) as dicts, read-only; for the reconciler."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        payments = [dict(r) for r in db.execute("SELECT * FROM payments")]
        attempts = [dict(r) for r in db.execute("SELECT * FROM attempts")]
    finally:
        db.close()
    return payments, attempts
