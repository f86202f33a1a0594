"""Fault parameters: names, units, ranges, checked once when a fault is described.

A fault's parameters arrive from a runbook (typed YAML values with a line number) or from
``--param k=v`` on the command line (strings). Each fault kind declares its parameters as a
tuple of :class:`Param`; :func:`parse_params` checks names and values the same way for both
sources and returns plain values in base units (durations in seconds, ratios in 0..1), so a
backend never parses anything. A bare number where a duration is expected is refused: in a
fault schedule "latency: 500" is ambiguous, "latency: 500ms" is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from paystab.exceptions import InvalidInput
from paystab.units import format_duration, parse_duration_s

ParamType = Literal["duration", "ratio", "int", "enum", "str", "bool"]

_REQUIRED: Any = object()  # sentinel: the parameter has no default

# Make an InvalidInput for one parameter (None = the params mapping as a whole).
ErrorFactory = Callable[[str | None, str, str | None], InvalidInput]


class ParamError(ValueError):
    """A value that does not fit its parameter; the caller adds file, line and field."""

    def __init__(self, problem: str, expected: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected


@dataclass(frozen=True)
class Param:
    """One parameter of a fault kind: its type, unit, bounds and default."""

    name: str
    type: ParamType
    help: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def expected(self) -> str:
        if self.type == "duration":
            return "a duration with a unit such as 500ms or 2s" + self._bounds("s")
        if self.type == "ratio":
            return "a ratio between 0 and 1 such as 0.25 or 25%"
        if self.type == "int":
            return "an integer" + self._bounds("")
        if self.type == "enum":
            return "one of " + ", ".join(self.choices)
        if self.type == "bool":
            return "true or false"
        return "a non-empty string"

    def _bounds(self, unit: str) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f">= {self.lo:g}{unit}")
        if self.hi is not None:
            parts.append(f"<= {self.hi:g}{unit}")
        return ", " + " and ".join(parts) if parts else ""

    def parse(self, raw: object) -> Any:
        """Turn a YAML value or a command-line string into the value in base units."""
        if self.type == "duration":
            try:
                value: Any = parse_duration_s(raw)
            except ValueError as exc:
                raise ParamError(str(exc), self.expected()) from None
            self._check_range(value, "s")
            return value
        if self.type == "ratio":
            return self._parse_ratio(raw)
        if self.type == "int":
            value = self._parse_int(raw)
            self._check_range(value, "")
            return value
        if self.type == "enum":
            text = str(raw).strip() if isinstance(raw, str | int) else None
            if text not in self.choices:
                raise ParamError(f"unknown value {raw!r}", self.expected())
            return text
        if self.type == "bool":
            return self._parse_bool(raw)
        if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).strip():
            raise ParamError(f"got {raw!r}", self.expected())
        return str(raw).strip()

    def format(self, value: Any) -> str:
        """The value as a user would write it (``0.5`` seconds → ``500ms``)."""
        if self.type == "duration":
            return format_duration(float(value)) if value else "0s"
        return str(value)

    def _check_range(self, value: float, unit: str) -> None:
        if self.lo is not None and value < self.lo:
            raise ParamError(f"{value:g}{unit} is too small", self.expected())
        if self.hi is not None and value > self.hi:
            raise ParamError(f"{value:g}{unit} is too large", self.expected())

    def _parse_ratio(self, raw: object) -> float:
        if isinstance(raw, bool):
            raise ParamError(f"got {raw!r}", self.expected())
        if isinstance(raw, int | float):
            value = float(raw)
        elif isinstance(raw, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*%\s*", raw):
            value = float(raw.strip().rstrip("%")) / 100.0
        elif isinstance(raw, str) and re.fullmatch(r"\s*\d*\.?\d+(e-?\d+)?\s*", raw):
            value = float(raw)
        else:
            raise ParamError(f"cannot read {raw!r} as a ratio", self.expected())
        if not 0.0 <= value <= 1.0:
            raise ParamError(f"{value:g} is outside 0..1", self.expected())
        return value

    def _parse_int(self, raw: object) -> int:
        if isinstance(raw, bool):
            raise ParamError(f"got {raw!r}", self.expected())
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
            return int(raw)
        raise ParamError(f"cannot read {raw!r} as an integer", self.expected())

    def _parse_bool(self, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"true", "yes", "on", "1"}:
            return True
        if text in {"false", "no", "off", "0"}:
            return False
        raise ParamError(f"cannot read {raw!r} as a boolean", self.expected())


# -- constructors that read well in a fault class ------------------------------------------
def duration(name: str, help: str, default: Any = _REQUIRED, lo: float = 0.0,
             hi: float | None = None) -> Param:
    return Param(name, "duration", help, default=default, lo=lo, hi=hi)


def ratio(name: str, help: str, default: Any = _REQUIRED) -> Param:
    return Param(name, "ratio", help, default=default)


def integer(name: str, help: str, default: Any = _REQUIRED, lo: float | None = None,
            hi: float | None = None) -> Param:
    return Param(name, "int", help, default=default, lo=lo, hi=hi)


def choice(name: str, help: str, choices: tuple[str, ...], default: Any = _REQUIRED) -> Param:
    return Param(name, "enum", help, default=default, choices=choices)


def text(name: str, help: str, default: Any = _REQUIRED) -> Param:
    return Param(name, "str", help, default=default)


def flag(name: str, help: str, default: Any = _REQUIRED) -> Param:
    return Param(name, "bool", help, default=default)


def parse_params(
    kind: str, spec: tuple[Param, ...], raw: Mapping[str, object], error: ErrorFactory
) -> dict[str, Any]:
    """Check every name and value of ``raw`` against ``spec``; fill in defaults.

    Unknown or missing names and bad values raise the :class:`InvalidInput` that ``error``
    builds, so the message names the file, the line and ``params.<name>``.
    """
    known = {p.name: p for p in spec}
    for name in raw:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "no parameters"
            raise error(name, f"unknown parameter '{name}' for {kind}", f"one of: {allowed}")
    values: dict[str, Any] = {}
    for param in spec:
        if param.name in raw:
            try:
                values[param.name] = param.parse(raw[param.name])
            except ParamError as exc:
                raise error(param.name, exc.problem, exc.expected) from None
        elif param.required:
            raise error(None, f"missing parameter '{param.name}' for {kind}", param.expected())
        elif param.default is not None:
            values[param.name] = param.default
    return values


def parse_cli_params(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["ratio=0.5", "error=server_error"]`` → a dict; malformed pairs are exit 2."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InvalidInput(f"cannot read {pair!r}", source="--param", expected="NAME=VALUE")
        if name in out:
            raise InvalidInput(f"parameter '{name}' given twice", source="--param", field=name)
        out[name] = value
    return out


def describe_params(spec: tuple[Param, ...], values: Mapping[str, Any]) -> str:
    """``ratio=0.5 error=server_error`` with units put back, for messages and status."""
    by_name = {p.name: p for p in spec}
    parts = []
    for name, value in values.items():
        param = by_name.get(name)
        parts.append(f"{name}={param.format(value) if param else value}")
    return " ".join(parts)
