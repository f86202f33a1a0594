"""One way to do each thing across the CLI (issue 17, item 1): ``--json [FILE|-]``, output
paths checked before any work, click's usage errors in the ``paystab:`` style with exit 2,
did-you-mean for every name, a positive-rate message, an example in every ``--help``,
line-oriented output when piped, and a gateway whose options all say what they do.

In-process: click's CliRunner for what the commands print, and :func:`run_main` (``main``
with ``sys.argv`` set) where the exit code and the error style of ``main`` itself matter.
Nothing here starts a stack or sends load.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner

from paystab.cli import cli, main
from paystab.exceptions import InvalidInput
from paystab.report.base import write_report
from tests.report_demo import demo_report

if TYPE_CHECKING:
    from paystab.loadtest.result import LoadResult

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens, so no load is ever sent


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["paystab", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def commands(command: click.Command = cli, path: tuple[str, ...] = ()
             ) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += commands(sub, (*path, name))
    return found


# -- --json [FILE|-] -----------------------------------------------------------------------
def test_json_flag_alone_or_dash_prints_and_a_file_is_written(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["chaos", "kinds", "--json"], ["chaos", "kinds", "--json", "-"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "provider.hang" in json.loads(result.stdout)
    target = tmp_path / "new" / "deep" / "kinds.json"  # folders are created
    result = runner.invoke(cli, ["chaos", "kinds", "--json", str(target)])
    assert result.exit_code == 0 and result.stdout == ""
    assert "provider.hang" in json.loads(target.read_text())
    listed = runner.invoke(cli, ["runbook", "list", "--json"])
    assert any(row["name"] == "provider-timeout" for row in json.loads(listed.stdout))


def test_every_json_option_takes_an_optional_file() -> None:
    with_json = [(path, cmd) for path, cmd in commands()
                 if any("--json" in getattr(p, "opts", ()) for p in cmd.params)]
    assert {" ".join(p) for p, _ in with_json} >= {
        "chaos status", "chaos kinds", "runbook list", "reconcile", "detect", "load",
        "load capacity", "report"}
    for path, cmd in with_json:
        option = next(p for p in cmd.params if "--json" in getattr(p, "opts", ()))
        assert isinstance(option, click.Option)
        assert option.flag_value == "-" and not option.is_flag, path
        assert option.metavar == "[FILE|-]", path


def test_report_json_to_stdout_keeps_the_summary_off_stdout(tmp_path: Path) -> None:
    saved = write_report(demo_report(), tmp_path / "report.json", "json")
    result = CliRunner().invoke(cli, ["report", str(saved), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runbook"] == demo_report().runbook
    assert "verdict: " in result.stderr  # the summary, as lines: stderr is no terminal here


# -- output paths before any work ------------------------------------------------------------
def test_load_checks_its_json_path_before_the_target(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_main(monkeypatch, capsys, "load", "--target", UNREACHABLE, "--no-live",
                            "--duration", "1", "--json", str(blocker / "dir" / "x.json"))
    assert code == 2, err  # not 4 (unreachable target): the path was checked first
    assert err.startswith("paystab: --json: cannot write to ")
    created = tmp_path / "missing" / "dir" / "x.json"
    code, _, err = run_main(monkeypatch, capsys, "load", "--target", UNREACHABLE, "--no-live",
                            "--duration", "1", "--json", str(created), "--csv",
                            str(tmp_path / "csv" / "r.csv"))
    assert code == 4, err  # now the target is the problem…
    assert created.parent.is_dir() and (tmp_path / "csv").is_dir()  # …and the folders exist


@pytest.mark.parametrize("args", [("up", "--port", "0"),
                                  ("gateway", "--providers-file", "/nonexistent.json")])
def test_stack_outputs_are_checked_before_anything_starts(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        args: tuple[str, ...]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_main(monkeypatch, capsys, *args, "--ready-file", str(blocker / "r.json"))
    assert code == 2 and err.startswith("paystab: --ready-file: cannot write to "), err


def test_report_refuses_an_unwritable_output_with_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    saved = write_report(demo_report(), tmp_path / "report.json", "json")
    code, _, err = run_main(monkeypatch, capsys, "report", str(saved), "--html", str(tmp_path))
    assert code == 2 and err.startswith("paystab: --html: "), err


# -- one error style ---------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "start"), [
    (("drill", "--seed", "x"), "paystab: --seed: "),
    (("drill", "--no-such-flag"), "paystab: --no-such-flag: no such option"),
    (("report",), "paystab: REPORT.json: missing argument"),
    (("load", "--processes", "many"), "paystab: --processes: "),
])
def test_click_usage_errors_come_out_in_the_paystab_style(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: tuple[str, ...], start: str) -> None:
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert err.startswith(start), err
    assert "Usage:" not in err and "Error:" not in err and out == ""
    assert f"see `paystab {args[0]} --help`" in err


@pytest.mark.parametrize("command", ["drill", "load"])
def test_a_negative_rate_is_said_to_be_negative(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: str) -> None:
    code, _, err = run_main(monkeypatch, capsys, command, "--rps", "-5", "--no-live",
                            *(["--target", UNREACHABLE] if command == "load" else []))
    assert code == 2
    assert err.startswith("paystab: --rps: '-5' is negative: a rate must be positive"), err
    code, _, err = run_main(monkeypatch, capsys, command, "--rps", "0", "--no-live",
                            *(["--target", UNREACHABLE] if command == "load" else []))
    assert code == 2 and "must be positive" in err


# -- did you mean ------------------------------------------------------------------------------
def test_unknown_commands_suggest_what_was_meant(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "run")
    assert code == 2
    assert err.startswith("paystab: no command 'run' (did you mean 'drill'"), err
    assert "'runbook'" in err
    code, _, err = run_main(monkeypatch, capsys, "recon")
    assert code == 2 and "'reconcile'" in err


def test_every_name_has_did_you_mean(tmp_path: Path) -> None:
    from paystab.chaos.bundled import find_runbook
    from paystab.chaos.hypothesis import Hypothesis, HypothesisError
    from paystab.loadtest.profiles import make_profile
    from paystab.stack.config import load_stack_config

    with pytest.raises(InvalidInput, match=r"did you mean 'provider-timeout'"):
        find_runbook("provider-timout")
    with pytest.raises(InvalidInput, match=r"did you mean 'steady'"):
        make_profile("stedy", 10.0)
    with pytest.raises(HypothesisError, match=r"did you mean 'availability'"):
        Hypothesis.parse("availabilty >= 0.999")
    config = tmp_path / "stack.yaml"
    config.write_text("providers:\n  card-alfa:\n    fee_bps: 10\n")
    with pytest.raises(InvalidInput, match=r"did you mean 'card-alpha'") as info:
        load_stack_config(config)
    assert info.value.line == 2  # the line that names the unknown provider


# -- help ----------------------------------------------------------------------------------------
def test_every_help_ends_with_an_example() -> None:
    runner = CliRunner()
    for path, _ in commands():
        result = runner.invoke(cli, [*path, "--help"], prog_name="paystab", terminal_width=200)
        assert result.exit_code == 0, path
        assert re.search(r"Examples?:\n +paystab ", result.output), f"paystab {' '.join(path)} --help"


def test_gateway_options_all_say_what_they_do() -> None:
    gateway = cli.commands["gateway"]
    undocumented = [p.name for p in gateway.params
                    if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert undocumented == []


# -- plain output when piped ---------------------------------------------------------------------
def test_piped_load_results_are_lines_not_a_cut_table() -> None:
    from paystab.loadtest.render import result_lines, result_view

    result = _a_load_result()
    lines = result_lines(result)
    assert lines[0].startswith("load: steady -> ")
    assert any(line.startswith("total: requests=3 ") for line in lines)
    assert all("│" not in line and "┃" not in line for line in lines)
    from rich.console import Console

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(result_view(result, plain=True))
    text = console.export_text()
    assert "failure=" in text and "availability=" in text  # keys whole, nothing cut to "…"
    assert "…" not in text


def _a_load_result() -> LoadResult:
    from paystab.loadtest.plan import build_plan
    from paystab.loadtest.records import CheckoutRecord
    from paystab.loadtest.result import LoadResult
    from paystab.loadtest.stats import summarize, windows

    records = [CheckoutRecord(100.0 + i * 0.1, "card", "JPY", outcome, outcome, outcome,
                              50.0 + i, 1, 200) for i, outcome in
               enumerate(["approved", "declined", "failed"])]
    return LoadResult(plan=build_plan("steady", 10.0, 1.0, seed=0),
                      target_url="http://127.0.0.1:9", started_at=100.0, elapsed_s=1.0,
                      window_s=30.0, summary=summarize(records, 0, 0.0, 1.0),
                      windows=windows(records, {}, 100.0, 1.0, 30.0), thresholds=[],
                      records=records)


def test_piped_live_view_prints_key_value_lines() -> None:
    import time

    from rich.console import Console

    from paystab.loadtest.live import LiveView
    from paystab.loadtest.records import RecordSink

    out = io.StringIO()
    console = Console(file=out, width=80)  # a StringIO is no terminal
    sink = RecordSink()
    view = LiveView(sink, title="paystab load", target_rate=lambda: 50.0, users=lambda: 4,
                    run_start=lambda: time.time() - 3, duration_s=10.0, console=console)
    view.start()  # not a terminal: no rich Live, a progress greenlet instead
    view.stop()  # the final figures, once
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("elapsed=3/10s target/s=50 ")
    assert "p95_ms=" in lines[0] and "dropped=0" in lines[0] and "…" not in lines[0]


def test_drill_against_a_target_says_it_connects_rather_than_starts_a_stack(
        tmp_path: Path) -> None:
    import os
    import subprocess

    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run(  # a subprocess: the drill gevent-patches the process it runs in
        [sys.executable, "-m", "paystab", "drill", "--target", UNREACHABLE, "--no-live",
         "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
        env=env, cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    assert "drill: connecting to the target" in done.stderr
    assert "starting the stack" not in done.stderr
