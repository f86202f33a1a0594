"""``${env:NAME}`` and ``${simulators.NAME.FIELD}`` in a stack file's strings.

Two kinds of hole, filled at two times:

* ``${env:NAME}`` is replaced from the environment when the file is loaded, in any string
  value (a secret or a database URL stays out of the file). A variable that is not set is a
  problem naming the field, reported with the file's other problems.
* ``${simulators.NAME.FIELD}`` (``FIELD``: :data:`SIMULATOR_FIELDS`) names something only
  known once the simulators run (their ports are picked then): it is checked at load (the
  simulator is declared, the field exists, and the hole is in ``service.env`` or
  ``service.command``, the only values read after the simulators start) and filled by
  :func:`fill_simulators` when the service starts.

``$$`` is a literal ``$``. Anything else after ``${`` is a problem: a typo must not reach a
service as text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

SIMULATOR_FIELDS = ("url", "api_key", "webhook_secret", "ca_file", "admin_url")
_HOLE = re.compile(r"\$\$|\$\{([^}]*)\}")
_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
_SIM = re.compile(r"^simulators\.([^.\s]+)\.([A-Za-z_]+)$")
FORMS = "${env:NAME} or ${simulators.NAME.FIELD} (FIELD: " + ", ".join(SIMULATOR_FIELDS) + ")"


class TemplateProblem(ValueError):
    """A hole that cannot be filled; ``expected`` says what would be."""

    def __init__(self, problem: str, expected: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected


def simulator_refs(text: str) -> list[tuple[str, str]]:
    """Every ``(simulator, field)`` a string refers to (its other holes ignored)."""
    out = []
    for match in _HOLE.finditer(text):
        inner = match.group(1)
        found = _SIM.match(inner) if inner is not None else None
        if found:
            out.append((found.group(1), found.group(2)))
    return out


def fill_env(text: str, environ: Mapping[str, str] | None = None, *, final: bool = True) -> str:
    """``text`` with every ``${env:NAME}`` replaced and, when ``final``, ``$$`` made ``$``
    (not final: simulator holes are still to fill, so the escapes stay for that pass).

    Raises :class:`TemplateProblem` for an unset variable or a hole of no known form."""
    env = os.environ if environ is None else environ

    def one(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner is None:
            return "$" if final else "$$"
        if _SIM.match(inner):
            return match.group(0)
        found = _ENV.match(inner.strip())
        if not found:
            raise TemplateProblem(f"'{match.group(0)}' is not a template this file knows", FORMS)
        name = found.group(1)
        if name not in env:
            raise TemplateProblem(f"environment variable {name} is not set",
                                  f"{name} set in the environment of paystab")
        return env[name]
    return _HOLE.sub(one, text)


def fill_simulators(text: str, lookup: Callable[[str, str], str | None]) -> str:
    """``text`` with ``${simulators.NAME.FIELD}`` filled by ``lookup(NAME, FIELD)`` and ``$$``
    made ``$``. ``lookup`` answering None (a field the simulator does not have, such as
    ``ca_file`` without TLS) fills an empty string."""

    def one(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner is None:
            return "$"
        found = _SIM.match(inner)
        if not found:
            return match.group(0)  # ${env:…} was filled at load; nothing else gets here
        return lookup(found.group(1), found.group(2)) or ""
    return _HOLE.sub(one, text)
