"""The ``ledgers:`` part of a stack file: where the merchant's and the PSPs' books are.

The merchant side is one of: a SQL query against any SQLAlchemy URL (:class:`SqlLedger`),
a CSV export (:class:`CsvLedger`) or the reference gateway's SQLite ledger
(:class:`PaystabGatewayLedger`). The PSP side is a list of: the paystab PSP simulators' own
SQLite ledgers (:class:`SimulatorLedgers`), Stripe balance / payout reconciliation report
CSVs (:class:`StripeBalanceCsv`) and Adyen Settlement details report CSVs
(:class:`AdyenSettlementCsv`). Paths are relative to the stack file (the caller passes its
folder as ``base_dir``). ``${env:NAME}`` in the URL is expanded by the stack-file loader,
before these models see it.

The merchant's own status words are mapped onto what reconciliation needs to know (does
the merchant expect money to be held?): ``approved`` and ``pending`` expect a live capture;
``declined``, ``failed`` and ``refunded`` expect none; ``ignore`` drops the row (drafts,
abandoned carts). :data:`DEFAULT_STATUSES` covers the usual words; ``statuses:`` adds or
overrides entries.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from paystab.config.types import Strict

MerchantStatus = Literal["approved", "pending", "declined", "failed", "refunded", "ignore"]

DEFAULT_STATUSES: dict[str, MerchantStatus] = {
    # money taken
    "approved": "approved", "paid": "approved", "succeeded": "approved", "success": "approved",
    "successful": "approved", "captured": "approved", "completed": "approved",
    "complete": "approved", "settled": "approved", "authorised": "approved",
    "authorized": "approved", "fulfilled": "approved", "shipped": "approved",
    # money on its way (konbini slips, bank transfers, 3-D Secure)
    "pending": "pending", "processing": "pending", "requires_action": "pending",
    "awaiting_payment": "pending", "in_progress": "pending",
    # the customer was refused
    "declined": "declined", "refused": "declined", "rejected": "declined",
    "canceled": "declined", "cancelled": "declined", "voided": "declined",
    "expired": "declined",
    # no answer from any PSP
    "failed": "failed", "failure": "failed", "error": "failed",
    # money given back
    "refunded": "refunded",
}

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
FilePath = Annotated[str, Field(min_length=1, max_length=4096,
                                description="a file path, relative to the stack file")]
ProviderName = Annotated[str, Field(min_length=1, max_length=200,
                                    description="the provider name as the stack knows it "
                                                "(e.g. card-alpha)")]


def _lower_keys(mapping: dict[str, MerchantStatus]) -> dict[str, MerchantStatus]:
    return {key.strip().lower(): value for key, value in mapping.items()}


StatusOverrides = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=200)], MerchantStatus],
    AfterValidator(_lower_keys),
    Field(description="the merchant's status words (case-insensitive) -> approved | pending "
                      "| declined | failed | refunded | ignore; added to and overriding "
                      "the defaults"),
]


class MerchantColumns(Strict):
    """Our field -> the column name in the query's result or the CSV's header."""

    reference: ColumnName = Field(
        default="reference",
        description="the merchant's order / payment reference, the key both sides match on")
    status: ColumnName = "status"
    amount: ColumnName = Field(default="amount", description="the amount (see `amounts`)")
    currency: ColumnName = Field(default="currency", description="ISO 4217 code")
    provider: ColumnName | None = Field(
        default=None, description="the PSP the merchant used (optional: leave out when not stored)")
    psp_reference: ColumnName | None = Field(
        default=None, description="the PSP's transaction id, when the merchant stores it (optional)")


class _MerchantBase(Strict):
    columns: MerchantColumns = MerchantColumns()
    statuses: StatusOverrides = Field(default_factory=dict)
    amounts: Literal["minor", "major"] = Field(
        default="minor", description="minor: integer minor units (1999 = 19.99 USD, 1999 JPY); "
        "major: decimal amounts (19.99) converted with the currency's exponent")

    def status_map(self) -> dict[str, MerchantStatus]:
        return {**DEFAULT_STATUSES, **self.statuses}


class SqlLedger(_MerchantBase):
    """The merchant's orders, from a SQL query (SQLite, PostgreSQL via psycopg, ...)."""

    kind: Literal["sql"] = "sql"
    url: Annotated[str, Field(min_length=1, max_length=4096, description=(
        "a SQLAlchemy URL: sqlite:///orders.db (relative to the stack file), "
        "postgresql://user:${env:PGPASSWORD}@127.0.0.1:5432/shop (psycopg 3)"))]
    query: Annotated[str, Field(min_length=1, max_length=100_000, description=(
        "one SELECT returning one row per payment; its column names are mapped by `columns`"))]
    timeout: Annotated[float, Field(gt=0, le=3600, description="seconds to connect and run")] = 30.0


class CsvLedger(_MerchantBase):
    """The merchant's orders, from a CSV export with a header row."""

    kind: Literal["csv"] = "csv"
    path: FilePath
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","


class PaystabGatewayLedger(Strict):
    """The reference gateway's SQLite ledger (its payment ids are the references)."""

    kind: Literal["paystab_gateway"] = "paystab_gateway"
    path: FilePath


class SimulatorLedgers(Strict):
    """The paystab PSP simulators' own SQLite ledgers (paths from the running simulators)."""

    kind: Literal["simulators"] = "simulators"
    only: list[ProviderName] | None = Field(
        default=None, description="read only these simulators (default: all of them)")


class StripeBalanceCsv(Strict):
    """A Stripe balance (or itemized payout) reconciliation report CSV."""

    kind: Literal["stripe_balance_csv"] = "stripe_balance_csv"
    path: FilePath
    provider: ProviderName = "stripe"
    reference_column: ColumnName = Field(
        default="payment_metadata[order_id]", description="the column holding the merchant's "
        "reference (a payment_metadata[KEY] column, or description)")


class AdyenSettlementCsv(Strict):
    """An Adyen Settlement details report CSV."""

    kind: Literal["adyen_settlement_csv"] = "adyen_settlement_csv"
    path: FilePath
    provider: ProviderName = "adyen"


MerchantLedger = Annotated[SqlLedger | CsvLedger | PaystabGatewayLedger,
                           Field(discriminator="kind")]
PspLedger = Annotated[SimulatorLedgers | StripeBalanceCsv | AdyenSettlementCsv,
                      Field(discriminator="kind")]


def _simulators_only() -> list[PspLedger]:
    return [SimulatorLedgers(only=None)]


class LedgersSpec(Strict):
    """The merchant's book and the PSPs' books that reconciliation compares."""

    merchant: MerchantLedger
    psp: Annotated[list[PspLedger], Field(min_length=1)] = Field(
        default_factory=_simulators_only)
