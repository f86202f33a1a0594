"""Field types shared by the config models: durations and rates with units, shares.

Each is an ``Annotated`` float that reads the written form (``500ms``, ``100/s``, ``50%``)
into a plain number and carries its own JSON Schema, so an editor shows the same grammar
the loader accepts. :class:`Strict` is the base of every model: unknown keys are errors
(with did-you-mean, see :mod:`.problems`) and no value is coerced across types (``"5"``
is not a number, ``yes`` is not a boolean).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from paystab.config.problems import did_you_mean
from paystab.units import parse_duration_s, parse_rate

DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(us|µs|ms|s|m|h|d)\s*)+$"
RATE_PATTERN = r"^\s*\d+(\.\d+)?\s*(/\s*(s|m|h))?\s*$"
PERCENT_PATTERN = r"^\s*\d+(\.\d+)?\s*%\s*$"


class Strict(BaseModel):
    """Base of every config model: frozen, unknown keys rejected, no type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _duration(value: Any) -> float:
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (expected a duration with a unit, e.g. 500ms, 30s, 2m)") \
            from None


def _rate(value: Any) -> float:
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (expected a rate such as 100/s or 6000/m)") from None


def _share(value: Any) -> Any:
    """``50%`` -> 0.5; a plain number stays as written (range checked by the field)."""
    if isinstance(value, str) and re.fullmatch(PERCENT_PATTERN, value):
        return float(value.strip().rstrip("%")) / 100.0
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


Duration = Annotated[
    float, BeforeValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN,
                    "description": "a duration with its unit: 500ms, 30s, 2m, 1h30m"}),
]
Rate = Annotated[
    float, BeforeValidator(_rate),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": RATE_PATTERN}],
                    "description": "events per second: 100, 100/s, 6000/m"}),
]
Share = Annotated[
    float, BeforeValidator(_share),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string", "pattern": PERCENT_PATTERN}],
                    "description": "a fraction (0.5) or a percentage (50%)"}),
]


def one_of(choices: Iterable[str], what: str = "value") -> Callable[[str], str]:
    """An ``AfterValidator`` body: the value must be one of ``choices`` (did-you-mean)."""
    allowed = tuple(choices)

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} '{value}'{did_you_mean(value, allowed)} "
                             f"(expected one of {', '.join(sorted(allowed))})")
        return value
    return check

