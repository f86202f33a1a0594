"""What a drill reads through a stack file, without starting anything: the simulators'
config, the watch config built from telemetry/failover, the blast radius, and which
hypotheses become "not applicable" when the file does not give their data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from paystab.chaos.base import Fault, FaultContext, FaultSpec
from paystab.chaos.hypothesis import Hypothesis
from paystab.drill.stack_target import StackTarget, not_applicable
from paystab.exceptions import InvalidInput
from paystab.report.model import HypothesisResult
from paystab.stack.config import load_stack_config
from paystab.stackfile import LoadedStack, parse_stack

BASE = """\
version: 1
name: shop
checkout: {base_url: "http://127.0.0.1:8080"}
simulators:
  - {name: psp-one, dialect: stripe, methods: [card], latency_median: 30ms}
  - {name: psp-two, dialect: paypay, methods: [wallet]}
"""
TELEMETRY = """\
telemetry:
  interval_s: 200ms
  sources: [{kind: metrics_url, url: "http://127.0.0.1:8080/metrics"}]
"""
FAILOVER = """\
failover:
  cooldown_s: 3s
  actuators: [{kind: webhook, url: "http://127.0.0.1:8080/psp/{provider}"}]
"""
LEDGERS = """\
ledgers:
  merchant: {kind: csv, path: orders.csv}
  psp: [{kind: simulators}]
"""


def target(tmp_path: Path, text: str) -> StackTarget:
    spec = parse_stack(text, "stack.yaml", tmp_path, environ={})
    return StackTarget(LoadedStack(spec, tmp_path / "stack.yaml"), tmp_path / "out", seed=7)


def test_the_simulators_run_are_exactly_the_files(tmp_path: Path) -> None:
    config = target(tmp_path, BASE)._simulators_config()
    path = tmp_path / "simulators.yaml"
    path.write_text(yaml.safe_dump(config))
    settings = load_stack_config(path)  # what `paystab provider all --config` reads
    assert [(p.name, p.dialect, p.methods) for p in settings.providers] == [
        ("psp-one", "stripe", ("card",)), ("psp-two", "paypay", ("wallet",))]
    assert settings.providers[0].latency.median_ms == pytest.approx(30.0)
    assert "visa" in settings.providers[0].card_brands
    assert settings.seed == 7


def test_telemetry_and_failover_become_the_watch_config(tmp_path: Path) -> None:
    config = target(tmp_path, BASE + TELEMETRY + FAILOVER).watch_config()
    assert config.interval_s == pytest.approx(0.2)
    assert [p.name for p in config.providers] == ["psp-one", "psp-two"]
    assert config.failover.cooldown_s == pytest.approx(3.0)
    assert [a.kind for a in config.actuators] == ["webhook"]
    assert not config.dry_run
    assert config.admin.listen == "127.0.0.1:0"  # never a fixed port
    detect_only = target(tmp_path, BASE + TELEMETRY).watch_config()
    assert detect_only.dry_run and detect_only.actuators == []
    assert target(tmp_path, BASE).watch_config() is None


def test_no_telemetry_means_a_detection_that_never_acts(tmp_path: Path) -> None:
    detection = target(tmp_path, BASE).detection(lambda event: None)
    assert detection.source.poll(0.0) == []
    assert detection.describe.startswith("none:")


@pytest.mark.parametrize(("extra", "absent", "present"), [
    ("", {"detections", "max_ttd_s", "drains", "false_failovers", "double_charges"}, set()),
    (TELEMETRY, {"drains", "max_ttm_s", "false_failovers", "orphans"}, {"detections"}),
    (TELEMETRY + FAILOVER, {"lost_payments"}, {"drains", "detections"}),
    (TELEMETRY + FAILOVER + LEDGERS, set(), {"drains", "double_charges", "orphans"}),
])
def test_what_the_file_does_not_give_is_not_provided(tmp_path: Path, extra: str,
                                                     absent: set[str], present: set[str]) -> None:
    missing = target(tmp_path, BASE + extra).not_provided()
    assert absent <= set(missing) and not present & set(missing)
    assert not {"availability", "p95_ms", "mttr_s"} & set(missing)


def test_hypotheses_on_missing_data_are_not_applicable_never_failed() -> None:
    hypotheses = [Hypothesis.parse("drains >= 1"), Hypothesis.parse("availability >= 0.99"),
                  Hypothesis.parse("orphans == 0 and drains >= 1")]
    results = [HypothesisResult("drains >= 1", 0, False), HypothesisResult("availability", 1, True),
               HypothesisResult("orphans == 0 and drains >= 1", None, False)]
    out = not_applicable(results, hypotheses, {"drains": "no failover actuator"})
    assert [r.ok for r in out] == [None, True, None]
    assert [r.status for r in out] == ["not_applicable", "pass", "not_applicable"]
    assert "no failover actuator" in out[0].expected


class _Touches(Fault):
    """A fault that only says what it touches (its target)."""

    kind = "test.touch"

    @classmethod
    def check_target(cls, target: str) -> str:
        return target

    @classmethod
    def resolve(cls, spec: FaultSpec, ctx: FaultContext) -> dict[str, Any]:
        return {}

    def inject(self) -> None:
        raise AssertionError("never injected")

    def clear(self) -> None:
        pass


def _fault(target: str) -> Fault:
    return _Touches("f", FaultSpec("f", "test.touch", target), {})


def test_faults_stay_within_the_simulators_and_faults_allow(tmp_path: Path) -> None:
    stack = target(tmp_path, BASE + "faults: {allow: ['127.0.0.1:5432']}\n")
    stack.check_blast_radius([_fault("provider:psp-one"), _fault("127.0.0.1:5432")])
    with pytest.raises(InvalidInput) as info:
        stack.check_blast_radius([_fault("provider:psp-one"), _fault("127.0.0.1:6379")])
    assert "outside the blast radius" in info.value.message
    assert "faults.allow" in info.value.message and "127.0.0.1:6379" in info.value.message


def test_the_health_probe_asks_the_services_own_health_url(tmp_path: Path) -> None:
    from paystab.chaos.runbook import Probe

    probes = [Probe("gateway answers", http="/healthz"), Probe("orders", http="/api/orders"),
              Probe("availability", metric="availability", min=0.999)]
    assert target(tmp_path, BASE).probes(probes) == probes  # no service: as the runbook says
    service = "service: {command: [app], health: 'http://127.0.0.1:8080/status/ready'}\n"
    mapped = target(tmp_path, BASE + service).probes(probes)
    assert [p.http for p in mapped] == ["http://127.0.0.1:8080/status/ready", "/api/orders", None]
