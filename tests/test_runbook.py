"""Runbooks: the schema, its error messages (file:line, field path, expected), the bundled
drills, hypotheses on the report, and ``paystab runbook list|show|validate``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from paystab.chaos.bundled import DEFAULT_RUNBOOK, bundled_runbooks, find_runbook
from paystab.chaos.hypothesis import Hypothesis, HypothesisError
from paystab.chaos.runbook import load_runbook
from paystab.chaos.runbook_load import load_runbook_text
from paystab.config.problems import ConfigInvalid
from paystab.exceptions import InvalidInput
from tests.conftest_chaos import paystab, state

__all__ = ["state"]

GOOD = textwrap.dedent("""\
    name: my-drill
    description: one acquirer hangs
    seed: 5
    target:
      reference:
        gateway: {response_timeout_ms: 1500}
    steady_state:
      window: 5s
      probes:
        - {name: up, http: /healthz}
        - {name: avail, metric: availability, min: 0.999, tolerance: 10%, when: after}
    load:
      profile: spike
      rate: 20/s
      duration: 60s
      params: {factor: 5, start_s: 10s, hold_s: 20}
    faults:
      - name: alpha-hangs
        at: 10s
        duration: 20s
        kind: provider.hang
        target: card-alpha
        params: {ratio: 50%}
      - at: 30s
        kind: provider.latency
        target: card-bravo
        params: {added: 250ms}
    abort_when:
      - {when: availability < 0.9, window: 20s}
      - p99_ms > 3000 over 10s
    hypotheses:
      - availability >= 99.99%
      - mttr_s <= 300 and double_charges == 0
    allow: [provider:card-*]
