"""The merchant's orders from one SQL query, against any SQLAlchemy URL.

The query runs in a read-only transaction that is always rolled back (SQLite:
``PRAGMA query_only`` and a progress handler that interrupts it past ``timeout``;
PostgreSQL: ``SET TRANSACTION READ ONLY`` and a ``statement_timeout``): reconciliation
reads the shop's book and never writes to it, whatever the query says. ``postgresql://``
and ``postgres://`` URLs use psycopg 3 (SQLAlchemy's own default would be psycopg2);
``sqlite:///orders.db`` is relative to the stack file, and a missing SQLite file is an
error rather than a new empty database.

Errors never show the password: the URL is rendered with it hidden, and any text the driver
returns is scrubbed of it. A URL that cannot be parsed, a driver that does not exist, a
query that fails or lacks a mapped column are :class:`InvalidInput` (exit 2); a server that
cannot be reached is an :class:`EnvironmentProblem` (exit 4).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paystab.exceptions import EnvironmentProblem, InvalidInput
from paystab.ledgers.merchant import build_row
from paystab.ledgers.rows import MerchantRow
from paystab.ledgers.spec import SqlLedger
from paystab.suggest import did_you_mean

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


def redact(url: str) -> str:
    """``url`` with its password hidden (or the text up to ``://`` when it does not parse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        scheme, sep, _ = url.partition("://")
        return f"{scheme}{sep}..." if sep else "(not a URL)"


def resolve_url(text: str, base_dir: Path) -> URL:
    """The URL to connect to: psycopg for PostgreSQL, SQLite paths from the stack file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise InvalidInput("cannot read this as a database URL", source=redact(text),
                           field="url", expected="a SQLAlchemy URL such as sqlite:///orders.db or "
                                    "postgresql://user:pass@127.0.0.1:5432/shop") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise InvalidInput("an in-memory SQLite database holds no orders",
                               source=redact(text), field="url",
                               expected="sqlite:///PATH to the shop's database file")
        path = Path(database)
        if not path.is_absolute():
            path = base_dir / path
        if not path.is_file():
            raise InvalidInput(f"no SQLite database at {path}", source=redact(text),
                               field="url", expected="an existing database file (relative "
                                                     "paths are relative to the stack file)")
        url = url.set(database=str(path))
    return url


def read_sql(spec: SqlLedger, base_dir: Path) -> list[MerchantRow]:
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import (
        ArgumentError,
        DBAPIError,
        NoSuchModuleError,
        SQLAlchemyError,
    )

    url = resolve_url(spec.url, base_dir)
    shown = redact(spec.url)
    secret = url.password if isinstance(url.password, str) and url.password else None

    def scrub(message: object) -> str:
        first = str(message).strip().splitlines()[0] if str(message).strip() else "error"
        return first.replace(secret, "***") if secret else first

    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args["timeout"] = spec.timeout
    elif backend == "postgresql":
        connect_args["connect_timeout"] = max(1, int(spec.timeout))
    try:
        engine = create_engine(url, connect_args=connect_args, poolclass=_null_pool())
    except NoSuchModuleError:
        raise InvalidInput(f"no SQLAlchemy dialect for {url.drivername!r}", source=shown,
                           field="url", expected="sqlite:// or postgresql:// (psycopg 3)") \
            from None
    except ModuleNotFoundError as exc:
        raise EnvironmentProblem(f"{shown}: the database driver is not installed ({exc.name})",
                                 hint="pip install the driver for this URL") from None
    except (ArgumentError, TypeError, ValueError) as exc:
        raise InvalidInput(scrub(exc), source=shown, field="url",
                           expected="a valid SQLAlchemy URL") from None
    if backend == "sqlite":
        @event.listens_for(engine, "connect")
        def _read_only(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA query_only = ON")
            # SQLite has no statement timeout: interrupt the query past the deadline.
            deadline = time.monotonic() + spec.timeout
            dbapi_connection.set_progress_handler(
                lambda: 1 if time.monotonic() > deadline else 0, 10_000)

    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise EnvironmentProblem(f"{shown}: cannot connect: {scrub(exc.orig)}",
                                     hint="is the database running and the URL right?") \
                from None
        with connection:
            transaction = connection.begin()
            try:
                if backend == "postgresql":
                    connection.execute(text("SET TRANSACTION READ ONLY"))
                    connection.execute(text(
                        f"SET LOCAL statement_timeout = {int(spec.timeout * 1000)}"))
                result = connection.execute(text(spec.query))
                if not result.returns_rows:
                    raise InvalidInput("the query returns no rows", source=shown,
                                       field="query", expected="a SELECT")
                names = list(result.keys())
                records = result.fetchall()
            except SQLAlchemyError as exc:
                orig = getattr(exc, "orig", None) or exc
                raise InvalidInput(f"the query failed: {scrub(orig)}", source=shown,
                                   field="query", expected="a SELECT that runs on this "
                                                           "database, read-only") from None
            finally:
                transaction.rollback()
    finally:
        engine.dispose()
    columns = spec.columns
    needed = [columns.reference, columns.status, columns.amount, columns.currency]
    needed += [c for c in (columns.provider, columns.psp_reference) if c]
    for column in needed:
        if column not in names:
            raise InvalidInput(f"the query has no column '{column}'"
                               f"{did_you_mean(column, names)}", source=shown,
                               field=f"columns -> {column}",
                               expected=f"one of the query's columns ({', '.join(names)}), "
                                        "or an alias in the SELECT")
    out: list[MerchantRow] = []
    mapping = spec.status_map()
    for number, record in enumerate(records, start=1):
        values = dict(zip(names, record, strict=False))

        def problem(column: str, text: str, expected: str, number: int = number
                    ) -> InvalidInput:
            return InvalidInput(text, source=shown, field=f"row {number}: {column}",
                                expected=expected)

        built = build_row(values, spec, f"{shown} row {number}", problem, mapping)
        if built is not None:
            out.append(built)
    return out


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool
