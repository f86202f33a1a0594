"""Detector options: a frozen dataclass per detector, validated by pydantic from a dict.

Each detector declares its options once, as a dataclass with defaults and types; this module
validates a plain dict (from a YAML 1.2 file through :mod:`paystab.config.yaml12`, ``paystab
detect``, watch configs, tests) against it with pydantic's ``TypeAdapter`` — the dataclass
is the model, strictly: ``"3"`` is not a number, ``true`` not 1 — and checks the bounds the
same way. Every problem of the options is found, not just the first: one
:class:`~paystab.config.problems.ConfigInvalid` holds them all, each naming its option as
``field`` (the caller places them in its file). Field names ending in ``_s`` accept
durations with a unit ("500ms", "2s"); ``false_alarm_every_h`` accepts a duration too
("24h"). Numeric fields may declare bounds in ``metadata={"lo": .., "hi": ..}``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError

from paystab.config.problems import ConfigInvalid, describe, did_you_mean
from paystab.exceptions import InvalidInput
from paystab.units import parse_duration_s

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    if tp not in _ADAPTERS:
        _ADAPTERS[tp] = TypeAdapter(tp)
    return _ADAPTERS[tp]


def build_config(cls: type[Any], options: dict[str, Any] | None) -> Any:
    """``cls`` filled from ``options`` after checking every option's name, type and range;
    all problems at once as a :class:`ConfigInvalid` (each with ``field`` = the option)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if options is not None and not isinstance(options, dict):
        raise InvalidInput(f"got {describe(options)}", expected="a mapping of options")
    raw = dict(options or {})
    hints = get_type_hints(cls)
    problems: list[InvalidInput] = []
    values: dict[str, Any] = {}
    for key, written in raw.items():
        if key not in fields:
            problems.append(InvalidInput(f"unknown option '{key}'{did_you_mean(key, fields)}",
                                         field=key, expected="one of " + ", ".join(sorted(fields))))
            continue
        try:
            value = _durations(key, written)
        except ValueError as exc:
            problems.append(InvalidInput(str(exc), field=key, expected=(
                "a duration with a unit, e.g. 500ms, 2s, 24h")))
            continue
        try:  # strictly, field by field: "3" is not a number
            _adapter(hints[key]).validate_python(value, strict=True)
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            problems.append(InvalidInput(f"cannot use {describe(written)}: {message}",
                                         field=key, expected=_type_name(hints[key])))
            continue
        bound = _out_of_bounds(fields[key], value)
        if bound is not None:
            problems.append(InvalidInput(bound[0], field=key, expected=bound[1]))
            continue
        values[key] = value
    if problems:
        raise ConfigInvalid(problems)
    return _adapter(cls).validate_python(values)


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _durations(key: str, value: Any) -> Any:
    """``"500ms"`` -> 0.5 for ``*_s`` options (hours for ``*_h``); lists become tuples.
    Raises ValueError for a duration that cannot be read."""
    if (key.endswith("_s") or key == "false_alarm_every_h") and isinstance(value, str):
        seconds = parse_duration_s(value)
        return seconds / 3600.0 if key.endswith("_h") else seconds
    return tuple(value) if isinstance(value, list) else value  # strict: a tuple is a tuple


def _out_of_bounds(field: dataclasses.Field[Any], value: Any) -> tuple[str, str] | None:
    """``(problem, expected)`` when ``value`` (or one of its items) is outside the field's
    ``lo``/``hi`` metadata, else None."""
    lo, hi = field.metadata.get("lo"), field.metadata.get("hi")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if math.isnan(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            return (f"{v:g} is out of range", f"a value in [{lo if lo is not None else '-inf'}, "
                    f"{hi if hi is not None else 'inf'}]")
    return None
