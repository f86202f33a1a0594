"""Validation errors as ``file:line: field: problem``, all of a file at once.

:class:`Problems` collects what is wrong with one file: pydantic's errors (their ``loc``
mapped back to the line through the YAML position map, messages rewritten in paystab's
words, did-you-mean for unknown keys) and the checks a model cannot make alone (a fault
kind looked up in the registry, a name the target does not have). :meth:`Problems.raise_if_any`
raises one :class:`ConfigInvalid` whose first line is the first problem in file order and
whose other lines are the rest, so a user fixes the whole file in one go.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, RootModel, ValidationError

from paystab import suggest
from paystab.config.yaml12 import Loc, line_of, loc_text
from paystab.exceptions import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    return suggest.did_you_mean(word, choices, n=1)


def describe(value: Any) -> str:
    """What a value is, in words: ``a string ('x')``, ``a boolean (True)`` …"""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})" if value else "an empty string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class ConfigInvalid(InvalidInput):
    """Every problem of a file. ``source``/``line``/``field``/``problem`` are the first
    one's (in file order); ``problems`` holds them all, one :class:`InvalidInput` each."""

    def __init__(self, problems: Sequence[InvalidInput]) -> None:
        first = problems[0]
        self.problems = list(problems)
        super().__init__(first.problem, source=first.source, line=first.line, field=first.field,
                         expected=first.expected, hint=first.hint)
        if len(problems) > 1:
            rest = "\n  ".join(p.message for p in problems[1:])
            self.message = (f"{first.message}\n  and {len(problems) - 1} more problem"
                            f"{'s' if len(problems) > 2 else ''}:\n  {rest}")
            self.args = (self.message,)


_TYPE_EXPECTED = {
    "int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
    "dict": "a mapping", "model": "a mapping", "list": "a list", "tuple": "a list",
}
_BOUNDS = {"greater_than_equal": ("too small", ">= {ge}"), "greater_than": ("too small", "> {gt}"),
           "less_than_equal": ("too large", "<= {le}"), "less_than": ("too large", "< {lt}")}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) \
        else repr(value)


