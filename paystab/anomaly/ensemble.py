"""Ensemble policy: which detectors run, and which must agree before traffic moves.

Configured in YAML 1.2, read into a typed model by :mod:`paystab.anomaly.ensemble_config`
(errors name file:line:field, every problem at once)::

    detectors:                      # name -> options (see each detector's config class)
      failure_rate: {false_alarm_every_h: 24h}
      hang: {gateway_timeout_s: 2s}
      latency: {}
      ecod: {baseline_samples: 300}
    failover:
      when:                         # any rule; a rule = detectors that must all agree
        - [failure_rate]
        - [hang]
        - [latency, ecod]
      within_s: 10s                 # how recent a detection must be to count

:meth:`EnsemblePolicy.feed` runs every detector on a sample and answers the detections plus,
when a rule is satisfied for that provider, a :class:`Decision` to fail over. A detection
counts once: after a decision, the detections that made it are spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paystab.anomaly import base
from paystab.anomaly.base import Detection, Detector
from paystab.collector.series import Sample
from paystab.exceptions import InvalidInput

DEFAULT_RULES: tuple[tuple[str, ...], ...] = (("failure_rate",), ("hang",), ("latency",))


@dataclass(frozen=True)
class Decision:
    """Fail ``provider`` over: rule ``rule`` is satisfied by ``detections``."""

    provider: str
    at: float
    rule: tuple[str, ...]
    detections: tuple[Detection, ...]

    @property
    def detector(self) -> str:
        return "+".join(self.rule)

    @property
    def reason(self) -> str:
        return "; ".join(f"{d.detector}: {d.reason}" for d in self.detections)


@dataclass
class EnsemblePolicy:
    detectors: dict[str, Detector]
    rules: list[tuple[str, ...]]
    within_s: float = 10.0
    _recent: dict[str, dict[str, Detection]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rule in self.rules:
            for name in rule:
                if name not in self.detectors and name != "alertmanager":
                    raise InvalidInput(f"rule names detector '{name}' that is not configured",
                                       field="failover.when",
                                       expected="one of " + ", ".join(sorted(self.detectors)))

    def feed(self, sample: Sample) -> tuple[list[Detection], Decision | None]:
        found = []
        for detector in self.detectors.values():
            detection = detector.update(sample)
            if detection is not None:
                found.append(detection)
        decision = None
        for detection in found:
            decision = self.note(detection) or decision
        return found, decision

    def note(self, detection: Detection) -> Decision | None:
        """Record a detection (from a detector or from outside) and apply the rules."""
        recent = self._recent.setdefault(detection.provider, {})
        recent[detection.detector] = detection
        now = detection.at
        for name in list(recent):
            if now - recent[name].at > self.within_s:
                del recent[name]
        for rule in self.rules:
            if all(name in recent for name in rule):
                spent = tuple(recent.pop(name) for name in rule)
                return Decision(detection.provider, now, rule, spent)
        return None

    def reset(self, provider: str | None = None) -> None:
        for detector in self.detectors.values():
            detector.reset(provider)
        if provider is None:
            self._recent.clear()
        else:
            self._recent.pop(provider, None)


def default_policy() -> EnsemblePolicy:
    detectors = {name: base.create(name) for name in ("failure_rate", "hang", "latency")}
    return EnsemblePolicy(detectors, [tuple(r) for r in DEFAULT_RULES])


def load_policy(path: str | Path) -> EnsemblePolicy:
    """Read an ensemble policy file (see the module docstring for the format)."""
    from paystab.anomaly.ensemble_config import load_policy as load

    return load(path)


def policy_from_text(text: str, source: str = "<policy>") -> EnsemblePolicy:
    from paystab.anomaly.ensemble_config import policy_from_text as parse

    return parse(text, source)


def rules_text(rules: Sequence[tuple[str, ...]]) -> str:
    return " | ".join(" & ".join(rule) for rule in rules)
