"""A runbook names the checkout its load sends: ``load.flow``, ``load.flow_file``, ``load.locustfile``.

At most one; paths relative to the runbook; every mistake is exit 2 naming file:line:field
(the runbook's, or the flow file's own for a mistake inside it). The drill's load plan is
built from the runbook's key, and over a stack file's ``checkout:`` the runbook's key wins
with a note (paystab/drill/load_source.py). The plan building is tested here without a
drill; one short drill (slow) sends a runbook's locustfile through a stack file whose own
flow would fail, to the stand-in shop (tests/shop_standin.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paystab.chaos.runbook import load_runbook
from paystab.config.problems import ConfigInvalid
from paystab.drill.load_source import drill_load
from paystab.drill.stack_target import StackTarget
from paystab.stackfile import load_stack
from tests.conftest_chaos import env_with_state
from tests.conftest_load import run_paystab
from tests.shop_standin import Shop, ShopServer

FLOW = """\
    name: shop-checkout
    steps:
      - name: checkout
        path: /api/checkout
        json: {amount: "{{ amount }}", currency: "{{ currency }}", card: "{{ card }}"}
        classify:
          - {status: 200, path: $.state, equals: succeeded, outcome: approved}
          - {status: 200, path: $.state, equals: declined, outcome: declined}
"""

LOCUSTFILE = """\
from locust import FastHttpUser, task


class Shopper(FastHttpUser):
    @task
    def buy(self):
        self.client.post("/api/checkout", json={"card": "4242424242424242", "amount": 100})
"""

HEAD = """\
name: {name}
description: the stand-in shop through its own checkout
load:
  rate: 10
  duration: 4s
  min_duration: 4s
"""

# A stack file whose own flow asks a page the shop does not have: if it ran, all would fail.
STACK = """\
version: 1
name: stand-in
checkout:
  base_url: {url}
  flow:
    steps:
      - {{name: pay, path: /api/not-here}}
"""


def _runbook(directory: Path, name: str, load_tail: str, rest: str = "") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(HEAD.format(name=name) + load_tail + rest)
    return path


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A runbook directory with a flow file and a locustfile beside the runbooks."""
    books = tmp_path / "books"
    books.mkdir()
    (books / "flow.yaml").write_text("flow:\n" + FLOW)
    (books / "shop_locust.py").write_text(LOCUSTFILE)
    return books


def test_each_key_is_read_relative_to_the_runbook(files: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the runbooks' directory
    inline = load_runbook(_runbook(files, "inline", "  flow:\n" + FLOW))
    from_file = load_runbook(_runbook(files, "from-file", "  flow_file: flow.yaml\n"))
    locust = load_runbook(_runbook(files, "locust", "  locustfile: shop_locust.py\n"))
    plain = load_runbook(_runbook(files, "plain", ""))

    assert inline.load.checkout is not None and from_file.load.checkout is not None
    assert inline.load.checkout.kind == "flow" and inline.load.checkout.line == 7
    assert from_file.load.checkout.kind == "flow_file"
    assert inline.load.checkout.flow == from_file.load.checkout.flow  # the same flow, two ways
    assert inline.load.checkout.flow["steps"][0]["path"] == "/api/checkout"  # type: ignore[index]
    assert locust.load.checkout is not None and locust.load.checkout.kind == "locustfile"
    assert locust.load.checkout.locustfile == str(files / "shop_locust.py")
    assert plain.load.checkout is None
    shown = run_paystab("runbook", "show", str(files / "locust.yaml"))
    assert f"checkout:   load.locustfile ({files / 'shop_locust.py'})" in shown.stdout, shown


def test_the_drill_plan_carries_the_runbooks_flow_and_wins_over_the_stack_file(
        files: Path, tmp_path: Path) -> None:
    runbook = load_runbook(_runbook(files, "inline", "  flow:\n" + FLOW))
    alone = drill_load(runbook, None)
    assert alone.plan is not None and alone.user_classes is None
    assert alone.plan.flow == dict(runbook.load.checkout.flow)  # type: ignore[union-attr]
    assert (alone.plan.rate, alone.plan.duration_s, alone.plan.seed) == (10.0, 4.0, runbook.seed)
    assert alone.note is not None and "load.flow (flow 'shop-checkout') is sent" in alone.note

    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK.format(url="http://127.0.0.1:9"))
    stack = StackTarget(load_stack(stack_file), tmp_path / "out", runbook.seed)
    over = drill_load(runbook, stack)
    assert over.plan is not None and over.plan.flow == alone.plan.flow  # the runbook's, not the file's
    assert over.note is not None and "instead of its checkout.flow" in over.note
    assert "more specific" in over.note

    # Without a key of its own, the runbook's load goes through the stack file's checkout.
    plain = load_runbook(_runbook(files, "plain", ""))
    through_stack = drill_load(plain, stack)
    assert through_stack.plan is not None and through_stack.note is None
    assert through_stack.plan.flow["steps"][0]["path"] == "/api/not-here"  # type: ignore[index]
    assert drill_load(plain, None).plan is None  # paystab's own payment: the runner's plan


