"""Detector options: a frozen dataclass per detector, validated by pydantic from YAML or a dict.

Each detector declares its options once, as a dataclass with defaults and types; this module
validates a YAML node (errors name file:line and field, through ``yamlsrc``) or a plain dict
(``paystab detect``, watch configs, tests) against it with pydantic's ``TypeAdapter`` — the
dataclass is the model, strictly: ``"3"`` is not a number, ``true`` not 1 — and checks the
bounds the same way. Field names ending in ``_s``
accept durations with a unit ("500ms", "2s"); ``false_alarm_every_h`` accepts a duration
too ("24h"). Numeric fields may declare bounds in ``metadata={"lo": .., "hi": ..}``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError

from paystab.config.problems import describe, did_you_mean
from paystab.exceptions import InvalidInput
from paystab.units import parse_duration_s
from paystab.yamlsrc import Node

ErrorAt = Callable[[str, str | None], InvalidInput]


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    if tp not in _ADAPTERS:
        _ADAPTERS[tp] = TypeAdapter(tp)
    return _ADAPTERS[tp]


def build_config(cls: type[Any], options: dict[str, Any] | Node | None) -> Any:
    """``cls`` filled from ``options`` after checking every option's name, type and range."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    raw: dict[str, Any]
    if isinstance(options, Node):
        if options.value is None:
            return cls()
        children = dict(options.items())
        raw = {key: child.value for key, child in children.items()}

        def error_at(key: str) -> ErrorAt:
            return children[key].error if key in children else options.error
    else:
        raw = dict(options or {})

        def error_at(key: str) -> ErrorAt:
            def make(problem: str, expected: str | None = None) -> InvalidInput:
                return InvalidInput(problem, field=key, expected=expected)
            return make
    for key in raw:
        if key not in fields:
            raise error_at(key)(f"unknown option '{key}'{did_you_mean(key, fields)}",
                                "one of " + ", ".join(sorted(fields)))
    values = {key: _durations(key, value, error_at(key)) for key, value in raw.items()}
    hints = get_type_hints(cls)
    for key, value in values.items():  # strictly, field by field: "3" is not a number
        try:
            _adapter(hints[key]).validate_python(value, strict=True)
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise error_at(key)(f"cannot use {describe(raw[key])}: {message}",
                                _type_name(hints[key])) from None
    config = _adapter(cls).validate_python(values)
    for key in raw:
        _check_bounds(fields[key], getattr(config, key), error_at(key))
    return config


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _durations(key: str, value: Any, error: ErrorAt) -> Any:
    """``"500ms"`` -> 0.5 for ``*_s`` options (hours for ``*_h``); lists become tuples."""
    if (key.endswith("_s") or key == "false_alarm_every_h") and isinstance(value, str):
        try:
            seconds = parse_duration_s(value)
        except ValueError as exc:
            raise error(str(exc), "a duration with a unit, e.g. 500ms, 2s, 24h") from None
        return seconds / 3600.0 if key.endswith("_h") else seconds
    return tuple(value) if isinstance(value, list) else value  # strict: a tuple is a tuple


def _check_bounds(field: dataclasses.Field[Any], value: Any, error: ErrorAt) -> None:
    lo, hi = field.metadata.get("lo"), field.metadata.get("hi")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if math.isnan(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            expected = f"a value in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise error(f"{v:g} is out of range", expected)
