"""The merchant's side: one :class:`MerchantRow` per payment, from a CSV, SQL or the gateway.

Each value is checked as it is read, and a bad one is an :class:`InvalidInput` naming the
file (or the URL, password hidden), the line (or the result row), the column and what was
expected: a status the mapping does not know, an amount that is not an integer in minor
units (or a decimal, with ``amounts: major``), a currency that is not three letters, an
empty reference. Rows whose status maps to ``ignore`` are dropped here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from paystab.exceptions import InvalidInput
from paystab.ledgers.csvfile import read_csv
from paystab.ledgers.rows import MerchantRow, minor_from_value, valid_currency
from paystab.ledgers.spec import CsvLedger, MerchantLedger, PaystabGatewayLedger, SqlLedger
from paystab.suggest import did_you_mean

Problem = Callable[[str, str, str], InvalidInput]  # (column, problem, expected) -> error


def read_merchant(spec: MerchantLedger, base_dir: Path) -> list[MerchantRow]:
    """Every payment the merchant's book holds (``ignore`` rows dropped)."""
    if isinstance(spec, SqlLedger):
        from paystab.ledgers.sql import read_sql

        return read_sql(spec, base_dir)
    if isinstance(spec, CsvLedger):
        return read_merchant_csv(spec, base_dir)
    return read_gateway(spec, base_dir)


def build_row(values: Mapping[str, object], spec: SqlLedger | CsvLedger, where: str,
              problem: Problem, mapping: Mapping[str, str] | None = None) -> MerchantRow | None:
    """One merchant row from ``values`` (column name -> value); None for ``ignore``.
    ``mapping`` is ``spec.status_map()``, passed in by callers reading many rows."""
    columns = spec.columns
    reference = _text(values.get(columns.reference))
    if not reference:
        raise problem(columns.reference, "empty reference",
                      "the merchant's order or payment reference")
    raw_status = _text(values.get(columns.status))
    mapping = spec.status_map() if mapping is None else mapping
    status = mapping.get(raw_status.lower())
    if status is None:
        raise problem(columns.status, f"unknown status {raw_status!r}"
                      f"{did_you_mean(raw_status.lower(), mapping)} (reference {reference})",
                      "one of the mapped statuses; add it under statuses: with one of "
                      "approved, pending, declined, failed, refunded, ignore")
    if status == "ignore":
        return None
    currency = _text(values.get(columns.currency)).upper()
    if not valid_currency(currency):
        raise problem(columns.currency, f"got {currency!r} (reference {reference})",
                      "a three-letter ISO 4217 code such as JPY or USD")
    try:
        amount = minor_from_value(values.get(columns.amount), currency, spec.amounts)
    except ValueError as exc:
        raise problem(columns.amount, f"{exc} (reference {reference})",
                      "an integer amount in minor units (1999 for 19.99 USD), or set "
                      "amounts: major for decimal amounts" if spec.amounts == "minor" else
                      f"a decimal amount in major units of {currency}") from None
    if amount < 0:
        raise problem(columns.amount, f"negative amount {amount} (reference {reference})",
                      "an amount >= 0")
    return MerchantRow(reference, status, raw_status, amount, currency,
                       _text(values.get(columns.provider)) or None if columns.provider else None,
                       _text(values.get(columns.psp_reference)) or None
                       if columns.psp_reference else None, where)


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def read_merchant_csv(spec: CsvLedger, base_dir: Path) -> list[MerchantRow]:
    path = base_dir / spec.path
    table = read_csv(path, spec.delimiter, source=str(path))
    cols = spec.columns
    needed = [cols.reference, cols.status, cols.amount, cols.currency]
    needed += [c for c in (cols.provider, cols.psp_reference) if c]
    table.require(needed, "a merchant CSV",
                  hint="map your column names under ledgers.merchant.columns")
    out: list[MerchantRow] = []
    mapping = spec.status_map()
    for row in table.rows:
        values = {column: row.get(column) for column in needed}
        built = build_row(values, spec, f"{table.source}:{row.line}", row.problem, mapping)
        if built is not None:
            out.append(built)
    return out


def read_gateway(spec: PaystabGatewayLedger, base_dir: Path) -> list[MerchantRow]:
    """The reference gateway's payments: its payment id is the merchant's reference."""
    import sqlite3

    from paystab.stack.ledger import read_gateway_ledger

    path = base_dir / spec.path
    if not path.is_file():
        raise InvalidInput("no such file", source=str(path),
                           expected="the gateway's SQLite ledger (paystab gateway --ledger)")
    try:
        payments, _ = read_gateway_ledger(path)
    except sqlite3.Error as exc:
        raise InvalidInput(f"cannot read the gateway ledger: {exc}", source=str(path),
                           expected="the gateway's SQLite ledger") from None
    out: list[MerchantRow] = []
    for payment in payments:
        status = str(payment["status"])
        if status not in ("approved", "pending", "declined"):
            # failed, or processing (no answer was given): as the reference reconciler, a
            # live capture for it is an orphan and no capture is no loss.
            status = "failed"
        out.append(MerchantRow(str(payment["id"]), status, str(payment["status"]),
                               int(payment["amount"]), str(payment["currency"]).upper(),
                               payment["provider"], None, f"{path} payment {payment['id']}"))
    return out
