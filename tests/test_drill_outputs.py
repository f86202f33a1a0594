"""Where a drill writes: output paths checked before any work, one JUnit file for several
runbooks, report files a person can share."""

from __future__ import annotations

import copy
import os
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from paystab.drill.cli_run import check_output_paths
from paystab.exceptions import InvalidInput
from paystab.report.base import renderer, write_text
from paystab.report.junit import render_many
from tests.report_demo import demo_variants


def test_one_junit_document_holds_a_testsuite_per_drill() -> None:
    variants = demo_variants()
    first, second = (copy.deepcopy(v) for v in list(variants.values())[:2])
    second.runbook = "another-drill"
    root = ET.fromstring(render_many([first, second]))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [f"paystab.drill.{first.runbook}", "paystab.drill.another-drill"]
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key, "-1")) == sum(int(s.get(key, "0")) for s in suites)


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidInput) as caught:
        check_output_paths([blocker / "sub"], None)
    assert "--out" in caught.value.render() and str(blocker / "sub") in caught.value.render()
    with pytest.raises(InvalidInput) as caught:
        check_output_paths([tmp_path / "ok"], tmp_path)  # --junit given a folder
    assert "--junit" in caught.value.render()
    check_output_paths([tmp_path / "new" / "deep"], tmp_path / "ci" / "junit.xml")
    assert (tmp_path / "new" / "deep").is_dir() and (tmp_path / "ci").is_dir()


def test_reports_get_the_mode_of_any_new_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_text("{}", tmp_path / "report.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    surrogate = write_text("bad \ud800 text", tmp_path / "odd.html")
    assert surrogate.read_text(encoding="utf-8") == "bad \\ud800 text"


def test_drill_with_an_unwritable_out_exits_2_at_once(tmp_path: Path) -> None:
    blocker = tmp_path / "hostname"
    blocker.write_text("x")
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, "-m", "paystab", "drill", "--no-live", "--out", str(blocker / "sub")],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--out" in done.stderr and "Traceback" not in done.stderr
    assert "starting the stack" not in done.stderr


TINY = """
name: {name}
description: a short quiet drill
seed: 3
target:
  reference: {{}}
load:
  profile: steady
  rate: 10/s
  duration: 4s
hypotheses:
  - availability >= 0.99
"""


@pytest.mark.slow
def test_two_runbooks_write_the_one_junit_file_asked_for(tmp_path: Path) -> None:
    books = []
    for name in ("quiet-one", "quiet-two"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(TINY.format(name=name))
        books.append(str(path))
    junit = tmp_path / "ci" / "junit.xml"
    env = dict(os.environ, PAYSTAB_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, "-m", "paystab", "drill", *books, "--no-live", "--out",
                           str(tmp_path / "out"), "--junit", str(junit)],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode in (0, 4), done.stderr[-3000:]  # 4: inconclusive on a starved host
    assert sorted(p.name for p in junit.parent.iterdir()) == ["junit.xml"]
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["paystab.drill.quiet-one", "paystab.drill.quiet-two"]
    assert (tmp_path / "out" / "quiet-one" / "report.json").exists()
    assert (tmp_path / "out" / "quiet-two" / "report.html").exists()


def test_a_report_with_a_malformed_extra_section_is_invalid_input_not_a_crash(tmp_path: Path) -> None:
    import json

    from paystab.report.schema import load_report

    data = json.loads(renderer("json").render(copy.deepcopy(next(iter(demo_variants().values())))))
    data["timeline"] = [{"requests": 3}]  # no t_s
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput) as caught:
        load_report(path)
    assert str(path) in caught.value.render() and "extra section" in caught.value.render()


def test_piped_summary_is_one_fact_per_line() -> None:
    from paystab.report.terminal import plain_summary

    report = copy.deepcopy(demo_variants()["fail"])
    text = plain_summary(report)
    lines = text.splitlines()
    assert lines[0].startswith("verdict: ") and all(len(line) < 400 for line in lines)
    assert sum(line.startswith("hypothesis ") for line in lines) == len(report.hypotheses)
    assert any(line.startswith("false failovers: ") for line in lines)
    assert any(line.startswith("reconciliation double_charges: ") for line in lines)
    assert "┃" not in text and "│" not in text  # no table borders


@pytest.mark.parametrize(("verdicts", "code"), [
    (("inconclusive", "pass"), 4), (("inconclusive", "fail"), 1), (("pass", "pass"), 0)])
def test_an_inconclusive_drill_lets_the_next_runbooks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          verdicts: tuple[str, str], code: int) -> None:
    """Several runbooks: an inconclusive one is reported and the rest still run; a fail
    outranks an inconclusive, which outranks a pass."""
    from paystab.drill import cli_run, runner
    from paystab.exceptions import Inconclusive

    ran: list[str] = []

    def fake_run(self: runner.Drill) -> object:
        report = copy.deepcopy(demo_variants()["pass"])
        report.runbook = self.options.runbook
        report.verdict = verdicts[len(ran)]
        report.inconclusive_reason = "the load generator dropped 9 of 10 arrivals"
        ran.append(self.options.runbook)
        return report

    monkeypatch.setattr(runner.Drill, "run", fake_run)
    monkeypatch.setattr(cli_run, "patch_with_gevent", lambda: None)
    junit = tmp_path / "junit.xml"
    try:
        got = cli_run.run_drills(["one", "two"], None, None, None, None, tmp_path / "out", junit, False)
    except Inconclusive:
        got = 4
    assert ran == ["one", "two"] and got == code
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["paystab.drill.one", "paystab.drill.two"]
