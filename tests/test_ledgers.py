"""Ledgers from files: a merchant CSV against Stripe and Adyen settlement reports.

The fixtures in tests/ledgers_data/ are small reports in each PSP's documented format (a
Stripe itemized balance report with ``payment_metadata[order_id]``, an Adyen Settlement
details report with its fee and payout lines) and a shop's orders export; between them they
hold every defect once, so one reconciliation checks the readers, the summing of a payment's
report rows, and the findings' kinds, amounts and references. Then hostile files, each of
which must be an exit-2 error that names the file, line and column, and the CLI.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from paystab.cli import main as cli_main
from paystab.exceptions import InvalidInput
from paystab.ledgers.load import load_ledgers_file
from paystab.ledgers.psp import read_adyen_csv, read_stripe_csv
from paystab.ledgers.reconcile import reconcile_ledgers, reconcile_rows
from paystab.ledgers.rows import MerchantRow, PspRow, minor_from_major
from paystab.ledgers.spec import (
    AdyenSettlementCsv,
    CsvLedger,
    LedgersSpec,
    StripeBalanceCsv,
)

DATA = Path(__file__).parent / "ledgers_data"
STRIPE = "stripe_balance_itemized.csv"
ADYEN = "adyen_settlement_detail_report_batch_42.csv"


def _spec(**merchant: object) -> LedgersSpec:
    return LedgersSpec.model_validate({
        "merchant": {"kind": "csv", "path": "orders.csv",
                     "columns": {"reference": "order_id", "status": "state",
                                 "amount": "total", "provider": "psp"},
                     "statuses": {"Draft": "ignore"}, **merchant},
        "psp": [{"kind": "stripe_balance_csv", "path": STRIPE, "provider": "card-alpha"},
                {"kind": "adyen_settlement_csv", "path": ADYEN, "provider": "card-bravo"}],
    })


def test_reports_against_the_orders_find_every_defect_with_amounts_and_references() -> None:
    result = reconcile_ledgers(_spec(), DATA, {})
    counts = (result.double_charges, result.lost_payments, result.orphans,
              result.amount_mismatches)
    assert counts == (2, 2, 1, 1), result.findings
    assert (result.payments, result.captures) == (10, 8)  # the draft is ignored
    by_ref = {(f.kind, f.payment_id): f for f in result.findings}
    assert set(by_ref) == {("double_charge", "o-1003"), ("double_charge", "o-2003"),
                           ("lost_payment", "o-1004"), ("lost_payment", "o-2005"),
                           ("orphan", "o-9999"), ("amount_mismatch", "o-1005")}
    stripe_double = by_ref[("double_charge", "o-1003")]
    assert stripe_double.psp_references == ["card-alpha/pi_3Q0004", "card-alpha/pi_3Q0005"]
    assert (stripe_double.amount, stripe_double.captured, stripe_double.currency) == (
        1500, 3000, "JPY")  # JPY has no minor digits: 1500 in the report is 1500
    adyen_double = by_ref[("double_charge", "o-2003")]
    assert adyen_double.psp_references == ["card-bravo/8815000000000003",
                                           "card-bravo/8815000000000004"]
    assert (adyen_double.amount, adyen_double.captured, adyen_double.currency) == (
        4000, 8000, "EUR")
    lost = by_ref[("lost_payment", "o-2005")]  # settled, then charged back
    assert (lost.amount, lost.captured, lost.providers) == (1500, None, ["card-bravo"])
    assert "orders.csv:12" in lost.detail
    orphan = by_ref[("orphan", "o-9999")]
    assert (orphan.amount, orphan.captured, orphan.currency) == (None, 500, "USD")
    assert orphan.psp_references == ["card-alpha/pi_3Q0006"]
    assert "does not know it" in orphan.detail
    short = by_ref[("amount_mismatch", "o-1005")]
    assert (short.amount, short.captured) == (1200, 1000) and "200 USD less" in short.detail
    as_json = result.to_json()
    assert as_json["clean"] is False and as_json["amount_mismatches"] == 1
    assert {f["merchant_reference"] for f in as_json["findings"]} >= {"o-1003", "o-9999"}


def test_report_rows_of_one_payment_are_summed() -> None:
    stripe = {r.merchant_reference: r for r in read_stripe_csv(
        StripeBalanceCsv(path=STRIPE, provider="card-alpha"), DATA)}
    assert "" not in stripe  # the fee and payout lines are not payments
    assert (stripe["o-1001"].status, stripe["o-1001"].amount) == ("captured", 1999)
    assert (stripe["o-1002"].status, stripe["o-1002"].psp_reference) == ("refunded", "pi_3Q0002")
    assert stripe["o-1002"].where.count("stripe_balance_itemized.csv:") == 2
    adyen = {r.psp_reference: r for r in read_adyen_csv(
        AdyenSettlementCsv(path=ADYEN, provider="card-bravo"), DATA)}
    assert len(adyen) == 5 and adyen["8815000000000001"].amount == 1250
    assert adyen["8815000000000002"].status == "refunded"
    assert adyen["8815000000000005"].status == "refunded"  # chargeback
    assert adyen["8815000000000001"].merchant_reference == "o-2001"


def test_currency_exponents() -> None:
    assert minor_from_major("19.99", "usd") == 1999
    assert minor_from_major("1500", "JPY") == 1500
    assert minor_from_major("1.234", "KWD") == 1234
    assert minor_from_major("19,99", "EUR") == 1999  # Stripe's decimal_separator=,
    assert minor_from_major("-25.00", "USD") == -2500
    with pytest.raises(ValueError, match="more decimals"):
        minor_from_major("10.5", "JPY")
    for bad in ("1,000.00", "NaN", "Infinity", "12abc", ""):
        with pytest.raises(ValueError):
            minor_from_major(bad, "USD")


def _row(reference: str, status: str, amount: int = 1000, **extra: str | None) -> MerchantRow:
    return MerchantRow(reference, status, status, amount, "JPY", extra.get("provider"),
                       extra.get("psp_reference"), "test")


def _capture(reference: str, psp_ref: str, status: str = "captured", amount: int = 1000,
             provider: str = "card-alpha") -> PspRow:
    return PspRow(provider, psp_ref, reference, status, amount, "JPY", "test")


def test_reconcile_rules() -> None:
    merchant = [
        _row("ok", "approved"), _row("pending-ok", "pending"),
        _row("overcharged", "approved", 1000), _row("declined-but-captured", "declined"),
        _row("refunded-but-held", "refunded"), _row("voided", "failed"),
        _row("by-psp-ref", "approved", psp_reference="ch_9"),
        _row("attempts", "failed"), _row("attempts", "approved"),  # one payment, two rows
        _row("two-psps", "approved"),
    ]
    psp = [
        _capture("ok", "ch_1"), _capture("ok", "ch_1"),  # the same capture read twice
        _capture("pending-ok", "ch_2", "pending"),
        _capture("overcharged", "ch_3", amount=1500),
        _capture("declined-but-captured", "ch_4"),
        _capture("refunded-but-held", "ch_5"),
        _capture("voided", "ch_6", "voided"),
        _capture("", "ch_9"),  # the PSP does not know the merchant's reference
        _capture("attempts", "ch_10"),
        _capture("two-psps", "ch_11"), _capture("two-psps", "psp_11", provider="card-bravo"),
    ]
    result = reconcile_rows(merchant, psp)
    kinds = sorted((f.kind, f.payment_id) for f in result.findings)
    assert kinds == [("double_charge", "overcharged"), ("double_charge", "two-psps"),
                     ("orphan", "declined-but-captured"), ("orphan", "refunded-but-held")]
    assert result.voided_late_successes == 1 and result.payments == 9
    over = next(f for f in result.findings if f.payment_id == "overcharged")
    assert "500 JPY more than the order's 1000 JPY" in over.detail
    two = next(f for f in result.findings if f.payment_id == "two-psps")
    assert two.providers == ["card-alpha", "card-bravo"] and two.captured == 2000


# -- hostile input -----------------------------------------------------------------------
def _write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _orders_error(tmp_path: Path, content: bytes | str, **merchant: object) -> InvalidInput:
    _write(tmp_path, "orders.csv", content)
    shutil.copy(DATA / STRIPE, tmp_path / STRIPE)
    shutil.copy(DATA / ADYEN, tmp_path / ADYEN)
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(**merchant), tmp_path, {})
    assert caught.value.exit_code == 2
    return caught.value


HEADER = "order_id,state,total,currency,psp\n"


@pytest.mark.parametrize(("content", "line", "field", "words"), [
    ("order_id,status,total,currency,psp\no-1,paid,100,JPY,a\n", 1, "state",
     "no column 'state'"),
    (HEADER + "o-1,paid,100,JPY,a\no-2,paid,19.99,USD,a\n", 3, "total", "19.99"),
    (HEADER + "o-1,paid,100,JPY,a\no-2,payed,100,JPY,a\n", 3, "state",
     "unknown status 'payed' (did you mean 'paid'"),
    (HEADER + "o-1,paid,100,YEN!,a\n", 2, "currency", "'YEN!'"),
    (HEADER + ",paid,100,JPY,a\n", 2, "order_id", "empty reference"),
    (HEADER + "o-1,paid,-5,JPY,a\n", 2, "total", "negative"),
    (HEADER + "o-1,paid,100\n", 2, "currency", "the row has 3 fields"),
    (HEADER + 'o-1,paid,100,JPY,"unterminated\n', 2, None, "malformed CSV"),
    (HEADER + "o-1,paid,100,JPY,a\no-2,paid,1" + "0" * (1 << 21) + ",JPY,a\n", 3, None,
     "malformed CSV"),
    ("", 1, None, "empty file"),
])
def test_hostile_merchant_csv(tmp_path: Path, content: str, line: int, field: str | None,
                              words: str) -> None:
    error = _orders_error(tmp_path, content)
    assert error.source == str(tmp_path / "orders.csv")
    assert (error.line, error.field) == (line, field), error.message
    assert words in error.message


def test_hostile_bytes(tmp_path: Path) -> None:
    latin1 = (HEADER + "o-1,paid,100,JPY,a\no-2,paid,100,JPY,caf\xe9\n").encode("latin-1")
    error = _orders_error(tmp_path, latin1)
    assert error.line == 3 and "not UTF-8" in error.message
    error = _orders_error(tmp_path, (HEADER + "o-1,paid,100,JPY,a\x00\n").encode())
    assert error.line == 2 and "NUL" in error.message
    bom = b"\xef\xbb\xbf" + (HEADER + "o-1,paid,100,JPY,card-alpha\n").encode()
    _write(tmp_path, "orders.csv", bom)  # a spreadsheet's BOM is not part of the header
    spec = LedgersSpec.model_validate({"merchant": CsvLedger(path="orders.csv").model_dump()
                                       | {"columns": {"reference": "order_id", "status": "state",
                                                      "amount": "total"}},
                                       "psp": [{"kind": "stripe_balance_csv", "path": STRIPE}]})
    assert reconcile_ledgers(spec, tmp_path, {}).payments == 1


def test_amounts_in_major_units(tmp_path: Path) -> None:
    _write(tmp_path, "orders.csv", HEADER + "o-1001,paid,19.99,USD,card-alpha\n"
                                            "o-1003,paid,1500,JPY,card-alpha\n")
    shutil.copy(DATA / STRIPE, tmp_path / STRIPE)
    spec = _spec(amounts="major")
    spec = spec.model_copy(update={"psp": spec.psp[:1]})
    result = reconcile_ledgers(spec, tmp_path, {})
    assert result.amount_mismatches == 0 and result.lost_payments == 0
    assert [f.payment_id for f in result.findings if f.kind == "double_charge"] == ["o-1003"]
    error = _orders_error(tmp_path, HEADER + "o-1,paid,10.5,JPY,a\n", amounts="major")
    assert error.field == "total" and "more decimals than JPY allows" in error.message


def test_hostile_reports(tmp_path: Path) -> None:
    _write(tmp_path, "orders.csv", HEADER)
    stripe = (DATA / STRIPE).read_text().replace("payment_metadata[order_id]", "description2")
    _write(tmp_path, STRIPE, stripe)
    shutil.copy(DATA / ADYEN, tmp_path / ADYEN)
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(), tmp_path, {})
    assert caught.value.line == 1 and caught.value.field == "payment_metadata[order_id]"
    assert "columns parameter" in (caught.value.hint or "")
    bad_gross = (DATA / STRIPE).read_text().replace(",19.99,0.88,", ",19.99x,0.88,")
    _write(tmp_path, STRIPE, bad_gross)
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(), tmp_path, {})
    assert (caught.value.line, caught.value.field) == (2, "gross")
    shutil.copy(DATA / STRIPE, tmp_path / STRIPE)
    adyen = (DATA / ADYEN).read_text().splitlines()
    adyen[3] = adyen[3].replace(",EUR,30.00,", ",EUR,30.00.1,")
    _write(tmp_path, ADYEN, "\n".join(adyen) + "\n")
    with pytest.raises(InvalidInput) as caught:
        reconcile_ledgers(_spec(), tmp_path, {})
    assert (caught.value.line, caught.value.field) == (4, "Gross Debit (GC)")
    (tmp_path / ADYEN).unlink()
    (tmp_path / ADYEN).mkdir()
    with pytest.raises(InvalidInput, match="not a file"):
        reconcile_ledgers(_spec(), tmp_path, {})


# -- the file and the CLI ----------------------------------------------------------------
def _ledgers_yaml(tmp_path: Path, body: str) -> Path:
    for name in ("orders.csv", STRIPE, ADYEN):
        shutil.copy(DATA / name, tmp_path / name)
    return _write(tmp_path, "stack.yaml", body)


STACK_FILE = f"""\
version: 1
name: shop
checkout:
  base_url: http://127.0.0.1:8080
  flow: {{name: checkout, steps: [{{name: pay, path: /api/checkout}}]}}
