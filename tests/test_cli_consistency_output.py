"""Plain, line-oriented output when not on a terminal (issue 17, item 1), for every command
that draws tables: no box drawing, nothing cut to fit 80 columns, one fact per line.

The click tree is walked and every command whose code draws with rich (a ``Table``, a
``Console``, a renderer's ``*_view``/``summary``) must appear in :data:`PIPED`, which runs
it (or the exact function it prints through) with a stdout that is not a terminal. A
command added later that draws a table fails here until it prints lines when piped.
Nothing here starts a stack or sends load.
"""

from __future__ import annotations

import inspect
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from paystab.cli import cli
from paystab.cli.plain import BOX_CHARACTERS, lines, show
from paystab.report.base import write_report
from tests.report_demo import demo_report

DRAWS = re.compile(r"\bTable\(|Console\(|console\.print\(|\bshow\(|_view\(|summary\(|"
                   r"show_endpoints\(|make_view\(|run_drills\(")
LONG = "a reason long enough that an 80-column table would have cut it to an ellipsis " * 2


def walk(command: click.Command = cli, path: tuple[str, ...] = ()
         ) -> list[tuple[str, click.Command]]:
    found = [(" ".join(path), command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += walk(sub, (*path, name))
    return found


def draws_with_rich(command: click.Command) -> bool:
    """The command's callback, and the functions of its module it calls, draw with rich."""
    if command.callback is None:
        return False
    fn = inspect.unwrap(command.callback)
    module = sys.modules[fn.__module__]
    source = inspect.getsource(fn)
    for name in set(re.findall(r"\b(\w+)\(", source)):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper) and helper.__module__ == module.__name__ \
                and helper is not fn:
            source += inspect.getsource(helper)
    return bool(DRAWS.search(source))


def assert_plain(output: str) -> list[str]:
    assert output.strip(), "nothing printed"
    assert not BOX_CHARACTERS.search(output), output
    assert "…" not in output, output  # nothing cut to fit a width
    return output.splitlines()


# -- each command that draws tables, piped -----------------------------------------------------
def piped_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paystab.cli.up_view import show_endpoints
    from paystab.stack.endpoints import ProviderEndpoint, StackEndpoints

    providers = {f"card-{i}": ProviderEndpoint(f"card-{i}", f"http://127.0.0.1:{9000 + i}",
                                               ["card", "wallet", "bank_transfer"],
                                               "alpha-json-with-a-long-dialect-name")
                 for i in range(3)}
    show_endpoints(StackEndpoints("http://127.0.0.1:8080", providers,
                                  provider_admin_url="http://127.0.0.1:9100",
                                  data_dir=str(tmp_path)))
    out = assert_plain(capsys.readouterr().out)
    assert out[0] == "paystab reference stack"
    assert 'part=card-2 url=http://127.0.0.1:9002 methods_notes="card, wallet, bank_transfer ' \
           '(alpha-json-with-a-long-dialect-name)"' in out


def piped_reconcile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paystab.cli.reconcile_cmd import _print
    from paystab.stack.reconcile import Reconciliation

    _print(Reconciliation(double_charges=2, payments=1234, captures=1236))
    out = assert_plain(capsys.readouterr().out)
    assert "check=double_charges count=2" in out and "check=payments count=1234" in out


def piped_detect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1)
    rows = ["timestamp,provider,attempts,failures"]
    for i in range(600):  # a quiet baseline, then 30 % failures
        failures = 30 if i >= 450 else int(rng.random() < 0.5)
        rows.append(f"{1_700_000_000 + i * 10},card-alpha-with-a-long-name,100,{failures}")
    data = tmp_path / "counts.csv"
    data.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(cli, ["detect", "--input", str(data)], terminal_width=80)
    assert result.exit_code == 0, result.output
    out = assert_plain(result.stdout)
    assert out[0] == "1 anomaly"
    assert out[1].startswith("provider=card-alpha-with-a-long-name start=")
    assert "detector=failure_rate" in out[1] and 'reason="failure rate above' in out[1]


def piped_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = write_report(demo_report(), tmp_path / "report.json", "json")
    result = CliRunner().invoke(cli, ["report", str(saved)], terminal_width=80)
    assert result.exit_code == 0, result.output
    out = assert_plain(result.stdout)
    assert out[0].startswith("verdict: ") and any(line.startswith("hypothesis ") for line in out)
    result = CliRunner().invoke(cli, ["report", str(saved), "--json", "-"])
    assert_plain(result.stderr)  # the summary moves to stderr, still lines


