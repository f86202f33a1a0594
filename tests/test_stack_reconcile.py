"""The reference stack's reconciler compares the money too: a live capture in another currency
or short of the gateway's payment is an amount mismatch, one above it a double charge — the
same reading as ``paystab reconcile`` gives a shop's own books — and a drill report carries
the count (a hypothesis can read ``amount_mismatches``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from paystab.chaos.hypothesis import VARIABLES
from paystab.stack.ledger import SCHEMA
from paystab.stack.providers.ledger import ProviderLedger
from paystab.stack.reconcile import reconcile

# (payment id, gateway status, amount, currency) and what the provider holds live for it
BOOKS = [
    ("pay_ok", "approved", 1999, "JPY", [(1999, "JPY")]),
    ("pay_short", "approved", 1999, "JPY", [(1000, "JPY")]),
    ("pay_over", "approved", 1999, "JPY", [(2999, "JPY")]),
    ("pay_currency", "pending", 1999, "JPY", [(1999, "USD")]),
    ("pay_twice", "approved", 500, "JPY", [(500, "JPY"), (500, "JPY")]),
    ("pay_failed", "failed", 700, "JPY", [(700, "JPY")]),
]


def _books(tmp_path: Path) -> tuple[Path, Path]:
    gateway = tmp_path / "gateway.sqlite"
    db = sqlite3.connect(gateway)
    db.executescript(SCHEMA)
    for n, (pid, status, amount, currency, _held) in enumerate(BOOKS):
        db.execute("INSERT INTO payments (id, idempotency_key, fingerprint, status, amount, "
                   "currency, method, country, created_at, updated_at) "
                   "VALUES (?, ?, 'f', ?, ?, ?, 'card', 'JP', 1.0, 1.0)",
                   (pid, f"k{n}", status, amount, currency))
    db.commit()
    db.close()
    provider = tmp_path / "card-alpha.sqlite"
    ledger = ProviderLedger(provider)
    for pid, _status, _amount, _currency, held in BOOKS:
        for i, (amount, currency) in enumerate(held):
            ledger.insert(f"{pid}-{i}", pid, f"ch_{pid}_{i}", amount, currency, "card",
                          "captured", "approved", 1.0, None)
    ledger.close()
    return gateway, provider


def test_live_captures_of_another_amount_are_found(tmp_path: Path) -> None:
    gateway, provider = _books(tmp_path)
    result = reconcile(gateway, {"card-alpha": provider})
    by_payment = {f.payment_id: f for f in result.findings}
    assert result.amount_mismatches == 2 and result.double_charges == 2, result.findings
    assert result.orphans == 1 and result.lost_payments == 0 and not result.clean
    short, currency = by_payment["pay_short"], by_payment["pay_currency"]
    assert short.kind == currency.kind == "amount_mismatch"
    assert (short.amount, short.captured, short.currency) == (1999, 1000, "JPY")
    assert "1000 JPY" in short.detail and "1999 JPY" in short.detail
    assert "USD" in currency.detail
    over = by_payment["pay_over"]
    assert over.kind == "double_charge" and (over.amount, over.captured) == (1999, 2999)
    assert "pay_ok" not in by_payment
    assert result.to_json()["amount_mismatches"] == 2


def test_a_hypothesis_reads_the_count_and_its_absence_is_not_a_pass() -> None:
    read, meaning = VARIABLES["amount_mismatches"]
    assert read({"reconciliation": {"amount_mismatches": 2}}) == 2 and meaning
    assert read({"reconciliation": {"double_charges": 0}}) is None  # an older report
