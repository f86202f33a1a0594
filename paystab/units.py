"""Parsing of values that carry units: durations, rates, byte sizes.

A bare number is ambiguous in a fault schedule ("latency: 500" — ms or s?), so durations
must carry their unit. Rates accept a bare number as events per second because that is
what every load tool means.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h|d)\s*$")
_DURATION_FACTORS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|m|h))?\s*$")
_RATE_FACTORS = {"s": 1.0, "m": 1 / 60.0, "h": 1 / 3600.0}


def parse_duration_s(value: object) -> float:
    """"250ms" → 0.25. Compound forms ("1m30s") are accepted. Raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{value!r} has no unit")
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    total = 0.0
    for piece in re.findall(r"\d+(?:\.\d+)?\s*(?:us|µs|ms|s|m|h|d)", text):
        match = _DURATION.match(piece)
        assert match is not None
        total += float(match.group(1)) * _DURATION_FACTORS[match.group(2)]
    if re.sub(r"\d+(?:\.\d+)?\s*(?:us|µs|ms|s|m|h|d)", "", text).strip():
        raise ValueError(f"cannot read {value!r} as a duration")
    return total


DURATION_EXPECTED = "seconds or a duration with units, e.g. 30, 30s, 2m, 1h30m"


def parse_cli_duration_s(value: str, *, allow_zero: bool = False) -> float:
    """A duration typed on a command line: bare seconds (``30``, ``1.5``) or with units
    (``30s``, ``2m``, ``1h30m``, ``250ms``). Every ``--duration`` flag reads it this way, so
    one grammar holds for every command. Raises ValueError saying what was expected.
    """
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration_s(text)
        except ValueError:
            raise ValueError(f"cannot read {value!r} as a duration") from None
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


def parse_rate(value: object) -> float:
    """"100/s" → 100.0, "6000/m" → 100.0, 100 → 100.0. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a rate")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a rate")
    match = _RATE.match(value)
    if not match:
        raise ValueError(f"cannot read {value!r} as a rate")
    return float(match.group(1)) * _RATE_FACTORS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.3g}s"
    return f"{seconds / 60:.3g}m"
