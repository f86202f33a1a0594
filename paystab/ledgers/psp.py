"""The PSPs' side: one :class:`PspRow` per payment a PSP holds, from three kinds of book.

* **The paystab simulators' SQLite ledgers** (:func:`read_simulators`): one row per charge,
  the merchant's reference as each dialect receives it — Stripe ``metadata[order_id]`` (then
  ``description``, then the PaymentIntent id), Adyen ``reference`` (its reports' "Merchant
  Reference"), PayPay ``merchantPaymentId``, KOMOJU ``external_order_num`` — kept in the
  ledger's ``payment_id`` column.
* **Stripe balance / payout reconciliation report CSVs** (:func:`read_stripe_csv`), the
  itemized report types (``balance_change_from_activity.itemized.*``,
  ``payout_reconciliation.itemized.*``, ``ending_balance_reconciliation.itemized.*``).
  Columns as documented at https://docs.stripe.com/reports/report-types/balance and
  https://docs.stripe.com/reports/report-types/payout-reconciliation: ``balance_transaction_id``,
  ``created``, ``reporting_category``, ``gross``, ``fee``, ``net`` (decimals in major units),
  ``currency`` (lower case), ``source_id``, ``charge_id``, ``payment_intent_id`` and
  ``payment_metadata[KEY]`` (requested with the report's ``columns`` parameter). Reporting
  categories: https://docs.stripe.com/reports/reporting-categories.
* **Adyen Settlement details report CSVs** (:func:`read_adyen_csv`), columns as documented at
  https://docs.adyen.com/reporting/settlement-reconciliation/transaction-level/settlement-details-report:
  ``Company Account, Merchant Account, Psp Reference, Merchant Reference, Payment Method,
  Creation Date, TimeZone, Type, Modification Reference, Gross Currency, Gross Debit (GC),
  Gross Credit (GC), Exchange Rate, Net Currency, Net Debit (NC), Net Credit (NC), ...``.

A report lists money movements, not payments: the rows of one payment (its charge, then
refunds or disputes) are summed, and the payment is ``captured`` with what is still held
(charged minus returned) while that is above zero, ``refunded`` otherwise. Fees, payouts
and transfers are not payments and are skipped.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from paystab.exceptions import InvalidInput
from paystab.ledgers.csvfile import CsvRow, read_csv
from paystab.ledgers.rows import PspRow, minor_from_major, valid_currency
from paystab.ledgers.spec import (
    AdyenSettlementCsv,
    PspLedger,
    SimulatorLedgers,
    StripeBalanceCsv,
)
from paystab.suggest import did_you_mean


def read_psp(spec: PspLedger, base_dir: Path, simulators: dict[str, str], index: int
             ) -> list[PspRow]:
    """The rows of one ``psp:`` entry (``index`` is its place in the list, for errors)."""
    if isinstance(spec, SimulatorLedgers):
        return read_simulators(spec, simulators, index)
    if isinstance(spec, StripeBalanceCsv):
        return read_stripe_csv(spec, base_dir)
    return read_adyen_csv(spec, base_dir)


# -- the simulators ----------------------------------------------------------------------
def read_simulators(spec: SimulatorLedgers, simulators: dict[str, str], index: int
                    ) -> list[PspRow]:
    from paystab.stack.providers import read_ledger

    names = list(simulators)
    if spec.only is not None:
        for name in spec.only:
            if name not in simulators:
                raise InvalidInput(f"no simulator '{name}'{did_you_mean(name, names)}",
                                   field=f"ledgers.psp[{index}].only",
                                   expected="one of " + (", ".join(names) or "(none running)"))
        names = list(spec.only)
    if not names:
        raise InvalidInput("no simulator ledgers to read", field=f"ledgers.psp[{index}]",
                           expected="running simulators (a ready file), or settlement CSVs",
                           hint="paystab reconcile --ready-file FILE gives the simulators' "
                                "ledgers")
    out: list[PspRow] = []
    for name in names:
        path = simulators[name]
        try:
            rows = read_ledger(path)
        except FileNotFoundError:
            raise InvalidInput("no simulator ledger", source=str(path), field=name,
                               expected="the simulator's SQLite ledger") from None
        except sqlite3.Error as exc:
            raise InvalidInput(f"cannot read the simulator ledger: {exc}", source=str(path),
                               field=name, expected="the simulator's SQLite ledger") from None
        out.extend(PspRow(name, row.provider_ref, row.payment_id, row.status, row.amount,
                          row.currency.upper(), f"{path} id {row.id}") for row in rows)
    return out


# -- reports -----------------------------------------------------------------------------
@dataclass
class _Payment:
    """The rows of one payment in a report, summed."""

    provider: str
    psp_reference: str
    merchant_reference: str = ""
    currency: str = ""
    charged: int = 0
    returned: int = 0
    where: list[str] = field(default_factory=list)

    def row(self) -> PspRow:
        held = self.charged - self.returned
        status = "captured" if held > 0 else "refunded"
        return PspRow(self.provider, self.psp_reference, self.merchant_reference, status,
                      held if held > 0 else self.charged, self.currency, ", ".join(self.where))


def _amount(row: CsvRow, column: str, currency: str) -> int:
    text = row.get(column)
    if not text:
        return 0
    try:
        return minor_from_major(text, currency)
    except ValueError as exc:
        raise row.problem(column, str(exc), f"a decimal amount in major units of {currency}") \
            from None


def _currency(row: CsvRow, column: str) -> str:
    currency = row.get(column).upper()
    if not valid_currency(currency):
        raise row.problem(column, f"got {currency!r}", "a three-letter ISO 4217 code")
    return currency


# Stripe reporting categories that move a payment's money (sign as in the report's gross).
STRIPE_CHARGES = ("charge",)
STRIPE_RETURNS = ("refund", "dispute", "partial_capture_reversal")
STRIPE_UNDOES = ("refund_failure", "dispute_reversal")


def read_stripe_csv(spec: StripeBalanceCsv, base_dir: Path) -> list[PspRow]:
    path = base_dir / spec.path
    table = read_csv(path, source=str(path))
    hint = ("run the report with columns including payment_intent_id and "
            f"{spec.reference_column} (the Reporting API's columns parameter)")
    table.require(["reporting_category", "gross", "currency", spec.reference_column],
                  "a Stripe balance or payout reconciliation report", hint=hint)
    ids = [c for c in ("payment_intent_id", "charge_id", "source_id") if c in table.index]
    if not ids:
        table.require(["payment_intent_id"], "a Stripe itemized report", hint=hint)
    payments: dict[str, _Payment] = {}
    for row in table.rows:
        category = row.get("reporting_category").lower()
        if category not in (*STRIPE_CHARGES, *STRIPE_RETURNS, *STRIPE_UNDOES):
            continue  # fees, payouts, transfers, adjustments: not a payment
        reference = row.get(spec.reference_column)
        intent, charge = row.optional("payment_intent_id"), row.optional("charge_id")
        source = row.optional("source_id")
        key = intent or charge or (source if category == "charge" else "") or reference
        if not key:
            raise row.problem(ids[0], f"a {category} row names no payment",
                              "payment_intent_id, charge_id or a merchant reference")
        currency = _currency(row, "currency")
        gross = _amount(row, "gross", currency)
        payment = payments.setdefault(key, _Payment(spec.provider, intent or charge or source))
        _add(payment, row, reference, currency, "currency")
        if category in STRIPE_CHARGES:
            payment.charged += gross
        elif category in STRIPE_RETURNS:
            payment.returned += -gross
        else:
            payment.returned -= gross
        payment.where.append(f"{table.source}:{row.line}")
    return [p.row() for p in payments.values()]


# Adyen journal types that move a payment's money; the others (Fee, MerchantPayout,
# DepositCorrection, InvoiceDeduction, Balancetransfer, ...) are skipped.
ADYEN_CREDITS = ("settled", "settledexternally", "chargebackreversed", "refundedreversed",
                 "chargebackreversedexternallywithinfo", "refundedexternallyreversed")
ADYEN_DEBITS = ("refunded", "refundedexternally", "chargeback", "secondchargeback",
                "chargebackexternally", "chargebackexternallywithinfo")


def read_adyen_csv(spec: AdyenSettlementCsv, base_dir: Path) -> list[PspRow]:
    path = base_dir / spec.path
    table = read_csv(path, source=str(path))
    table.require(["Psp Reference", "Merchant Reference", "Type", "Gross Currency",
                   "Gross Debit (GC)", "Gross Credit (GC)"], "an Adyen Settlement details "
                  "report")
    payments: dict[str, _Payment] = {}
    for row in table.rows:
        kind = row.get("Type").replace(" ", "").lower()
        credit, debit = kind in ADYEN_CREDITS, kind in ADYEN_DEBITS
        if not (credit or debit):
            continue
        psp_reference = row.get("Psp Reference")
        if not psp_reference:
            raise row.problem("Psp Reference", f"a {row.get('Type')} row without a PSP "
                              "reference", "Adyen's 16-character pspReference")
        currency = _currency(row, "Gross Currency")
        amount = (_amount(row, "Gross Credit (GC)", currency) if credit
                  else _amount(row, "Gross Debit (GC)", currency))
        payment = payments.setdefault(psp_reference, _Payment(spec.provider, psp_reference))
        _add(payment, row, row.get("Merchant Reference"), currency, "Gross Currency")
        if kind in ("settled", "settledexternally"):
            payment.charged += amount
        elif credit:
            payment.returned -= amount
        else:
            payment.returned += amount
        payment.where.append(f"{table.source}:{row.line}")
    return [p.row() for p in payments.values()]


def _add(payment: _Payment, row: CsvRow, reference: str, currency: str, column: str) -> None:
    if payment.currency and currency != payment.currency:
        raise row.problem(column, f"{currency} for a payment first seen in {payment.currency}",
                          "one currency per payment")
    payment.currency = currency
    payment.merchant_reference = payment.merchant_reference or reference
