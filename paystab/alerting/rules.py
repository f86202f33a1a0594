"""Prometheus rule files as dataclasses: recording rules, alerting rules, groups, YAML out.

The generators in :mod:`.recording` and :mod:`.alerts` build these; :func:`dump_yaml` turns
them into the exact text committed under ``dashboards/prometheus/`` (deterministic key
order, multi-line PromQL as literal blocks so a diff of the committed file reads like a diff
of the query).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from paystab.alerting.spec import AlertingConfig

SEVERITIES = ("page", "ticket", "warning")


@dataclass(frozen=True)
class RecordingRule:
    """``record: NAME`` = ``expr``, named level:metric:operations as Prometheus advises."""

    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"record": self.record, "expr": self.expr}
        if self.labels:
            out["labels"] = dict(self.labels)
        return out


@dataclass(frozen=True)
class AlertRule:
    """One alert with what on-call needs: severity, summary, description, runbook link.

    ``summary`` and ``description`` are Prometheus templates; they may use
    ``{{ $labels.NAME }}``, ``{{ $value | humanizePercentage }}``, ``{{ $value | humanize }}``
    and ``{{ $value | printf "%.1f" }}`` only, because :mod:`.promtests` renders the expected
    annotations of its unit tests itself (promtool compares them exactly).
    """

    alert: str
    expr: str
    severity: str
    summary: str
    description: str
    runbook: str  # slug: runbooks/alerts/<runbook>.md
    for_: str = "0s"
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.alert}: severity {self.severity!r} not in {SEVERITIES}")

    def all_labels(self, config: AlertingConfig) -> dict[str, str]:
        return {"severity": self.severity, **config.extra_labels, **self.labels}

    def annotations(self, config: AlertingConfig) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": config.runbook_url(self.runbook),
        }

    def to_dict(self, config: AlertingConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_ not in ("0s", "0"):
            out["for"] = self.for_
        out["labels"] = self.all_labels(config)
        out["annotations"] = self.annotations(config)
        return out


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[RecordingRule | AlertRule, ...]
    interval: str | None = None

    def to_dict(self, config: AlertingConfig) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.interval:
            out["interval"] = self.interval
        out["rules"] = [
            r.to_dict(config) if isinstance(r, AlertRule) else r.to_dict() for r in self.rules
        ]
        return out


def rule_file(groups: list[RuleGroup], config: AlertingConfig) -> dict[str, Any]:
    return {"groups": [g.to_dict(config) for g in groups]}


class _Dumper(yaml.SafeDumper):
    """Block style everywhere; strings with newlines as ``|`` literals."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any, header: str = "") -> str:
    """Deterministic YAML text; ``header`` becomes leading ``#`` comment lines."""
    body = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1_000_000,
        allow_unicode=True,
    )
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body
