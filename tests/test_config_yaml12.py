"""The shared config reader: YAML 1.2 scalars, the position map, and pydantic errors turned
into ``file:line: field: problem`` with did-you-mean, all of a file at once."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field, ValidationError

from paystab.config.problems import ConfigInvalid, Problems, did_you_mean, fields_at
from paystab.config.types import Duration, Rate, Share, Strict
from paystab.config.yaml12 import load_with_lines
from paystab.exceptions import InvalidInput


def test_yaml12_scalars() -> None:
    value, _ = load_with_lines("countries: [JP, NO, yes, off, On]\ntime: 1:30\noctal: 010\n"
                               "flags: [true, false, TRUE]\nnothing: ~\nhex: 0x1f\n", "f.yaml")
    assert value == {"countries": ["JP", "NO", "yes", "off", "On"], "time": "1:30", "octal": 10,
                     "flags": [True, False, True], "nothing": None, "hex": 31}


def test_positions_and_duplicate_keys() -> None:
    _, lines = load_with_lines("a:\n  b: [1,\n    2]\n  c: {d: x}\n", "f.yaml")
    assert lines[("a", "b", 1)] == 3 and lines[("a", "c", "d")] == 4
    assert lines[("a",)] == 1  # the key's line, not the block's below it
    with pytest.raises(InvalidInput) as err:
        load_with_lines("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert (err.value.line, err.value.field) == (3, "a") and "duplicate" in err.value.problem


class Inner(Strict):
    timeout: Duration = Field(ge=0.01)
    rate: Rate = 1.0
    share: Share = Field(default=0.0, le=1.0)


class Outer(Strict):
    name: str
    count: int = Field(default=1, ge=1)
    items: list[Inner] = Field(default_factory=list)
    by_name: dict[str, Inner] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)


def _problems(text: str) -> ConfigInvalid:
    value, lines = load_with_lines(text, "c.yaml")
    problems = Problems("c.yaml", lines)
    with pytest.raises(ValidationError) as exc:
        Outer.model_validate(value)
    problems.add_validation(exc.value, Outer)
    with pytest.raises(ConfigInvalid) as err:
        problems.raise_if_any()
    return err.value


def test_every_error_in_file_order_with_paystab_words() -> None:
    err = _problems("count: 0\nitems:\n  - {timeout: 5, rate: fast, share: 150%}\n"
                    "by_name:\n  x: {timeot: 1s}\ntags: [NO, yes, 3]\nnmae: n\n")
    got = [(p.line, p.field, p.problem) for p in err.problems]
    assert got == [
        (1, "count", "0 is too small"),
        (3, "items[0].timeout", "5 has no unit (expected a duration with a unit, e.g. 500ms, "
                                "30s, 2m)"),
        (3, "items[0].rate", "cannot read 'fast' as a rate (expected a rate such as 100/s or "
                             "6000/m)"),
        (3, "items[0].share", "1.5 is too large"),
        (5, "by_name.x.timeot", "unknown field 'timeot' (did you mean 'timeout'?)"),
        (6, "tags[2]", "got a number (3)"),
        (7, "nmae", "unknown field 'nmae' (did you mean 'name'?)"),
    ], err.message
    # the typo of a required field is reported once, as the typo
    assert "missing required field 'name'" not in err.message
    assert "missing required field 'timeout'" not in err.message
    assert err.message.startswith("c.yaml:1: count: 0 is too small (expected >= 1)\n"
                                  "  and 6 more problems:\n  c.yaml:3: items[0].timeout")
    assert err.exit_code == 2


def test_missing_fields_are_named_at_their_parent() -> None:
    err = _problems("items:\n  - {rate: 5/s}\n")
    got = [(p.line, p.field, p.problem) for p in err.problems]
    assert got == [(1, "name", "missing required field 'name'"),
                   (2, "items[0].timeout", "missing required field 'timeout'")]


def test_helpers() -> None:
    assert fields_at(Outer, ("by_name", "x")) == {"timeout", "rate", "share"}
    assert fields_at(Outer, ("items", 0)) == {"timeout", "rate", "share"}
    assert did_you_mean("card-alfa", ["card-alpha", "wallet-kilo"]) == \
        " (did you mean 'card-alpha'?)"
    assert did_you_mean("zzz", ["card-alpha"]) == ""


class Either(Strict):
    when: Annotated[str, Field(pattern=r"^[a-z]+$")] | list[int] | None = None


def test_a_unions_branches_are_one_problem_without_validator_steps() -> None:
    value, lines = load_with_lines("when: 5\n", "u.yaml")
    problems = Problems("u.yaml", lines)
    with pytest.raises(ValidationError) as exc:
        Either.model_validate(value)
    problems.add_validation(exc.value, Either)
    [only] = problems.found
    assert (only.line, only.field, only.problem) == (1, "when", "got a number (5)")
    assert only.expected == "a string or a list"
