"""Load shapes: the target arrival rate (payments/s) as a function of time.

A profile never decides how many users exist; it only says how many checkouts should
*arrive* each second (open model). The pacer turns that rate into arrivals and hands them to
idle users. Each shape is a small class registered by name with its parameters declared
(name, default, unit, meaning), so ``paystab load --list-profiles`` and validation come from
the same place. Defaults that depend on the run length are computed from ``duration_s``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from paystab.exceptions import InvalidInput


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a shape. ``default`` maps the run duration (s) to the value."""

    name: str
    default: Callable[[float], float]
    default_text: str
    unit: str
    help: str
    lo: float = 0.0
    hi: float | None = None


def _const(value: float) -> Callable[[float], float]:
    return lambda _duration_s: value


class Profile(ABC):
    """A shape: ``rate_at(t_s)`` for ``0 <= t_s < duration_s``; ``--rps`` is its ``rate``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    rate_meaning: ClassVar[str] = "the arrival rate"
    default_duration_s: ClassVar[float] = 60.0
    params: ClassVar[tuple[ParamSpec, ...]] = ()

    def __init__(
        self, rate: float, duration_s: float, params: Mapping[str, float] | None = None
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise InvalidInput(f"rate must be > 0, got {rate:g}", source="--rps",
                               expected="a positive number of payments per second")
        if not duration_s > 0 or math.isinf(duration_s):
            raise InvalidInput(f"duration must be > 0, got {duration_s:g}", source="--duration",
                               expected="a positive number of seconds")
        self.rate = float(rate)
        self.duration_s = float(duration_s)
        given = dict(params or {})
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidInput(
                f"profile {self.name!r} has no parameter {unknown[0]!r}", source="--param",
                expected="one of: " + (", ".join(sorted(known)) or "(none)"),
            )
        self.values: dict[str, float] = {}
        for spec in self.params:
            value = float(given[spec.name]) if spec.name in given else spec.default(duration_s)
            if value < spec.lo or (spec.hi is not None and value > spec.hi) or math.isnan(value):
                bound = f">= {spec.lo:g}" + (f" and <= {spec.hi:g}" if spec.hi is not None else "")
                raise InvalidInput(f"{value:g} is out of range", source="--param",
                                   field=spec.name, expected=f"a value {bound} ({spec.unit})")
            self.values[spec.name] = value
        self._check()

    def _check(self) -> None:
        """Cross-parameter validation; raise InvalidInput. Most shapes need none."""
        return None

    @abstractmethod
    def rate_at(self, t_s: float) -> float:
        """Target arrivals per second at ``t_s`` seconds from the start."""

    @abstractmethod
    def peak_rate(self) -> float:
        """The highest rate the shape reaches (sizes the user pool)."""

    def describe(self) -> dict[str, Any]:
        return {"profile": self.name, "rate": self.rate, "duration_s": self.duration_s,
                "peak_rate": self.peak_rate(), "params": dict(self.values)}


PROFILES: dict[str, type[Profile]] = {}


def register(cls: type[Profile]) -> type[Profile]:
    PROFILES[cls.name] = cls
    return cls


def make_profile(
    name: str, rate: float, duration_s: float | None = None,
    params: Mapping[str, float] | None = None,
) -> Profile:
    """Build a registered profile; unknown name → InvalidInput listing the known ones."""
    cls = PROFILES.get(name)
    if cls is None:
        from paystab.suggest import did_you_mean

        raise InvalidInput(f"unknown profile {name!r}{did_you_mean(name, PROFILES)}",
                           source="--profile",
                           expected="one of: " + ", ".join(sorted(PROFILES)))
    return cls(rate, cls.default_duration_s if duration_s is None else duration_s, params)


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict[str, float]:
    """``["factor=10", "hold_s=20"]`` → dict; malformed → InvalidInput."""
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            out[key.strip()] = float(raw)
        except ValueError:
            raise InvalidInput(f"cannot read {pair!r}", source="--param",
                               expected="KEY=NUMBER, e.g. factor=10") from None
    return out


def _ramp(t: float, t0: float, t1: float, r0: float, r1: float) -> float:
    if t1 <= t0:
        return r1
    return r0 + (r1 - r0) * min(max((t - t0) / (t1 - t0), 0.0), 1.0)


@register
class Steady(Profile):
    name = "steady"
    summary = "constant arrival rate for the whole run"
    default_duration_s = 60.0

    def rate_at(self, t_s: float) -> float:
        return self.rate

    def peak_rate(self) -> float:
        return self.rate


@register
class Ramp(Profile):
    name = "ramp"
    summary = "linear ramp from a fraction of --rps up to --rps, then hold"
    default_duration_s = 120.0
    params = (
        ParamSpec("start_ratio", _const(0.05), "0.05", "× rps", "rate at t=0 as a share of --rps",
                  hi=1.0),
        ParamSpec("ramp_share", _const(0.8), "0.8", "× duration", "share of the run spent ramping",
                  hi=1.0),
    )

    def rate_at(self, t_s: float) -> float:
        end = self.values["ramp_share"] * self.duration_s
        return _ramp(t_s, 0.0, end, self.values["start_ratio"] * self.rate, self.rate)

    def peak_rate(self) -> float:
        return self.rate


@register
class Spike(Profile):
    name = "spike"
    summary = "flash sale: --rps baseline, ×factor within rise_s, hold, fall back"
    rate_meaning = "the baseline before and after the spike (peak = rps × factor)"
    default_duration_s = 120.0
    params = (
        ParamSpec("factor", _const(10.0), "10", "×", "peak as a multiple of the baseline", lo=1.0),
        ParamSpec("start_s", lambda d: 0.25 * d, "0.25 × duration", "s", "when the sale opens"),
        ParamSpec("rise_s", lambda d: min(10.0, 0.1 * d), "min(10, 0.1 × duration)", "s",
                  "time from baseline to peak"),
        ParamSpec("hold_s", lambda d: 0.25 * d, "0.25 × duration", "s", "time held at the peak"),
        ParamSpec("fall_s", lambda d: min(10.0, 0.1 * d), "min(10, 0.1 × duration)", "s",
                  "time from peak back to baseline"),
    )

    def _check(self) -> None:
        v = self.values
        if v["start_s"] + v["rise_s"] + v["hold_s"] + v["fall_s"] > self.duration_s + 1e-9:
            raise InvalidInput("start_s + rise_s + hold_s + fall_s exceeds the duration",
                               source="--param", field="spike",
                               expected=f"a total <= {self.duration_s:g} s")

    def rate_at(self, t_s: float) -> float:
        v = self.values
        peak = self.rate * v["factor"]
        t_rise = v["start_s"]
        t_hold = t_rise + v["rise_s"]
        t_fall = t_hold + v["hold_s"]
        if t_s < t_rise:
            return self.rate
        if t_s < t_hold:
            return _ramp(t_s, t_rise, t_hold, self.rate, peak)
        if t_s < t_fall:
            return peak
        return _ramp(t_s, t_fall, t_fall + v["fall_s"], peak, self.rate)

    def peak_rate(self) -> float:
        return self.rate * self.values["factor"]


@register
class BlackFriday(Profile):
    name = "black-friday"
    summary = "ramp up to the --rps peak, hold it, drain down"
    rate_meaning = "the peak"
    default_duration_s = 600.0
    params = (
        ParamSpec("start_ratio", _const(0.2), "0.2", "× rps", "rate at t=0 as a share of the peak",
                  hi=1.0),
        ParamSpec("ramp_share", _const(0.3), "0.3", "× duration", "share of the run ramping up",
                  hi=1.0),
        ParamSpec("hold_share", _const(0.5), "0.5", "× duration", "share of the run at the peak",
                  hi=1.0),
        ParamSpec("end_ratio", _const(0.2), "0.2", "× rps", "rate at the end as a share of peak",
                  hi=1.0),
    )

    def _check(self) -> None:
        if self.values["ramp_share"] + self.values["hold_share"] > 1.0 + 1e-9:
            raise InvalidInput("ramp_share + hold_share exceeds 1", source="--param",
                               field="black-friday", expected="a sum <= 1 (the rest drains)")

    def rate_at(self, t_s: float) -> float:
        v = self.values
        t_hold = v["ramp_share"] * self.duration_s
        t_drain = t_hold + v["hold_share"] * self.duration_s
        if t_s < t_hold:
            return _ramp(t_s, 0.0, t_hold, v["start_ratio"] * self.rate, self.rate)
        if t_s < t_drain:
            return self.rate
        return _ramp(t_s, t_drain, self.duration_s, self.rate, v["end_ratio"] * self.rate)

    def peak_rate(self) -> float:
        return self.rate


@register
class Soak(Profile):
    name = "soak"
    summary = "long run at --rps, optionally with a slow wave (daily swings)"
    default_duration_s = 3600.0
    params = (
        ParamSpec("wave_ratio", _const(0.0), "0", "× rps", "amplitude of the wave", hi=1.0),
        ParamSpec("wave_period_s", _const(600.0), "600", "s", "period of the wave", lo=1.0),
    )

    def rate_at(self, t_s: float) -> float:
        v = self.values
        return self.rate * (1.0 + v["wave_ratio"] * math.sin(2 * math.pi * t_s / v["wave_period_s"]))

    def peak_rate(self) -> float:
        return self.rate * (1.0 + self.values["wave_ratio"])


def expected_arrivals(profile: Profile, step_s: float = 0.01) -> float:
    """∫ rate dt over the run (trapezoid): how many arrivals the pacer should issue."""
    total = 0.0
    t = 0.0
    while t < profile.duration_s:
        dt = min(step_s, profile.duration_s - t)
        total += (profile.rate_at(t) + profile.rate_at(t + dt)) / 2 * dt
        t += dt
    return total


def catalogue() -> list[dict[str, Any]]:
    """Every profile with its parameters, for ``--list-profiles`` (data; the CLI renders)."""
    return [
        {
            "name": cls.name, "summary": cls.summary, "rps_means": cls.rate_meaning,
            "default_duration_s": cls.default_duration_s,
            "params": [{"name": p.name, "default": p.default_text, "unit": p.unit, "help": p.help}
                       for p in cls.params],
        }
        for cls in sorted(PROFILES.values(), key=lambda c: c.name)
    ]