def test_two_keys_at_once_name_the_second_at_its_line(files: Path) -> None:
    path = _runbook(files, "two", "  flow_file: flow.yaml\n  locustfile: shop_locust.py\n")
    with pytest.raises(ConfigInvalid) as caught:
        load_runbook(path)
    assert caught.value.line == 8 and caught.value.field == "load.locustfile"
    assert "flow_file and locustfile both say what the load sends" in str(caught.value)


def test_hostile_checkout_keys_exit_2_naming_file_line_and_field(files: Path) -> None:
    two = _runbook(files, "two", "  flow:\n" + FLOW + "  locustfile: shop_locust.py\n")
    missing = _runbook(files, "missing", "  locustfile: nowhere/locustfile.py\n")
    not_python = _runbook(files, "not-python", "  locustfile: flow.yaml\n")
    no_flow_file = _runbook(files, "no-flow-file", "  flow_file: gone.yaml\n")
    bad_inline = _runbook(files, "bad-inline", "  flow:\n" + FLOW.replace(
        "outcome: declined", "outcome: refused"))
    unknown_value = _runbook(files, "unknown-value", "  flow:\n" + FLOW.replace(
        "{{ card }}", "{{ pan }}"))
    misspelt = _runbook(files, "misspelt", "  flow:\n" + FLOW.replace("json:", "jsn:"))
    (files / "broken-flow.yaml").write_text("flow:\n" + FLOW.replace("path: $.state", "path: state", 1))
    bad_file = _runbook(files, "bad-file", "  flow_file: broken-flow.yaml\n")
    proc = run_paystab("runbook", "validate", *(str(p) for p in (
        two, missing, not_python, no_flow_file, bad_inline, unknown_value, misspelt,
        bad_file)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    expected = [
        f"{two}:16: load.locustfile: flow and locustfile both say what the load sends",
        f"{missing}:7: load.locustfile: file not found: {files / 'nowhere/locustfile.py'}",
        f"{not_python}:7: load.locustfile: {files / 'flow.yaml'} is not a .py file",
        f"{no_flow_file}:7: load.flow_file: file not found: {files / 'gone.yaml'}",
        f"{bad_inline}:15: load.flow.steps[0].classify[1].outcome:",
        f"{unknown_value}:12: load.flow.steps[0].json: unknown template value '{{{{ pan }}}}'",
        f"{misspelt}:12: load.flow.steps[0].jsn: unknown field 'jsn' (did you mean 'json'?)",
        f"{files / 'broken-flow.yaml'}:8: flow.steps[0].classify[0].path:",
    ]
    for line in expected:
        assert line in out, f"{line!r} not in:\n{out}"
    assert f"(the load.flow_file of {bad_file}:7)" in out


def test_a_locustfile_that_does_not_import_stops_the_drill_before_the_target(
        files: Path, tmp_path: Path) -> None:
    (files / "broken.py").write_text("from locust import HttpUser\nthis is not python\n")
    book = _runbook(files, "broken", "  locustfile: broken.py\n")
    proc = run_paystab("drill", str(book), "--target", "http://127.0.0.1:9", "--no-live",
                       "--out", str(tmp_path / "out"))
    # exit 2 (the file), not 4 (nothing listens on port 9): checked before connecting
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{book}:7: load.locustfile: importing {files / 'broken.py'} failed" in proc.stderr


@pytest.fixture
def shop() -> Iterator[Shop]:
    server = ShopServer()
    yield server.start()
    server.stop()


@pytest.mark.slow
def test_a_runbooks_locustfile_is_drilled_through_a_stack_file(shop: Shop, files: Path,
                                                               tmp_path: Path) -> None:
    book = _runbook(files, "locust", "  locustfile: shop_locust.py\n",
                    "hypotheses:\n  - availability >= 99%\n")
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK.format(url=shop.url))
    out = tmp_path / "drill"
    run = subprocess.run(
        [sys.executable, "-m", "paystab", "drill", str(book), "--stack", str(stack), "--no-live",
         "--out", str(out)], capture_output=True, text=True, timeout=180,
        env=env_with_state(tmp_path / "state"), cwd=tmp_path)
    context = f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    assert (out / "report.json").exists(), context
    report = json.loads((out / "report.json").read_text())
    traffic = report["traffic"]
    # 10/s for 4 s, every one the locustfile's POST /api/checkout (the file's flow would 404)
    assert traffic["requests"] + traffic["dropped_arrivals"] == 40, context
    assert traffic["failed"] == 0 and len(shop.checkouts) == traffic["requests"], context
    assert any("load.locustfile" in n and "instead of its checkout.flow" in n
               for n in report["notes"]), report["notes"]
    assert report["verdict"] == "pass" and run.returncode == 0, context
