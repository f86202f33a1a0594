"""The one ``NAME OP VALUE`` grammar shared by hypotheses, load thresholds and abort_when.

A runbook hypothesis (``availability >= 99.99% and mttr_s <= 300``), a load threshold
(``p(99)<500ms``) and an abort condition (``failure_rate > 5% over 30s``) are the same
shape, read here by one regular grammar (never ``eval``):

* NAME: ``[A-Za-z_][A-Za-z0-9_.]*``, optionally followed by ``(N)`` (``p(99)``);
* OP: ``<=``, ``>=``, ``==``, ``!=``, ``<``, ``>`` — each user says which it accepts;
* VALUE: a decimal number (sign, fraction and exponent optional: ``-1``, ``.5``, ``1e-4``)
  with an optional unit (``%``, ``ms``, ``s``), or a bare word (``true``, ``null``).

Only the shape is shared. What a name means, which operators and units fit it, the
conversion of a unit, what may follow the value (``and …``, ``over 30s``) and every error
message stay with the user of the grammar, who knows the context.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
ORDERING = ("<", "<=", ">", ">=")

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_COMPARISON = re.compile(
    r"\s*(?P<name>[A-Za-z_][A-Za-z0-9_.]*(?:\(\s*" + _NUMBER + r"\s*\))?)"
    r"\s*(?P<op><=|>=|==|!=|<|>)"
    r"\s*(?:(?P<number>" + _NUMBER + r")(?:\s*(?P<unit>%|ms\b|s\b))?|(?P<word>[A-Za-z_]\w*))"
)


@dataclass(frozen=True)
class Comparison:
    """One ``NAME OP VALUE`` read from ``text[start:end]``; the value is a number or a word."""

    name: str
    op: str
    number: float | None  # the number as written, unit not applied
    number_text: str | None
    unit: str | None  # "%", "ms", "s" or None
    word: str | None  # a bare word value (true, false, null …) instead of a number
    end: int  # index in the text just after the value

    def ratio(self) -> float:
        """The number with ``%`` applied (5% → 0.05); any other unit is the caller's."""
        assert self.number is not None
        return self.number / 100.0 if self.unit == "%" else self.number


def match_comparison(text: str, start: int = 0) -> Comparison | None:
    """The comparison at ``text[start:]`` (leading blanks skipped), or None if there is none.

    What follows the value is not looked at: the caller checks ``text[end:]``.
    """
    found = _COMPARISON.match(text, start)
    if found is None:
        return None
    number_text = found["number"]
    return Comparison(found["name"], found["op"],
                      float(number_text) if number_text is not None else None, number_text,
                      found["unit"], found["word"], found.end())


def holds(op: str, observed: Any, value: Any) -> bool:
    """``observed OP value`` with the operator table every grammar user shares."""
    return bool(OPERATORS[op](observed, value))