class Problems:
    """The problems of one file so far; ``lines`` is its YAML position map."""

    def __init__(self, source: str, lines: dict[Loc, int]) -> None:
        self.source = source
        self.lines = lines
        self.found: list[InvalidInput] = []

    def __bool__(self) -> bool:
        return bool(self.found)

    def add(self, loc: Loc, problem: str, expected: str | None = None) -> None:
        """A problem at ``loc`` (a field path such as ``('faults', 1, 'at')``)."""
        path, line = line_of(loc, self.lines)
        self.found.append(InvalidInput(problem, source=self.source, line=line,
                                       field=loc_text(path) or None, expected=expected))

    def add_error(self, error: InvalidInput) -> None:
        """An :class:`InvalidInput` raised by a helper; it is placed in this file."""
        if isinstance(error, ConfigInvalid):
            self.found.extend(error.problems)
            return
        self.found.append(error if error.source else InvalidInput(
            error.problem, source=self.source, line=error.line, field=error.field,
            expected=error.expected, hint=error.hint))

    def add_validation(self, exc: ValidationError, model: type[BaseModel],
                       prefix: Loc = ()) -> None:
        """Every error of a pydantic validation, in paystab's words, at its line.

        A union's branches fail at the same place: they become one problem whose expected
        value lists every branch ("true or a mapping")."""
        errors = exc.errors()
        missing = {(self._in_file(tuple(e["loc"][:-1])), e["loc"][-1])
                   for e in errors if e["type"] == "missing"}
        resolved: set[tuple[Loc, str | int]] = set()
        merged: dict[Loc, tuple[str, list[str], Any]] = {}
        for err in errors:
            raw_loc: Loc = tuple(err["loc"])
            kind = str(err["type"])
            ctx = err.get("ctx") or {}
            value = err.get("input")
            expected: str | None = None
            loc = self._in_file(raw_loc)
            if kind == "missing":
                loc = (*self._in_file(raw_loc[:-1]), raw_loc[-1])
                problem = f"missing required field '{raw_loc[-1]}'"
            elif kind == "extra_forbidden":
                key = str(raw_loc[-1])
                allowed = sorted(fields_at(model, raw_loc[:-1]))
                hint = did_you_mean(key, allowed)
                close = hint.split("'")[1] if hint else None
                if close is not None and (loc[:-1], close) in missing:
                    resolved.add((loc[:-1], close))  # the same typo: report it once
                problem = f"unknown field '{key}'{hint}"
                expected = "one of " + ", ".join(allowed) if allowed else None
            elif kind in _BOUNDS:
                words, template = _BOUNDS[kind]
                problem = f"{_number(value)} is {words}"
                expected = template.format(**{k: _number(v) for k, v in ctx.items()})
            elif kind.split("_")[0] in _TYPE_EXPECTED and kind.endswith(("_type", "_parsing")):
                problem = f"got {describe(value)}"
                expected = _TYPE_EXPECTED[kind.split("_")[0]]
            elif kind == "literal_error":
                problem = f"got {describe(value)}"
                expected = f"one of {ctx.get('expected')}"
            elif kind == "too_short":
                count = ctx.get("actual_length")
                problem = "an empty list" if count == 0 else f"only {count} item(s)"
                expected = f"at least {ctx.get('min_length')} item(s)"
            elif kind == "string_pattern_mismatch":
                problem = f"{value!r} is not of the expected form"
                expected = f"text matching {ctx.get('pattern')}"
            else:
                problem = str(err["msg"]).removeprefix("Value error, ")
            if loc in merged:  # another branch of a union
                _, expecteds, first_value = merged[loc]
                merged[loc] = (f"got {describe(first_value)}",
                               [*expecteds, expected or problem], first_value)
            else:
                merged[loc] = (problem, [expected] if expected else [], value)
        for loc, (problem, expecteds, _) in merged.items():
            if problem.startswith("missing required") and (loc[:-1], loc[-1]) in resolved:
                continue
            self.add((*prefix, *loc), problem, " or ".join(dict.fromkeys(expecteds)) or None)

    def _in_file(self, loc: Loc) -> Loc:
        """``loc`` without the steps validators add (a union's tag): only what the file has."""
        kept: list[str | int] = []
        for part in loc:
            if (*kept, part) in self.lines:
                kept.append(part)
        return tuple(kept)

    def raise_if_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda p: p.line or 0)
            raise ConfigInvalid(ordered)

    def validated(self, model: type[ModelT], value: object) -> ModelT:
        """``value`` as ``model``; a validation error raises every problem found so far
        together with its own, each at its line (exit 2)."""
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            self.add_validation(exc, model)
            self.raise_if_any()
            raise  # not reached: a validation error is at least one problem


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types behind ``Annotated``/``Optional``/unions (and a ``RootModel``'s
    root, whose file is a list or a mapping rather than a model's fields)."""
    if isinstance(tp, type) and issubclass(tp, RootModel):
        return _unwrap(tp.model_fields["root"].annotation)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [t for arg in typing.get_args(tp) for t in _unwrap(arg)]
    return [tp]


def fields_at(model: type[BaseModel], loc: Loc) -> set[str]:
    """The field names a model allows at ``loc`` (for "unknown field" messages)."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for tp in (t for c in current for t in _unwrap(c)):
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if isinstance(part, str) and part in tp.model_fields:
                    following.append(tp.model_fields[part].annotation)
                else:
                    following.append(tp)  # a union tag: stay on this type
            elif origin in (list, tuple) and isinstance(part, int):
                following.append(typing.get_args(tp)[0])
            elif origin is dict and isinstance(part, str):
                following.append(typing.get_args(tp)[1])
        current = following
    names: set[str] = set()
    for tp in (t for c in current for t in _unwrap(c)):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            names.update(tp.model_fields)
    return names
