"""Read a ledgers file: a ``ledgers:`` section on its own, or inside a stack file.

``paystab reconcile --ledgers FILE`` reads either a file whose top level is the section
itself (``merchant:``, ``psp:``) or a stack file (its ``ledgers:`` key; the rest of a stack
file is ``paystab stack validate``'s business, but for its ``ready_file:``, which gives the
simulators' ledgers). ``${env:NAME}`` in a string is replaced
from the environment, as the stack-file loader does; every problem is reported at once as
``FILE:LINE: field: problem (expected ...)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paystab.config.problems import Problems
from paystab.config.types import Strict
from paystab.config.yaml12 import Loc, load_file_with_lines
from paystab.exceptions import InvalidInput
from paystab.ledgers.spec import LedgersSpec

_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class _InStackFile(Strict):
    ledgers: LedgersSpec


def load_ledgers_file(path: Path) -> LedgersSpec:
    return load_ledgers_and_ready_file(path)[0]


def load_ledgers_and_ready_file(path: Path) -> tuple[LedgersSpec, Path | None]:
    """The ledgers, and the stack file's ``ready_file:`` (relative to it) when it names one:
    the stack file ``paystab up`` writes points at its ready file, whose simulators'
    ledgers ``kind: simulators`` reads."""
    data, lines = load_file_with_lines(path)
    problems = Problems(str(path), lines)
    if not isinstance(data, dict):
        raise InvalidInput("not a mapping", source=str(path), line=1,
                           expected="merchant: and psp: (or a stack file with ledgers:)")
    in_stack_file = "ledgers" in data
    document: dict[str, Any] = {"ledgers": data["ledgers"]} if in_stack_file else data
    document = _expand(document, (), problems)
    model: type[Strict] = _InStackFile if in_stack_file else LedgersSpec
    try:
        checked = model.model_validate(document)
    except ValidationError as exc:
        problems.add_validation(exc, model)
        problems.raise_if_any()
        raise  # not reached: a validation error is at least one problem
    problems.raise_if_any()
    ready = data.get("ready_file") if in_stack_file else None
    ready_file = path.parent / ready if isinstance(ready, str) and ready else None
    if isinstance(checked, _InStackFile):
        return checked.ledgers, ready_file
    assert isinstance(checked, LedgersSpec)
    return checked, ready_file


def _expand(value: Any, loc: Loc, problems: Problems) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), problems) for i, v in enumerate(value)]
    if isinstance(value, str) and "${env:" in value:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.add(loc, f"environment variable {name} is not set",
                             f"{name} in the environment (used as ${{env:{name}}})")
                return ""
            return os.environ[name]

        return _ENV.sub(one, value)
    return value
