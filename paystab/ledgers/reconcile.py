"""Reconcile a stack's own ledgers: the merchant's book against the PSPs', by merchant reference.

The same three defects as the reference reconciler (:mod:`paystab.stack.reconcile`), with
the amounts and references that let someone act on each:

* **double charge**: two or more live captures for one merchant reference (at one PSP or
  several), or one live capture of *more* than the merchant's amount;
* **lost payment**: the merchant says ``approved`` or ``pending``, no PSP holds a live
  capture for it;
* **orphan**: a live capture the merchant says ``declined``, ``failed`` or ``refunded``, or
  does not know at all (it must be voided or refunded);
* **amount mismatch**: one live capture of *less* than the merchant's amount, or in another
  currency.

A capture is live while it is ``captured`` or ``pending``. A PSP row without the merchant's
reference (or with one the merchant does not know) is matched through the merchant's
``psp_reference`` column when it has one. The same capture read twice (the simulators and a
report of the same PSP) counts once. When the merchant's book lists one reference on several
rows (an attempts table), the rows are one payment: the most money-bearing status wins
(approved, pending, refunded, declined, failed) and its amount is the one compared.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from paystab.ledgers.merchant import read_merchant
from paystab.ledgers.psp import read_psp
from paystab.ledgers.rows import LIVE, MerchantRow, PspRow
from paystab.ledgers.spec import LedgersSpec
from paystab.stack.reconcile import Finding, Reconciliation

_PRECEDENCE = ("approved", "pending", "refunded", "declined", "failed")
_EXPECTS_MONEY = ("approved", "pending")


def reconcile_ledgers(spec: LedgersSpec, base_dir: str | Path,
                      simulator_ledgers: dict[str, str]) -> Reconciliation:
    """Read every ledger ``spec`` names and reconcile them.

    ``base_dir`` is the stack file's folder (relative paths start there);
    ``simulator_ledgers`` maps each running simulator's name to its SQLite ledger (what
    ``kind: simulators`` reads). Raises :class:`~paystab.exceptions.InvalidInput` for bad
    input (exit 2) and :class:`~paystab.exceptions.EnvironmentProblem` when a database
    cannot be reached (exit 4).
    """
    base = Path(base_dir)
    merchant = read_merchant(spec.merchant, base)
    psp: list[PspRow] = []
    for index, entry in enumerate(spec.psp):
        psp.extend(read_psp(entry, base, simulator_ledgers, index))
    return reconcile_rows(merchant, psp)


def reconcile_rows(merchant_rows: list[MerchantRow], psp_rows: list[PspRow]) -> Reconciliation:
    """The findings for rows already read (the readers' output, or a test's)."""
    merchant = _by_reference(merchant_rows)
    by_psp_ref = {row.psp_reference: ref for ref, row in merchant.items() if row.psp_reference}
    result = Reconciliation(payments=len(merchant))
    seen: set[tuple[str, str]] = set()
    live: dict[str, list[PspRow]] = defaultdict(list)
    for row in psp_rows:
        if (row.provider, row.psp_reference) in seen:
            continue
        seen.add((row.provider, row.psp_reference))
        if row.status == "voided":
            result.voided_late_successes += 1
        if row.status not in LIVE:
            continue
        result.captures += 1
        reference = row.merchant_reference
        if reference not in merchant and row.psp_reference in by_psp_ref:
            reference = by_psp_ref[row.psp_reference]
        live[reference].append(row)
    for reference, captures in live.items():
        _judge_captures(result, reference, merchant.get(reference), captures)
    for reference, order in merchant.items():
        if order.status in _EXPECTS_MONEY and reference not in live:
            result.lost_payments += 1
            result.findings.append(Finding(
                "lost_payment", reference,
                f"the merchant says {order.raw_status} for {_money(order.amount, order.currency)}"
                f"{' at ' + order.provider if order.provider else ''}; no PSP holds a live "
                f"capture ({order.where})",
                [order.provider] if order.provider else [],
                [order.psp_reference] if order.psp_reference else [],
                order.amount, None, order.currency))
    return result


def _judge_captures(result: Reconciliation, reference: str, order: MerchantRow | None,
                    captures: list[PspRow]) -> None:
    if (len(captures) == 1 and order is not None and order.status in _EXPECTS_MONEY
            and captures[0].amount == order.amount and captures[0].currency == order.currency):
        return  # the common case, before any text is built
    providers = sorted({c.provider for c in captures})
    psp_refs = [f"{c.provider}/{c.psp_reference}" for c in captures]
    currency = captures[0].currency
    held = sum(c.amount for c in captures)
    where = ", ".join(f"{c.provider}/{c.psp_reference} {c.status} "
                      f"{_money(c.amount, c.currency)}" for c in captures)

    def finding(kind: str, detail: str) -> Finding:
        return Finding(kind, reference, detail, providers, psp_refs,
                       order.amount if order else None, held,
                       order.currency if order else currency)

    shown = reference or "(no merchant reference)"
    if len(captures) > 1:
        result.double_charges += 1
        owed = f"; the order is {_money(order.amount, order.currency)}" if order else ""
        result.findings.append(finding(
            "double_charge", f"{len(captures)} live captures for {shown}: {where}{owed}"))
    elif order is not None and order.status in _EXPECTS_MONEY:
        capture = captures[0]
        if capture.currency != order.currency:
            result.amount_mismatches += 1
            result.findings.append(finding(
                "amount_mismatch", f"captured {_money(capture.amount, capture.currency)} at "
                f"{psp_refs[0]}; the order is {_money(order.amount, order.currency)}"))
        elif capture.amount > order.amount:
            result.double_charges += 1
            result.findings.append(finding(
                "double_charge", f"captured {_money(capture.amount, capture.currency)} at "
                f"{psp_refs[0]}, {_money(capture.amount - order.amount, order.currency)} more "
                f"than the order's {_money(order.amount, order.currency)}"))
        elif capture.amount < order.amount:
            result.amount_mismatches += 1
            result.findings.append(finding(
                "amount_mismatch", f"captured {_money(capture.amount, capture.currency)} at "
                f"{psp_refs[0]}, {_money(order.amount - capture.amount, order.currency)} less "
                f"than the order's {_money(order.amount, order.currency)}"))
    if order is None or order.status not in _EXPECTS_MONEY:
        result.orphans += 1
        says = (f"the merchant says {order.raw_status} ({order.where})" if order
                else "the merchant's book does not know it")
        result.findings.append(finding("orphan", f"live capture {where} for {shown}; {says}"))


def _by_reference(rows: list[MerchantRow]) -> dict[str, MerchantRow]:
    out: dict[str, MerchantRow] = {}
    for row in rows:
        current = out.get(row.reference)
        if current is None or (_PRECEDENCE.index(row.status)
                               < _PRECEDENCE.index(current.status)):
            out[row.reference] = row
    return out


def _money(amount: int, currency: str) -> str:
    return f"{amount} {currency}"
