"""The merchant's book from SQL: SQLite, and a real PostgreSQL through psycopg 3.

The same orders table on both engines, reconciled against the Stripe and Adyen report
fixtures (tests/ledgers_data), must give the same findings as the CSV export does. Then
the queries a careless or hostile stack file could hold: one that writes (refused by the
read-only transaction, and the table is intact afterwards), two statements, a syntax error,
a column the mapping names but the query lacks, bad URLs; and the password never appears
in an error.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paystab.exceptions import EnvironmentProblem, InvalidInput, PaystabError
from paystab.ledgers.reconcile import reconcile_ledgers
from paystab.ledgers.spec import LedgersSpec
from paystab.ledgers.sql import read_sql, redact
from tests.conftest_postgres import PostgresServer, postgres_server  # noqa: F401

DATA = Path(__file__).parent / "ledgers_data"
ORDERS = [  # (id, state, total in major units, currency, psp): tests/ledgers_data/orders.csv
    ("o-1001", "paid", "19.99", "USD", "card-alpha"),
    ("o-1002", "refunded", "25.00", "USD", "card-alpha"),
    ("o-1003", "paid", "1500", "JPY", "card-alpha"),
    ("o-1004", "paid", "30.00", "USD", "card-alpha"),
    ("o-1005", "paid", "12.00", "USD", "card-alpha"),
    ("o-1006", "failed", "8.00", "USD", "card-alpha"),
    ("o-1007", "draft", "0", "USD", None),
    ("o-2001", "paid", "12.50", "EUR", "card-bravo"),
    ("o-2002", "refunded", "30.00", "EUR", "card-bravo"),
    ("o-2003", "paid", "40.00", "EUR", "card-bravo"),
    ("o-2005", "paid", "15.00", "EUR", "card-bravo"),
]
CREATE = ("CREATE TABLE orders (id TEXT PRIMARY KEY, state TEXT NOT NULL, "
          "total NUMERIC(12, 3) NOT NULL, currency TEXT NOT NULL, psp TEXT)")
QUERY = "SELECT id AS order_id, state, total, currency, psp FROM orders ORDER BY id"


def _spec(url: str, query: str = QUERY, **merchant: Any) -> LedgersSpec:
    return LedgersSpec.model_validate({
        "merchant": {"kind": "sql", "url": url, "query": query, "amounts": "major",
                     "columns": {"reference": "order_id", "status": "state", "amount": "total",
                                 "provider": "psp"},
                     "statuses": {"draft": "ignore"}, "timeout": 10, **merchant},
        "psp": [{"kind": "stripe_balance_csv", "path": "stripe_balance_itemized.csv",
                 "provider": "card-alpha"},
                {"kind": "adyen_settlement_csv",
                 "path": "adyen_settlement_detail_report_batch_42.csv",
                 "provider": "card-bravo"}],
    })


def _findings(url: str) -> list[tuple[str, str, int | None, int | None]]:
    result = reconcile_ledgers(_spec(url), DATA, {})
    return sorted((f.kind, f.payment_id, f.amount, f.captured) for f in result.findings)


EXPECTED = [("amount_mismatch", "o-1005", 1200, 1000), ("double_charge", "o-1003", 1500, 3000),
            ("double_charge", "o-2003", 4000, 8000), ("lost_payment", "o-1004", 3000, None),
            ("lost_payment", "o-2005", 1500, None), ("orphan", "o-9999", None, 500)]


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute(CREATE.replace("NUMERIC(12, 3)", "TEXT"))
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", ORDERS)
    return path


def test_sqlite_orders_reconcile_like_the_csv_export(sqlite_db: Path) -> None:
    assert _findings(f"sqlite:///{sqlite_db}") == EXPECTED


def test_sqlite_path_is_relative_to_the_stack_file(sqlite_db: Path) -> None:
    spec = _spec("sqlite:///shop.db")
    merchant = spec.merchant
    assert merchant.kind == "sql"
    rows = read_sql(merchant, sqlite_db.parent)
    assert len(rows) == 10 and rows[0].reference == "o-1001" and rows[0].amount == 1999
    with pytest.raises(InvalidInput, match="no SQLite database at") as caught:
        read_sql(merchant, DATA)  # no shop.db there: not a new empty database
    assert not (DATA / "shop.db").exists() and caught.value.field == "url"


def _table_intact(sqlite_db: Path) -> None:
    with sqlite3.connect(sqlite_db) as db:
        assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == len(ORDERS)


@pytest.mark.parametrize(("query", "words"), [
    ("DELETE FROM orders", "the query failed: attempt to write a readonly database"),
    ("DELETE FROM orders RETURNING id AS order_id", "readonly"),
    ("SELECT id FROM orders; DROP TABLE orders", "one statement at a time"),
    ("SELEKT * FROM orders", "syntax error"),
    ("SELECT * FROM order_lines", "no such table: order_lines"),
    ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
     "SELECT x AS order_id FROM n", "interrupted"),
])
def test_sqlite_hostile_queries(sqlite_db: Path, query: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(f"sqlite:///{sqlite_db}", query, timeout=0.5), DATA, {})
    assert caught.value.field == "query" and words in caught.value.message
    assert caught.value.exit_code == 2
    _table_intact(sqlite_db)


def test_sqlite_bad_columns_and_values(sqlite_db: Path) -> None:
    url = f"sqlite:///{sqlite_db}"
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(url, "SELECT id, state, total, currency, psp FROM orders"),
                          DATA, {})
    assert caught.value.field == "columns -> order_id"
    assert "id, state, total, currency, psp" in (caught.value.expected or "")
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(url, amounts="minor"), DATA, {})
    assert caught.value.field == "row 1: total" and "o-1001" in caught.value.message
    assert "amounts: major" in (caught.value.expected or "")
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(url, "SELECT id AS order_id, NULL AS state, total, currency, "
                                     "psp FROM orders"), DATA, {})
    assert caught.value.field == "row 1: state" and "unknown status ''" in caught.value.message


@pytest.mark.parametrize(("url", "error", "words"), [
    ("not a url", InvalidInput, "cannot read this as a database URL"),
    ("nosuchdb://u:topsecret@127.0.0.1/x", InvalidInput, "no SQLAlchemy dialect"),
    ("sqlite://", InvalidInput, "in-memory"),
])
def test_bad_urls(url: str, error: type[PaystabError], words: str) -> None:
    with pytest.raises(error) as caught:
        reconcile_ledgers(_spec(url), DATA, {})
    assert words in caught.value.message and "topsecret" not in caught.value.message


def test_redact() -> None:
    assert redact("postgresql://shop:hunter2@db:5432/shop") == "postgresql://shop:***@db:5432/shop"
    assert "hunter2" not in redact("postgresql://shop:hunter2@[bad")


# -- PostgreSQL --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop_pg(postgres_server: PostgresServer) -> str:  # noqa: F811
    import psycopg

    url = postgres_server.create_database("ledgers")
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(CREATE)
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)",
                               [(i, s, Decimal(t), c, p) for i, s, t, c, p in ORDERS])
    return url


def _pg_count(url: str) -> int:
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute("SELECT COUNT(*) FROM orders").fetchone()
        assert row is not None
        return int(row[0])


def test_postgres_orders_reconcile_like_the_csv_export(shop_pg: str) -> None:
    assert shop_pg.startswith("postgresql://")  # no +psycopg: paystab picks psycopg 3
    assert _findings(shop_pg) == EXPECTED
    assert _findings(shop_pg.replace("postgresql://", "postgres://", 1)) == EXPECTED


@pytest.mark.parametrize(("query", "words"), [
    ("DELETE FROM orders RETURNING id AS order_id", "read-only transaction"),
    ("SELECT id AS order_id FROM orders; DROP TABLE orders", "read-only transaction"),
    ("SELECT * FROM order_lines", 'relation "order_lines" does not exist'),
    ("SELECT pg_sleep(5)", "statement timeout"),
])
def test_postgres_hostile_queries(shop_pg: str, query: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(shop_pg, query, timeout=0.5), DATA, {})
    assert caught.value.field == "query" and words in caught.value.message
    assert _pg_count(shop_pg) == len(ORDERS)


def test_postgres_password_never_shown(postgres_server: PostgresServer) -> None:  # noqa: F811
    host = f"{postgres_server.host}:{postgres_server.port}"
    url = f"postgresql://paystab:Sup3r-Secret@{host}/no_such_database"
    with pytest.raises(EnvironmentProblem) as caught:
        reconcile_ledgers(_spec(url), DATA, {})
    message = caught.value.message
    assert "Sup3r-Secret" not in message and f"postgresql+psycopg://paystab:***@{host}" \
        not in message and f"postgresql://paystab:***@{host}/no_such_database" in message
    assert "no_such_database" in message and caught.value.exit_code == 4
