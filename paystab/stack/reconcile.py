"""The reconciler: the gateway's ledger against every provider's ledger.

Three invariants a payment stack must keep, whatever broke during a drill:

* **double charges**: a payment captured more than once (live captures at one or more
  providers that the gateway did not void);
* **lost payments**: the customer was told ``approved`` (or ``pending``) and no provider
  holds a live capture for it;
* **orphans**: a provider holds a live capture the gateway says failed, declined, or never
  heard of; each must be voided;
* **amount mismatches**: the one live capture of an approved or pending payment is of
  another currency, or less than the payment's amount (more than it counts as a double
  charge: the customer paid too much), as ``paystab reconcile`` judges a shop's books.

``voided_late_successes`` counts captures that arrived after the gateway had moved on and
were voided by it: not a defect, the evidence that the safety net worked. A capture is
*live* when its status is ``captured`` or ``pending`` (konbini slips and bank transfers
complete later) and not ``voided`` or ``refunded``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from paystab.exceptions import InvalidInput
from paystab.stack.endpoints import StackEndpoints
from paystab.stack.ledger import read_gateway_ledger

LIVE = ("captured", "pending")


@dataclass
class Finding:
    """One defect. ``payment_id`` is the merchant's reference (the gateway's payment id in
    the reference stack); amounts are minor units of ``currency``."""

    kind: str  # double_charge | lost_payment | orphan | amount_mismatch
    payment_id: str
    detail: str
    providers: list[str] = field(default_factory=list)  # where the live captures are
    psp_references: list[str] = field(default_factory=list)  # the PSPs' transaction ids
    amount: int | None = None  # what the merchant's book says (None: it does not know it)
    captured: int | None = None  # what the PSPs hold live, summed
    currency: str | None = None


@dataclass
class Reconciliation:
    double_charges: int = 0
    lost_payments: int = 0
    orphans: int = 0
    amount_mismatches: int = 0  # one live capture of another amount than the merchant's
    voided_late_successes: int = 0
    payments: int = 0
    captures: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (self.double_charges == 0 and self.lost_payments == 0 and self.orphans == 0
                and self.amount_mismatches == 0)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["findings"] = out["findings"][:100]
        for finding in out["findings"]:
            finding["merchant_reference"] = finding["payment_id"]
        out["clean"] = self.clean
        return out


def reconcile(gateway_ledger: str | Path, provider_ledgers: dict[str, str | Path]) -> Reconciliation:
    from paystab.stack.providers import read_ledger

    for path in [gateway_ledger, *provider_ledgers.values()]:
        if not Path(path).exists():
            raise InvalidInput("ledger not found", source=str(path))
    payments, attempts = read_gateway_ledger(gateway_ledger)
    status_of = {p["id"]: p["status"] for p in payments}
    owed = {p["id"]: (int(p["amount"]), str(p["currency"])) for p in payments}
    result = Reconciliation(payments=len(payments))
    result.voided_late_successes = sum(1 for a in attempts if a["state"] == "voided")
    live: dict[str, list[str]] = defaultdict(list)  # payment id -> "provider/key"
    held: dict[str, tuple[int, str]] = {}  # payment id -> its (last) live capture's money
    for provider, path in provider_ledgers.items():
        for row in read_ledger(path):
            if row.status in LIVE:
                live[row.payment_id].append(f"{provider}/{row.idempotency_key}")
                held[row.payment_id] = (row.amount, row.currency)
                result.captures += 1
    for payment_id, where in live.items():
        gateway_status = status_of.get(payment_id)
        if len(where) > 1:
            result.double_charges += 1
            result.findings.append(Finding("double_charge", payment_id,
                                           f"{len(where)} live captures: {', '.join(where)}"))
        elif gateway_status in ("approved", "pending") and held[payment_id] != owed[payment_id]:
            _wrong_amount(result, payment_id, where[0], held[payment_id], owed[payment_id])
        if gateway_status not in ("approved", "pending"):
            result.orphans += 1
            result.findings.append(Finding(
                "orphan", payment_id,
                f"captured at {', '.join(where)} but the gateway says {gateway_status or 'nothing'}"))
    for payment_id, status in status_of.items():
        if status in ("approved", "pending") and payment_id not in live:
            result.lost_payments += 1
            result.findings.append(Finding("lost_payment", payment_id,
                                           f"gateway says {status}; no provider holds a capture"))
    return result


def _wrong_amount(result: Reconciliation, payment_id: str, where: str,
                  captured: tuple[int, str], owed: tuple[int, str]) -> None:
    (amount, currency), (due, due_currency) = captured, owed
    kind = "double_charge" if currency == due_currency and amount > due else "amount_mismatch"
    if kind == "double_charge":
        result.double_charges += 1
    else:
        result.amount_mismatches += 1
    result.findings.append(Finding(
        kind, payment_id, f"captured {amount} {currency} at {where}; the gateway's payment is "
        f"{due} {due_currency}", [where.split("/", 1)[0]], [], due, amount, due_currency))


def reconcile_stack(endpoints: StackEndpoints, source: str = "ready file") -> Reconciliation:
    if not endpoints.gateway_ledger:
        raise InvalidInput("the stack has no gateway ledger to reconcile", source=source,
                           field="gateway_ledger", expected="a path to the gateway's SQLite ledger")
    ledgers = {name: p.ledger for name, p in endpoints.providers.items() if p.ledger}
    if not ledgers:
        raise InvalidInput("no provider ledgers to reconcile", source=source,
                           field="providers.*.ledger", expected="SQLite paths")
    return reconcile(endpoints.gateway_ledger, {k: v for k, v in ledgers.items() if v})
