"""Read a ledgers file: the ``ledgers:`` section of a stack file, written on its own.

``paystab reconcile --ledgers FILE`` takes a stack file (read, all of it, by the stack-file
loader, :func:`paystab.stackfile.load.load_stack`) or a file holding only the section —
``merchant:`` and ``psp:`` at the top level — for reconciling exports and settlement
reports without describing the rest of a stack. :func:`is_ledgers_section` tells the two
apart; :func:`load_ledgers_file` reads the second kind. ``${env:NAME}`` in a string is
replaced from the environment, as the stack-file loader does; every problem is reported at
once as ``FILE:LINE: field: problem (expected ...)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from paystab.config.problems import Problems
from paystab.config.yaml12 import Loc, load_file_with_lines
from paystab.exceptions import InvalidInput
from paystab.ledgers.spec import LedgersSpec

_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
# Keys only a stack file (or a paystab ready file, read as one) has at its top level.
_STACK_KEYS = ("version", "name", "ready_file", "service", "checkout", "simulators",
               "telemetry", "failover", "ledgers", "faults", "gateway_url", "providers")


def is_ledgers_section(path: Path) -> bool:
    """True when ``path`` holds only a ledgers section (no stack-file or ready-file key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False  # the stack-file loader says what is wrong with it
    if text.lstrip().startswith("{"):
        return False  # JSON: a ready file
    data, _ = load_file_with_lines(path)
    return isinstance(data, dict) and not any(key in data for key in _STACK_KEYS)


def load_ledgers_file(path: Path) -> LedgersSpec:
    """The section file at ``path``, checked; every problem at once (exit 2)."""
    data, lines = load_file_with_lines(path)
    problems = Problems(str(path), lines)
    if not isinstance(data, dict):
        raise InvalidInput("not a mapping", source=str(path), line=1,
                           expected="merchant: and psp: (or a stack file with ledgers:)")
    document = _expand(data, (), problems)
    spec = problems.validated(LedgersSpec, document)
    problems.raise_if_any()
    return spec


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
