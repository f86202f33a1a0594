"""``paystab reconcile``: the merchant's book against the PSPs' books (exit 1 on any defect).

Two sources, one command: ``--ready-file`` alone reconciles the reference stack (its
gateway ledger against its simulators' ledgers); ``--ledgers FILE`` reads the ``ledgers:``
section of a stack file (or a file holding only that section) — the shop's own orders from
SQL or CSV, the PSPs' side from settlement reports or from the running simulators' ledgers
(the stack file's ``ready_file:``, or ``--ready-file``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from paystab.cli.conventions import check_json_dest, emit_json, json_option
from paystab.exceptions import InvalidInput, VerdictFailed

if TYPE_CHECKING:
    from paystab.ledgers.spec import LedgersSpec
    from paystab.stack.reconcile import Reconciliation

_DEFECTS = ("double_charges", "lost_payments", "orphans", "amount_mismatches")


@click.command("reconcile", epilog="\b\nExamples:\n"
               "  paystab reconcile --ready-file stack.json --json -\n"
               "  paystab reconcile --ledgers stack.yaml --ready-file stack.json\n"
               "  paystab reconcile --ledgers ledgers.yaml --json findings.json")
@click.option("--ready-file", type=click.Path(path_type=Path),
              help="The ready file of a running stack: the simulators' ledgers (and, "
                   "without --ledgers, the gateway's). Default with --ledgers: the stack "
                   "file's ready_file:.")
@click.option("--ledgers", "ledgers_file", type=click.Path(path_type=Path),
              help="A stack file (its ledgers: section; a ready file reads as one) or a file "
                   "holding only that section (merchant:, psp:).")
@json_option()
def reconcile_command(ready_file: Path | None, ledgers_file: Path | None,
                      json_dest: str | None) -> None:
    """Compare the merchant's book with every PSP's (exit 1 on any defect)."""
    from paystab.stack.endpoints import StackEndpoints

    check_json_dest(json_dest)
    if ready_file is None and ledgers_file is None:
        raise InvalidInput("nothing to reconcile", source="--ledgers",
                           expected="--ledgers FILE, --ready-file FILE, or both")
    if ledgers_file is None:
        from paystab.stack.reconcile import reconcile_stack

        assert ready_file is not None
        result = reconcile_stack(StackEndpoints.read(ready_file), str(ready_file))
    else:
        from paystab.ledgers.reconcile import reconcile_ledgers

        spec, named, base_dir = _read_ledgers(ledgers_file)
        ready_file = ready_file or named  # the flag wins over the stack file's ready_file:
        endpoints = StackEndpoints.read(ready_file) if ready_file is not None else None
        simulators = ({name: p.ledger for name, p in endpoints.providers.items() if p.ledger}
                      if endpoints is not None else {})
        result = reconcile_ledgers(spec, base_dir, simulators)
    if json_dest:
        emit_json(result.to_json(), json_dest)
    else:
        _print(result)
    if not result.clean:
        raise VerdictFailed("reconciliation found defects (see above)")


def _read_ledgers(path: Path) -> tuple[LedgersSpec, Path | None, Path]:
    """(ledgers, the ready file the stack file names, the folder paths are relative to).

    A stack file (or a ready file, read as one) goes through the stack-file loader, all of
    it checked as ``paystab stack validate`` and ``paystab drill --stack`` check it; a file
    holding only the section is read on its own."""
    from paystab.ledgers.load import is_ledgers_section, load_ledgers_file

    if is_ledgers_section(path):
        return load_ledgers_file(path), None, path.parent
    from paystab.stackfile.load import load_stack

    loaded = load_stack(path)
    if loaded.spec.ledgers is None:
        raise InvalidInput("the stack file has no ledgers", source=str(path), field="ledgers",
                           expected="a ledgers: section with merchant: and psp: "
                                    "(docs/your-stack.md#ledgers)")
    ready = loaded.spec.ready_file
    return loaded.spec.ledgers, Path(ready) if ready is not None else None, loaded.base_dir


def _print(result: Reconciliation) -> None:
    from rich.table import Table

    from paystab.cli.plain import show

    table = Table(title="Reconciliation", show_header=True)
    table.add_column("check")
    table.add_column("count", justify="right")
    for name in (*_DEFECTS, "voided_late_successes", "payments", "captures"):
        value = getattr(result, name)
        table.add_row(name, f"[red]{value}[/red]" if name in _DEFECTS and value else str(value))
    show(table)  # a table on a terminal, key=value lines in a pipe
    for finding in result.findings[:20]:
        click.echo(f"  {finding.kind}: {finding.payment_id or '(no reference)'}: "
                   f"{finding.detail}")
    if len(result.findings) > 20:
        click.echo(f"  ... and {len(result.findings) - 20} more (--json lists up to 100)")
