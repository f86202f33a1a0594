"""The ensemble policy file: which detectors run and which must agree, as a typed model.

The format (see :mod:`paystab.anomaly.ensemble`)::

    detectors:                      # name -> options (each detector's options dataclass)
      failure_rate: {false_alarm_every_h: 24h}
      hang: {gateway_timeout_s: 2s}
    failover:
      when: [[failure_rate], [hang]]  # any rule; a rule = detectors that must all agree
      within_s: 10s

The file is YAML 1.2 (:mod:`paystab.config.yaml12`: ``NO`` and ``1:30`` stay strings),
validated by :class:`EnsembleConfigModel` (shipped as ``ensemble.schema.json``); what the
model cannot check alone — detector names against the registry, each detector's options,
rules naming detectors that are not configured — is added to the same list, so every
problem of the file comes out at once as ``FILE:LINE: field: problem (expected …)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, get_type_hints

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from paystab.anomaly.ensemble import DEFAULT_RULES, EnsemblePolicy
from paystab.config.problems import Problems, did_you_mean
from paystab.config.types import DURATION_PATTERN, Duration, Strict
from paystab.config.yaml12 import Loc, load_file_with_lines, load_with_lines
from paystab.exceptions import InvalidInput

DEFAULT_DETECTORS = tuple(rule[0] for rule in DEFAULT_RULES)
EXTERNAL_DETECTORS = ("alertmanager",)  # detections that arrive from outside (webhook)

Rule = Annotated[list[str], Field(min_length=1, description="detectors that must all agree")]


class FailoverModel(Strict):
    """When traffic moves: any rule whose detectors all fired within ``within_s``."""

    when: list[Rule] | None = Field(
        default=None, description="rules; default: one rule per sequential detector")
    within_s: Duration = Field(default=10.0, ge=0,
                               description="how recent a detection must be to count")


def _detector_schemas(schema: dict[str, Any]) -> None:
    """Each registered detector's options in the schema: an editor completes them."""
    from paystab.anomaly import base

    detectors: dict[str, Any] = {}
    for name in base.names():
        cls = base.config_class(name)
        hints = get_type_hints(cls)
        properties = {f.name: _option_schema(f.name, hints[f.name], f)
                      for f in dataclasses.fields(cls)}
        detectors[name] = {"anyOf": [{"type": "object", "properties": properties,
                                      "additionalProperties": False}, {"type": "null"}]}
    schema["properties"]["detectors"] = {
        "anyOf": [{"type": "object", "properties": detectors, "additionalProperties": False},
                  {"type": "null"}],
        "default": None,
        "description": "detector name -> its options; default: "
                       + ", ".join(DEFAULT_DETECTORS),
    }


def _option_schema(name: str, hint: Any, field: dataclasses.Field[Any]) -> dict[str, Any]:
    number = TypeAdapter(hint).json_schema()
    if name.endswith("_s") or name == "false_alarm_every_h":
        unit = "hours" if name.endswith("_h") else "seconds"
        number = {"anyOf": [number, {"type": "string", "pattern": DURATION_PATTERN}],
                  "description": f"{unit}, or a duration with its unit (500ms, 2s, 24h)"}
    for key, bound in (("minimum", field.metadata.get("lo")),
                       ("maximum", field.metadata.get("hi"))):
        if bound is not None and number.get("type") in ("number", "integer"):
            number[key] = bound
    default = field.default
    if isinstance(default, int | float | str | bool):
        number["default"] = default
    elif isinstance(default, tuple):
        number["default"] = list(default)
    return number


class EnsembleConfigModel(Strict):
    """The ensemble policy: detectors with their options, and the failover rules."""

    model_config = ConfigDict(json_schema_extra=_detector_schemas)

    detectors: dict[str, dict[str, Any] | None] | None = None
    failover: FailoverModel | None = None


def load_policy(path: str | Path) -> EnsemblePolicy:
    """Read an ensemble policy file into an :class:`EnsemblePolicy` (every problem at once,
    exit 2)."""
    value, lines = load_file_with_lines(path)
    return policy_from_value(value, lines, str(path))


def policy_from_text(text: str, source: str = "<policy>") -> EnsemblePolicy:
    value, lines = load_with_lines(text, source)
    return policy_from_value(value, lines, source)


def policy_from_value(value: Any, lines: dict[Loc, int], source: str) -> EnsemblePolicy:
    """Validate a parsed policy file and build its policy; every problem at once."""
    from paystab.anomaly import base

    problems = Problems(source, lines)
    model: EnsembleConfigModel | None = None
    try:
        model = EnsembleConfigModel.model_validate(value)
    except ValidationError as exc:
        problems.add_validation(exc, EnsembleConfigModel)
    raw = value.get("detectors") if isinstance(value, dict) else None
    chosen = raw if isinstance(raw, dict) else ({} if raw is not None else
                                                dict.fromkeys(DEFAULT_DETECTORS))
    detectors = {}
    known = base.names()
    for name, options in chosen.items():
        if name not in known:
            problems.add(("detectors", name), f"unknown detector '{name}'"
                         f"{did_you_mean(name, known)}", "one of " + ", ".join(known))
            continue
        if options is not None and not isinstance(options, dict):
            continue  # the model said so
        try:
            detectors[name] = base.create(name, options)
        except InvalidInput as exc:
            for problem in getattr(exc, "problems", [exc]):
                where: Loc = ("detectors", name, *([problem.field] if problem.field else []))
                problems.add(where, problem.problem, problem.expected)
    failover = value.get("failover") if isinstance(value, dict) else None
    when = failover.get("when") if isinstance(failover, dict) else None
    configured = sorted(n for n in chosen if n in known) + list(EXTERNAL_DETECTORS)
    for i, rule in enumerate(when if isinstance(when, list) else []):
        for j, name in enumerate(rule if isinstance(rule, list) else []):
            if isinstance(name, str) and name not in configured:
                problems.add(("failover", "when", i, j), f"detector '{name}' is not configured"
                             f"{did_you_mean(name, configured)}", "one of " + ", ".join(configured))
    problems.raise_if_any()
    assert model is not None
    rules = [tuple(rule) for rule in (model.failover.when if model.failover else None) or []]
    if not rules:
        rules = [r for r in (tuple(x) for x in DEFAULT_RULES) if r[0] in detectors]
        rules = rules or [(name,) for name in detectors]
    within_s = model.failover.within_s if model.failover else 10.0
    return EnsemblePolicy(detectors, rules, within_s)
