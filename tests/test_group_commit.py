"""The ledger's group commit and WAL checkpointer: batching, order, failure isolation, durability."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from paystab.stack.group_commit import GroupCommit
from paystab.stack.ledger import GatewayLedger, WalCheckpointer, durable

INSERT = "INSERT INTO t (k, v) VALUES (?, ?)"
UPDATE = "UPDATE t SET v = ? WHERE k = ?"


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    return db


def _rows(path: Path) -> dict[str, str]:
    other = sqlite3.connect(str(path))  # a second connection sees committed rows only
    try:
        return dict(other.execute("SELECT k, v FROM t").fetchall())
    finally:
        other.close()


def test_units_staged_together_commit_in_one_transaction_in_order(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    commits = GroupCommit(_db(path), turns=2)

    async def main() -> None:
        futures = []
        for i in range(20):
            futures.append(commits.stage(f"p{i}", [(INSERT, (f"k{i}", "new"))]))
            futures.append(commits.stage(f"p{i}", [(UPDATE, (f"done{i}", f"k{i}"))], wait=False))
        assert commits.pending == 40 and _rows(path) == {}  # nothing is written before the turns pass
        await asyncio.gather(*(f for f in futures if f is not None))
        assert commits.pending == 0

    asyncio.run(main())
    assert commits.transactions == 1 and commits.units == 40
    assert _rows(path) == {f"k{i}": f"done{i}" for i in range(20)}  # each owner's writes in order


def test_a_failing_unit_fails_alone_and_takes_its_owners_later_units_with_it(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    db = _db(path)
    db.execute(INSERT, ("taken", "before"))
    commits = GroupCommit(db)

    async def main() -> list[BaseException | None]:
        first = commits.stage("bad", [(INSERT, ("taken", "again"))])  # violates the primary key
        later = commits.stage("bad", [(UPDATE, ("should-not-run", "taken"))])
        good = commits.stage("good", [(INSERT, ("fine", "yes"))])
        results = await asyncio.gather(first, later, good, return_exceptions=True)  # type: ignore[arg-type]
        return [r if isinstance(r, BaseException) else None for r in results]

    first, later, good = asyncio.run(main())
    assert isinstance(first, sqlite3.IntegrityError)
    assert isinstance(later, sqlite3.IntegrityError)  # not run: the owner's earlier write failed
    assert good is None
    assert _rows(path) == {"taken": "before", "fine": "yes"}


def test_without_an_event_loop_a_write_commits_at_once_and_raises(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    commits = GroupCommit(_db(path))
    assert commits.stage("p", [(INSERT, ("a", "1"))]) is None
    assert _rows(path) == {"a": "1"}
    with pytest.raises(sqlite3.IntegrityError):
        commits.stage("p", [(INSERT, ("a", "2"))])
    assert _rows(path) == {"a": "1"}


def test_flush_commits_what_is_staged_now(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    commits = GroupCommit(_db(path), turns=50)

    async def main() -> None:
        future = commits.stage("p", [(INSERT, ("a", "1"))])
        commits.flush()
        assert _rows(path) == {"a": "1"}
        assert future is not None and future.done() and future.exception() is None

    asyncio.run(main())


def test_the_ledger_is_durable_once_the_awaited_writes_return(tmp_path: Path) -> None:
    ledger = GatewayLedger(tmp_path / "gw.db")

    async def main() -> None:
        ledger.begin_payment("pay_1", "key-1", "fp", 1999, "JPY", "card", "JP")
        await durable(ledger.stage_intent("pay_1", 1, "card-alpha", "pay_1.1"))
        reader = sqlite3.connect(str(tmp_path / "gw.db"))
        assert reader.execute("SELECT status FROM payments").fetchall() == [("processing",)]
        assert reader.execute("SELECT state FROM attempts").fetchall() == [("sent",)]
        ledger.stage_attempt_result("pay_1", 1, "approved", "approved", "ref-1")
        await durable(ledger.stage_finish("pay_1", "approved", "approved", "card-alpha", 1,
                                          {"id": "pay_1", "status": "approved"}))
        assert reader.execute("SELECT status, provider FROM payments").fetchall() == [("approved", "card-alpha")]
        assert reader.execute("SELECT state, provider_ref FROM attempts").fetchall() == [("approved", "ref-1")]
        reader.close()

    asyncio.run(main())
    stored = ledger.find_by_key("key-1")
    assert stored is not None and stored.response == {"id": "pay_1", "status": "approved"}
    ledger.close()


def test_the_checkpointer_keeps_the_log_bounded_under_constant_writes(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    db = _db(path)
    db.execute("PRAGMA wal_autocheckpoint=0")
    checkpointer = WalCheckpointer(path, interval_s=0.02, restart_frames=64)
    try:
        deadline = time.monotonic() + 20.0
        batch = 0
        while (checkpointer.restarts < 3 or batch < 300) and time.monotonic() < deadline:
            db.execute("BEGIN IMMEDIATE")
            for j in range(50):
                db.execute(INSERT, (f"k{batch}-{j}", "x" * 200))
            db.execute("COMMIT")
            batch += 1
            time.sleep(0.001)  # the gateway's loop does other work between its commits
        assert checkpointer.restarts >= 3, "the log was never restarted"
        wal, data = path.with_name(path.name + "-wal"), path
        # Without restarts the log would hold every page ever written (more than the file).
        assert data.stat().st_size > 1_000_000
        assert wal.stat().st_size < data.stat().st_size
    finally:
        checkpointer.stop()
        db.close()
