"""The runbooks shipped with paystab, and finding a runbook by name or path.

Bundled runbooks live in ``runbooks/`` at the top of the source tree; the wheel ships them
as package data ``paystab/runbooks`` (a link to that directory in a checkout). They are
found through ``importlib.resources`` first, then in the checkout, so the same code works
installed and from source. ``provider-timeout`` is the default drill.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from paystab.exceptions import InvalidInput

DEFAULT_RUNBOOK = "provider-timeout"


def bundled_dir() -> Path | None:
    """The directory holding the bundled ``*.yaml`` runbooks, or None if not shipped."""
    try:
        packaged = resources.files("paystab") / "runbooks"
        if packaged.is_dir():
            path = Path(str(packaged))
            if path.is_dir() and any(path.glob("*.yaml")):
                return path
    except (ModuleNotFoundError, OSError, TypeError):
        pass
    checkout = Path(__file__).resolve().parents[2] / "runbooks"
    return checkout if checkout.is_dir() else None


def bundled_runbooks() -> dict[str, Path]:
    """Name (file stem) → path of every bundled runbook, sorted by name."""
    root = bundled_dir()
    if root is None:
        return {}
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def find_runbook(name_or_path: str) -> Path:
    """A path to an existing file, or the bundled runbook of that name (exit 2 if neither)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if path.is_file():
            return path
        raise InvalidInput("file not found", source=name_or_path)
    bundled = bundled_runbooks()
    if name_or_path in bundled:
        return bundled[name_or_path]
    if path.is_file():
        return path
    from paystab.suggest import did_you_mean

    raise InvalidInput(f"no runbook named '{name_or_path}'{did_you_mean(name_or_path, bundled)}",
                       source="RUNBOOK",
                       expected="a YAML file or one of " + (", ".join(bundled) or "(none)"))
