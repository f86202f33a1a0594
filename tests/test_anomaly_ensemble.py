"""The ensemble policy in YAML: which detectors run and which must agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from paystab.anomaly.base import Detection
from paystab.anomaly.ensemble import default_policy, load_policy, policy_from_text
from paystab.exceptions import InvalidInput

POLICY = """\
detectors:
  failure_rate: {false_alarm_every_h: 48h}
  hang: {gateway_timeout_s: 3s}
  latency: {}
failover:
  when:
    - [failure_rate]
    - [latency, hang]
  within_s: 5s
"""


def _det(name: str, at: float, provider: str = "acme") -> Detection:
    return Detection(provider, name, at, 1.2, f"{name} says so")


def test_policy_loads_and_rules_require_agreement(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    assert sorted(policy.detectors) == ["failure_rate", "hang", "latency"]
    assert policy.detectors["hang"].config.gateway_timeout_s == 3.0  # type: ignore[attr-defined]
    assert policy.within_s == 5.0
    assert policy.note(_det("latency", 100.0)) is None  # needs hang too
    assert policy.note(_det("hang", 110.0)) is None  # too late: latency expired
    decision = policy.note(_det("latency", 112.0))
    assert decision is not None and decision.rule == ("latency", "hang")
    assert "latency" in decision.reason and decision.detector == "latency+hang"
    assert policy.note(_det("latency", 113.0)) is None  # spent by the decision
    decision = policy.note(_det("failure_rate", 120.0, "zeta"))
    assert decision is not None and decision.provider == "zeta"


@pytest.mark.parametrize(("text", "line", "field"), [
    ("detectors:\n  nope: {}\n", 2, "detectors.nope"),
    ("detectors:\n  hang:\n    gateway_timeout_s: soon\n", 3, "detectors.hang.gateway_timeout_s"),
    ("detectors:\n  hang: {}\nfailover:\n  when:\n    - [hang]\n    - [latency]\n", 6,
     "failover.when[1][0]"),
    ("detectors:\n  hang: {colour: red}\n", 2, "detectors.hang.colour"),
    ("failover:\n  within_s: 5\n", 2, "failover.within_s"),
])
def test_errors_name_file_line_and_field(text: str, line: int, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        policy_from_text(text, "policy.yaml")
    assert info.value.source == "policy.yaml"
    assert info.value.line == line and info.value.field == field


def test_default_policy_fails_over_on_any_sequential_detector() -> None:
    policy = default_policy()
    assert policy.rules == [("failure_rate",), ("hang",), ("latency",)]
    assert policy.note(_det("hang", 1.0)) is not None