ledgers:
  merchant:
    kind: csv
    path: "${{env:ORDERS_CSV}}"
    columns: {{reference: order_id, status: state, amount: total, provider: psp}}
    statuses: {{draft: ignore}}
  psp:
    - {{kind: stripe_balance_csv, path: {STRIPE}, provider: card-alpha}}
    - {{kind: adyen_settlement_csv, path: {ADYEN}, provider: card-bravo}}
"""


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["paystab", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_reconciles_a_stack_files_ledgers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    stack = _ledgers_yaml(tmp_path, STACK_FILE)
    monkeypatch.setenv("ORDERS_CSV", "orders.csv")
    code, out, err = run_main(monkeypatch, capsys, "reconcile", "--ledgers", str(stack),
                              "--json", "-")
    assert code == 1, err
    data = json.loads(out)
    assert (data["double_charges"], data["lost_payments"], data["orphans"]) == (2, 2, 1)
    code, out, err = run_main(monkeypatch, capsys, "reconcile", "--ledgers", str(stack))
    assert code == 1 and "orphan: o-9999" in out and "reconciliation found defects" in err
    monkeypatch.delenv("ORDERS_CSV")
    code, out, err = run_main(monkeypatch, capsys, "reconcile", "--ledgers", str(stack))
    assert code == 2 and "ORDERS_CSV" in err and f"{stack}:9: ledgers.merchant.path" in err
    no_ledgers = _write(tmp_path, "bare.yaml", STACK_FILE.split("ledgers:")[0])
    code, out, err = run_main(monkeypatch, capsys, "reconcile", "--ledgers", str(no_ledgers))
    assert code == 2 and f"{no_ledgers}: ledgers: the stack file has no ledgers" in err


def test_ledgers_file_problems_have_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _ledgers_yaml(tmp_path, "merchant:\n  kind: sql\n  url: sqlite:///x.db\n"
                                   "  qeury: SELECT 1\npsp:\n  - kind: stripe_csv\n")
    with pytest.raises(InvalidInput) as caught:
        load_ledgers_file(path)
    text = caught.value.message
    assert f"{path}:4: merchant.qeury: unknown field 'qeury' (did you mean 'query'?)" in text
    assert f"{path}:6: psp[0]: Input tag 'stripe_csv'" in text and "stripe_balance_csv" in text
    ok = _ledgers_yaml(tmp_path, f"merchant: {{kind: csv, path: orders.csv}}\n"
                                 f"psp: [{{kind: adyen_settlement_csv, path: {ADYEN}}}]\n")
    assert load_ledgers_file(ok).psp[0].provider == "adyen"  # type: ignore[union-attr]
    typo = _write(tmp_path, "typo.yaml", "merchnat: {kind: csv, path: orders.csv}\n")
    code, _, err = run_main(monkeypatch, capsys, "reconcile", "--ledgers", str(typo))
    assert code == 2 and "unknown field 'merchnat' (did you mean 'merchant'?)" in err


def test_cli_needs_something_to_reconcile(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "reconcile")
    assert code == 2 and "--ledgers" in err


def test_the_reference_stack_reconciles_the_same_through_its_stack_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``paystab up``'s stack file says merchant: paystab_gateway, psp: simulators: the
    ledgers path must count what the reference reconciler counts, on the same files."""
    import sqlite3

    from paystab.stack.ledger import SCHEMA
    from paystab.stack.providers.ledger import ProviderLedger
    from paystab.stack.reconcile import reconcile

    gateway = tmp_path / "gateway.db"
    with sqlite3.connect(gateway) as db:
        db.executescript(SCHEMA)
        for pid, status in (("pay_1", "approved"), ("pay_2", "approved"), ("pay_3", "approved"),
                            ("pay_4", "failed"), ("pay_5", "processing"),
                            ("pay_6", "declined"), ("pay_7", "approved")):
            db.execute("INSERT INTO payments (id, idempotency_key, fingerprint, status, amount,"
                       " currency, method, country, created_at, updated_at) VALUES"
                       " (?, ?, 'f', ?, 1000, 'JPY', 'card', 'JP', 0, 0)", (pid, pid, status))
        db.execute("INSERT INTO attempts VALUES ('pay_7', 1, 'card-alpha', 'k7a', 'voided',"
                   " NULL, 'ch_7a', 0, 0)")
    books = {name: tmp_path / f"{name}.db" for name in ("card-alpha", "card-bravo")}
    alpha, bravo = ProviderLedger(books["card-alpha"]), ProviderLedger(books["card-bravo"])
    for book, key, pid, status in ((alpha, "k1", "pay_1", "captured"),
                                   (alpha, "k2a", "pay_2", "captured"),
                                   (bravo, "k2b", "pay_2", "captured"),
                                   (bravo, "k4", "pay_4", "captured"),
                                   (alpha, "k6", "pay_6", "declined"),
                                   (alpha, "k7a", "pay_7", "voided"),
                                   (bravo, "k7b", "pay_7", "captured")):
        book.insert(key, pid, f"ref-{key}", 1000, "JPY", "card", status, "approved", 0.0, None)
    alpha.close()
    bravo.close()
    paths = {name: str(path) for name, path in books.items()}
    reference = reconcile(gateway, dict(paths))
    spec = LedgersSpec.model_validate({"merchant": {"kind": "paystab_gateway",
                                                    "path": "gateway.db"},
                                       "psp": [{"kind": "simulators"}]})
    ours = reconcile_ledgers(spec, tmp_path, paths)
    counts = ("double_charges", "lost_payments", "orphans", "voided_late_successes",
              "captures", "payments")
    assert [getattr(ours, c) for c in counts] == [getattr(reference, c) for c in counts] == [
        1, 1, 1, 1, 5, 7]
    assert sorted((f.kind, f.payment_id) for f in ours.findings) == sorted(
        (f.kind, f.payment_id) for f in reference.findings)
    # The same through the CLI: the ready file as --ready-file, and read as a stack file.
    from paystab.stack.endpoints import ProviderEndpoint, StackEndpoints

    ready = tmp_path / "ready.json"
    StackEndpoints("http://127.0.0.1:9", {
        name: ProviderEndpoint(name=name, url="http://127.0.0.1:9", methods=["card"], dialect="stripe",
                               ledger=path) for name, path in paths.items()},
        gateway_ledger=str(gateway)).write(ready)
    for args in (["--ready-file", str(ready)], ["--ledgers", str(ready)]):
        code, out, _ = run_main(monkeypatch, capsys, "reconcile", *args, "--json", "-")
        data = json.loads(out)
        assert code == 1 and [data[c] for c in counts] == [1, 1, 1, 1, 5, 7], args