""")


def _load(text: str) -> Any:
    return load_runbook_text(text, "drill.yaml")


def _error(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        _load(text)
    assert err.value.exit_code == 2
    return err.value


def test_a_full_runbook_loads_into_dataclasses() -> None:
    book = _load(GOOD)
    assert (book.name, book.seed, book.source) == ("my-drill", 5, "drill.yaml")
    assert book.target.reference and book.target.reference_options == {
        "gateway": {"response_timeout_ms": 1500}}
    assert book.steady_state.window_s == 5.0
    avail = book.steady_state.probes[1]
    assert (avail.metric, avail.min, avail.tolerance, avail.when) == \
        ("availability", 0.999, 0.1, ("after",))
    assert avail.within_bounds(0.9995) and not avail.within_tolerance(1.0, 0.8)
    assert (book.load.profile, book.load.rate_per_s, book.load.duration_s) == ("spike", 20, 60)
    assert book.load.params == {"factor": 5.0, "start_s": 10.0, "hold_s": 20.0}
    first, second = book.faults
    assert (first.name, first.at_s, first.duration_s, first.line) == ("alpha-hangs", 10, 20, 18)
    assert first.spec.params == {"ratio": 0.5}
    assert second.name == "fault-2" and second.duration_s is None
    assert second.clear_at_s(book.load.duration_s) == 60
    assert second.spec.params == {"added": 0.25, "jitter": 0.0}
    assert [(a.metric, a.op, a.threshold, a.window_s) for a in book.abort_when] == [
        ("availability", "<", 0.9, 20.0), ("p99_ms", ">", 3000.0, 10.0)]
    assert book.abort_when[0].triggered(0.5) and not book.abort_when[0].triggered(None)
    assert book.hypotheses[0].expr == "availability >= 99.99%"
    assert book.allow.entries == ("provider:card-*",)


@pytest.mark.parametrize(("fragment", "replacement", "line", "field", "says"), [
    ("kind: provider.hang", "kind: provider.hnag", 21, "faults[0].kind", "did you mean"),
    ("params: {ratio: 50%}", "params: {ratoi: 50%}", 23, "faults[0].params.ratoi",
     "unknown parameter"),
    ("params: {added: 250ms}", "params: {added: 250}", 27, "faults[1].params.added", "unit"),
    ("params: {ratio: 50%}", "params: {ratio: 1.5}", 23, "faults[0].params.ratio", "0..1"),
    ("  - at: 30s", "  - name: alpha-hangs\n    at: 30s", 24, "faults[1].name", "duplicate"),
    ("target: card-bravo", "target: card-zulu", 26, "faults[1].target", "unknown provider"),
    ("at: 30s", "at: 90s", 24, "faults[1].at", "after the load ends"),
    ("duration: 20s\n    kind", "duration: 55s\n    kind", 20, "faults[0].duration",
     "after the load ends"),
    ("  - mttr_s <= 300", "  - mttr <= 300", 33, "hypotheses[1]", "unknown report variable"),
    ("p99_ms > 3000 over 10s", "p99 > 3000", 30, "abort_when[1]", "unknown metric"),
    ("seed: 5", "seed: five", 3, "seed", "integer"),
    ("rate: 20/s", "rate: fast", 14, "load.rate", "rate"),
    ("factor: 5", "factr: 5", 16, "load.params.factr", "no parameter"),
    ("allow: [provider:card-*]", "allow: [provider:wallet-*]", 22, "faults[0].target",
     "blast radius"),
    ("allow: [provider:card-*]", "allow: [pid:x]", 34, "allow[0]", "a pid is a number"),
    ("description: one acquirer hangs", "descripton: x", 2, "descripton", "unknown field"),
    ("{name: up, http: /healthz}", "{name: up}", 10, "steady_state.probes[0]", "exactly one"),
])
def test_mistakes_name_file_line_field_and_expectation(
        fragment: str, replacement: str, line: int, field: str, says: str) -> None:
    assert fragment in GOOD
    err = _error(GOOD.replace(fragment, replacement, 1))
    assert (err.source, err.line, err.field) == ("drill.yaml", line, field), err.message
    assert says in err.message, err.message
    assert err.message.startswith(f"drill.yaml:{line}: {field}: ")


def test_not_yaml_empty_and_user_stacks_without_allow() -> None:
    assert "not valid YAML" in _error("name: [unclosed\n").message
    assert "empty" in _error("").message
    own = GOOD.replace("  reference:\n    gateway: {response_timeout_ms: 1500}\n",
                       "  gateway_url: http://127.0.0.1:8080\n"
                       "  providers: {card-alpha: {admin_url: http://127.0.0.1:9100},"
                       " card-bravo: {}}\n")
    assert _load(own).target.gateway_url == "http://127.0.0.1:8080"
    err = _error(own.replace("allow: [provider:card-*]\n", ""))
    assert "must say what it may touch" in err.message
    both = GOOD.replace("  reference:", "  gateway_url: http://x:1\n  reference:")
    assert "either the reference stack or your own" in _error(both).message


def test_reference_runbook_without_allow_allows_just_its_targets() -> None:
    book = _load(GOOD.replace("allow: [provider:card-*]\n", ""))
    assert book.allow.entries == ("provider:card-alpha", "provider:card-bravo")


def test_every_bundled_runbook_validates() -> None:
    bundled = bundled_runbooks()
    assert set(bundled) >= {"provider-timeout", "provider-partition", "provider-error-burst",
                            "response-lost-after-charge", "region-outage", "flash-sale",
                            "gateway-crash", "cascading-slowdown"}
    for name, path in bundled.items():
        book = load_runbook(path)
        assert book.name == name and book.hypotheses
    assert find_runbook(DEFAULT_RUNBOOK) == bundled[DEFAULT_RUNBOOK]
    with pytest.raises(InvalidInput, match="no runbook named"):
        find_runbook("nope")


REPORT: dict[str, Any] = {
    "traffic": {"requests": 10000, "approved": 9800, "declined": 199, "failed": 1,
                "availability": 0.9999, "p50_ms": 40.0, "p95_ms": 90.0, "p99_ms": 180.0},
    "faults": [{"id": "f"}], "detections": [{"provider": "card-alpha"}],
    "failovers": [{"action": "drain"}, {"action": "restore"}],
    "incidents": [{"fault_id": "f", "ttd_s": 0.4, "ttm_s": 0.6, "ttr_s": 2.5}],
    "mttr_s": 2.5, "duration_s": 60.0,
    "reconciliation": {"double_charges": 0, "lost_payments": 0, "orphans": None,
                       "voided_late_successes": 3},
}


@pytest.mark.parametrize(("expr", "observed", "ok"), [
    ("availability >= 0.9999", 0.9999, True),
    ("availability >= 99.995%", 0.9999, False),
    ("mttr_s <= 300", 2.5, True),
    ("double_charges == 0", 0, True),
    ("orphans == 0", None, None),  # no ledgers: not applicable, neither pass nor fail
    ("orphans == null", None, True),
    ("failure_rate <= 0.0001", 0.0001, True),
    ("drains >= 1", 1, True),
    ("max_ttd_s <= 0.3", 0.4, False),
    ("traffic.p99_ms < 500", 180.0, True),
    ("detections == 0", 1, False),
])
def test_hypotheses_evaluate_on_the_report(expr: str, observed: Any, ok: bool) -> None:
    result = Hypothesis.parse(expr).evaluate(REPORT)
    assert (result.observed, result.ok) == (observed, ok)
    status = "not_applicable" if ok is None else ("pass" if ok else "fail")
    expected = "not applicable: the target has no ledgers to reconcile" if ok is None else ""
    assert result.to_json() == {"expr": expr, "observed": observed, "ok": ok, "status": status,
                                "expected": expected}


def test_unmeasured_value_of_our_own_fails() -> None:
    report = {**REPORT, "mttr_s": None}
    assert Hypothesis.parse("mttr_s <= 5").evaluate(report).ok is False


def test_hypotheses_are_parsed_not_evaluated() -> None:
    for bad in ("__import__('os').system('x') == 0", "availability >= ", "availability",
                "availability >= 1 or mttr_s < 2", "1 <= availability", "availability < true",
                "availability >= 0.9; rm"):
        with pytest.raises(HypothesisError):
            Hypothesis.parse(bad)
    both = Hypothesis.parse("availability >= 0.99 and mttr_s <= 1").evaluate(REPORT)
    assert both.ok is False and both.observed == {"availability": 0.9999, "mttr_s": 2.5}


@pytest.mark.slow
def test_runbook_cli(state: Path, tmp_path: Path) -> None:
    listed = paystab("runbook", "list", "--json", state=state)
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert {r["name"] for r in rows} >= {"provider-timeout", "flash-sale"}
    assert all(r["valid"] for r in rows)
    assert "(default)" in paystab("runbook", "list", state=state).stdout
    shown = paystab("runbook", "show", "provider-timeout", state=state)
    assert shown.returncode == 0 and "provider.hang on card-alpha" in shown.stdout
    raw = paystab("runbook", "show", "provider-timeout", "--raw", state=state).stdout
    assert raw.startswith("# The default drill")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("kind: provider.hang", "kind: provider.hnag"))
    ok = paystab("runbook", "validate", str(good), "flash-sale", state=state)
    assert ok.returncode == 0 and ok.stdout.count("ok ") == 2
    mixed = paystab("runbook", "validate", str(good), str(bad), state=state)
    assert mixed.returncode == 2
    assert f"{bad}:21: faults[0].kind: unknown fault kind 'provider.hnag'" in mixed.stderr
    assert paystab("runbook", "show", "nope", state=state).returncode == 2


def test_every_problem_of_a_runbook_is_reported_at_once() -> None:
    text = (GOOD.replace("seed: 5", "seed: five").replace("rate: 20/s", "rate: fast")
            .replace("profile: spike", "profile: spkie")
            .replace("kind: provider.hang", "kind: provider.hnag")
            .replace("  - mttr_s <= 300", "  - mtr_s <= 300")
            .replace("description: one acquirer hangs", "descripton: one acquirer hangs"))
    err = _error(text)
    assert isinstance(err, ConfigInvalid)
    got = [(p.line, p.field) for p in err.problems]
    assert got == [(2, "descripton"), (3, "seed"), (13, "load.profile"), (14, "load.rate"),
                   (21, "faults[0].kind"), (33, "hypotheses[1]")], err.message
    assert "did you mean 'description'?" in err.message  # and no "missing description"
    assert "did you mean 'spike'?" in err.message and "did you mean 'provider.hang'?" in err.message
    assert "missing" not in err.message
    assert err.message.startswith("drill.yaml:2: descripton: unknown field")
    # a fault that does not validate still has its kind checked
    err = _error(GOOD.replace("kind: provider.hang", "kind: provider.hnag")
                 .replace("at: 10s", "at: 10"))
    assert isinstance(err, ConfigInvalid)
    assert [(p.line, p.field) for p in err.problems] == [(19, "faults[0].at"),
                                                         (21, "faults[0].kind")], err.message


def test_yaml12_scalars_in_runbooks() -> None:
    book = _load(GOOD.replace("  - name: alpha-hangs\n", "  - name: NO\n"))
    assert book.faults[0].name == "NO"  # YAML 1.1 would make it False
    err = _error(GOOD.replace("duration: 60s", "duration: 1:30"))
    assert (err.line, err.field) == (15, "load.duration") and "'1:30'" in err.message
