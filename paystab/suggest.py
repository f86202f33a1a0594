"""Did-you-mean for every name a user types: runbooks, profiles, providers, report variables,
commands. One function so every message reads the same: ``(did you mean 'x'?)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_names(name: str, known: Iterable[str], n: int = 2, cutoff: float = 0.6) -> list[str]:
    """The known names closest to ``name`` (difflib ratio, best first; case-insensitive)."""
    names = list(dict.fromkeys(known))
    lowered = {k.lower(): k for k in names}
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n,
                                                          cutoff=cutoff)]


def did_you_mean(name: str, known: Iterable[str], n: int = 2) -> str:
    """`` (did you mean 'a' or 'b'?)`` for the closest names, or ``""`` when none is close."""
    close = close_names(name, known, n=n)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"
