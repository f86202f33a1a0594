"""``paystab report REPORT.json [--html F] [--junit F] [--json [F|-]]``: re-render a saved drill.

Reads a ``report.json`` written by ``paystab drill``, checks it against schema v1 and
writes the requested formats (see :mod:`paystab.report`); the terminal summary goes to
stdout unless ``--quiet``. A file that is not JSON or not a v1 report is invalid input
(exit 2) naming the file, line or field; an output that cannot be written is an
environment problem (exit 4). ``--check`` makes the exit code follow the report's verdict
(1 fail, 3 aborted, 4 inconclusive), for CI steps that only re-read a report.
"""

from __future__ import annotations

from pathlib import Path

import click

from paystab.cli.conventions import STDOUT, emit_json, json_option
from paystab.exceptions import Aborted, EnvironmentProblem, Inconclusive, VerdictFailed
from paystab.outputs import check_output_file


@click.command("report")
@click.argument("report_file", metavar="REPORT.json", type=click.Path(dir_okay=False))
@click.option("--html", "html_file", type=click.Path(dir_okay=False),
              help="Write the self-contained HTML report here.")
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False),
              help="Write JUnit XML (one testcase per hypothesis and invariant) here.")
@json_option("The report JSON (normalised, schema v1): on stdout (--json, --json -; the "
             "summary then goes to stderr) or into FILE.", dest="json_file")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the terminal summary.")
@click.option("--check", is_flag=True,
              help="Exit 1 if the verdict is fail, 3 if aborted, 4 if inconclusive "
                   "(default: 0 once rendered).")
def report_command(report_file: str, html_file: str | None, junit_file: str | None,
                   json_file: str | None, quiet: bool, check: bool) -> None:
    """Re-render a saved drill report: terminal summary, HTML, JUnit XML, JSON."""
    from paystab.cli.plain import is_terminal, show
    from paystab.report.base import write_report
    from paystab.report.schema import load_report
    from paystab.report.terminal import plain_summary, summary

    for flag, target in (("--html", html_file), ("--junit", junit_file), ("--json", json_file)):
        if target is not None:
            check_output_file(target, flag)  # before reading: exit 2 naming the flag
    report = load_report(report_file)
    if json_file == STDOUT:
        emit_json(report.to_json(), STDOUT)
    for name, target in (("html", html_file), ("junit", junit_file), ("json", json_file)):
        if target is None or target == STDOUT:
            continue
        try:
            written = write_report(report, target, name)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {target}: {exc.strerror or exc}",
                                     hint="choose a writable path") from None
        if not quiet:
            click.echo(f"wrote {Path(written)}", err=True)
    if not quiet:
        to_stderr = json_file == STDOUT
        if is_terminal(to_stderr):
            show(summary(report), stderr=to_stderr)
        else:  # piped: the drill's own line form, one fact per line
            click.echo(plain_summary(report), err=to_stderr, nl=False)
    if check and report.verdict == "fail":
        failed = [h.expr for h in report.hypotheses if h.ok is False]
        raise VerdictFailed(f"{report_file}: verdict fail"
                            + (f" ({'; '.join(failed)})" if failed else ""))
    if check and report.verdict == "aborted":
        raise Aborted(f"{report_file}: drill aborted"
                      + (f": {report.abort_reason}" if report.abort_reason else ""))
    if check and report.verdict == "inconclusive":
        raise Inconclusive(f"{report_file}: verdict inconclusive"
                           + (f": {report.inconclusive_reason}" if report.inconclusive_reason
                              else ""))


def register(group: click.Group) -> None:
    group.add_command(report_command)
