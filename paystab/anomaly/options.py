"""Detector options: a frozen dataclass per detector, filled from YAML or from a dict.

Each detector declares its options once, as a dataclass with defaults and types; this module
reads them from a YAML node (errors name file:line and field, through ``yamlsrc``) or from a
plain dict (``paystab detect``, tests), and checks them the same way. Field names ending in
``_s`` accept durations with a unit ("500ms", "2s") in YAML; ``false_alarm_every_h`` accepts
a duration too ("24h"). Float fields may declare bounds in ``metadata={"lo": .., "hi": ..}``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, get_type_hints

from paystab.exceptions import InvalidInput
from paystab.units import parse_duration_s
from paystab.yamlsrc import Node


def build_config(cls: type[Any], options: dict[str, Any] | Node | None) -> Any:
    """``cls(**options)`` after checking every option's name, type and range."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if isinstance(options, Node):
        if options.value is None:
            return cls()
        options.only_keys(set(fields))
        for key, child in options.items():
            values[key] = _from_node(key, hints[key], child)
            _check_bounds(fields[key], values[key], child.error)
        return cls(**values)
    for key, raw in (options or {}).items():
        if key not in fields:
            raise InvalidInput(
                f"unknown option '{key}'", field=key, expected="one of " + ", ".join(sorted(fields))
            )
        values[key] = _from_value(key, hints[key], raw)

        def err(problem: str, expected: str | None = None, key: str = key) -> InvalidInput:
            return InvalidInput(problem, field=key, expected=expected)

        _check_bounds(fields[key], values[key], err)
    return cls(**values)


def _is_duration(key: str) -> bool:
    return key.endswith("_s") or key == "false_alarm_every_h"


def _from_node(key: str, hint: Any, node: Node) -> Any:
    text = str(hint)
    if _is_duration(key) and isinstance(node.value, str):
        seconds = node.as_duration_s()
        return seconds / 3600.0 if key.endswith("_h") else seconds
    if "tuple" in text:
        if "str" in text:
            return tuple(e.as_str() for e in node.elements())
        return tuple(e.as_float() for e in node.elements())
    if text.startswith("float") or "float" in text:
        if node.value is None and "None" in text:
            return None
        return node.as_float()
    if "int" in text:
        return node.as_int()
    if "bool" in text:
        return node.as_bool()
    return node.as_str()


def _from_value(key: str, hint: Any, raw: Any) -> Any:
    text = str(hint)
    try:
        if _is_duration(key) and isinstance(raw, str):
            seconds = parse_duration_s(raw)
            return seconds / 3600.0 if key.endswith("_h") else seconds
        if "tuple" in text:
            if "str" in text:
                return tuple(str(x) for x in raw)
            return tuple(float(x) for x in raw)
        if "float" in text:
            return None if raw is None and "None" in text else float(raw)
        if "int" in text:
            return int(raw)
        if "bool" in text:
            if not isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not true/false")
            return raw
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"cannot use {raw!r}: {exc}", field=key, expected=text) from None


def _check_bounds(field: dataclasses.Field[Any], value: Any, error: Any) -> None:
    lo, hi = field.metadata.get("lo"), field.metadata.get("hi")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool):
            continue
        if math.isnan(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            expected = f"a value in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise error(f"{v:g} is out of range", expected)