def piped_drill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paystab.report.terminal import plain_summary  # what drill prints when piped

    out = assert_plain(plain_summary(demo_report()))
    assert out[0].startswith("verdict: ")


def piped_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paystab.loadtest.render import result_view
    from tests.test_cli_conventions import _a_load_result

    result = CliRunner().invoke(cli, ["load", "--list-profiles"], terminal_width=80)
    assert result.exit_code == 0, result.output
    out = assert_plain(result.stdout)
    assert out[0].startswith("load profiles")
    assert any(line.startswith("profile=steady ") for line in out)
    show(result_view(_a_load_result(), plain=True))  # what a piped `load` prints
    out = assert_plain(capsys.readouterr().out)
    total = next(line for line in out if line.startswith("total: "))
    assert len(total) > 140 and "p99=" in total  # one line, however long


def piped_load_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paystab.cli.load_cmds import capacity
    from paystab.loadtest.capacity_result import CapacityResult, CapacityStep
    from paystab.loadtest.render import capacity_view
    from tests.test_cli_conventions import _a_load_result

    assert capacity.callback is not None
    assert "show(capacity_view(" in inspect.getsource(capacity.callback)
    summary = _a_load_result().summary
    result = CapacityResult(400.0, 600.0, ["failure_rate<0.005", "p(99)<500"],
                            [CapacityStep(400.0, summary, True, ()),
                             CapacityStep(600.0, summary, False, ("p(99)<500",))],
                            expected_peak=500.0, max_rps=2000.0)
    show(capacity_view(result))
    out = assert_plain(capsys.readouterr().out)
    assert out[0] == "capacity search — latency curve"
    assert any(line.startswith("rate_s=600 ") and 'verdict="✗ p(99)<500"' in line
               for line in out)


def piped_watch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paystab.cli.watch_cmds import watch

    # The live view only on a terminal; piped, one JSON line per decision-log entry
    # (tests/test_watch_view.py checks those lines).
    assert "live=not no_live and sys.stdout.isatty()" in inspect.getsource(watch.callback)


PIPED: dict[str, Callable[[Path, pytest.CaptureFixture[str]], None]] = {
    "up": piped_up, "reconcile": piped_reconcile, "detect": piped_detect,
    "report": piped_report, "drill": piped_drill, "load": piped_load,
    "load capacity": piped_load_capacity, "watch": piped_watch,
}


def test_every_command_that_draws_tables_is_checked_piped() -> None:
    drawing = {path for path, command in walk() if draws_with_rich(command)}
    assert drawing >= {"up", "reconcile", "detect", "report", "load", "load capacity"}
    assert drawing - set(PIPED) == set(), "these draw with rich: add them to PIPED"


@pytest.mark.parametrize("path", sorted(PIPED))
def test_piped_output_is_lines(path: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    PIPED[path](tmp_path, capsys)


# -- the line form itself ------------------------------------------------------------------------
def test_tables_become_logfmt_lines_with_labels_first() -> None:
    slo = Table(title="SLOs and the verdict", box=None)
    for name in ("", "observed", "SLO", "in the verdict"):
        slo.add_column(name)
    slo.add_row("availability", "[green]99.995 %[/green]", "≥ 99.99 %", "yes")
    traffic = Table(title=Text("Customer traffic"), show_header=False)
    traffic.add_column()
    traffic.add_column()
    traffic.add_row("requests", "1,234")
    profiles = Table(title="profiles")
    profiles.add_column("profile")
    profiles.add_column("parameters")
    profiles.add_row("spike", "peak = 10 (x): how high\nat = 30 (s): when")
    profiles.add_row("odd", 'say "hi" = ok')
    out = lines(Group(Panel(slo), traffic, Text("✓ p(99)<500", style="green"), profiles,
                      Text(LONG)))
    assert out == [
        "SLOs and the verdict",
        'availability: observed="99.995 %" slo="≥ 99.99 %" in_the_verdict=yes',
        "Customer traffic",
        "requests: 1,234",
        "✓ p(99)<500",
        "profiles",
        'profile=spike parameters="peak = 10 (x): how high; at = 30 (s): when"',
        'profile=odd parameters="say \\"hi\\" = ok"',
        LONG.rstrip(),
    ]


def test_show_draws_the_table_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    table = Table(title="t")
    table.add_column("a")
    table.add_row("1")
    show(table)
    assert capsys.readouterr().out == "t\na=1\n"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    show(table)
    assert BOX_CHARACTERS.search(capsys.readouterr().out)
