"""Output paths are checked, and their folders created, before any work starts.

A drill or a load run must not run for a minute and then lose its results to a typo in an
output path: every command that writes a file calls these first, and a path it cannot
write is invalid input (exit 2) naming the flag.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from paystab.exceptions import InvalidInput


def check_output_dir(folder: Path, flag: str) -> None:
    """Create ``folder`` (and its parents) and prove it writable; exit 2 naming ``flag``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InvalidInput(f"cannot write to {folder}: {exc.strerror or exc}", source=flag,
                           expected="a folder paystab can create and write") from None


def check_output_file(path: Path | str, flag: str) -> Path:
    """``path`` is a file paystab can write: not a folder, its folder created and writable.
    ``-`` (stdout) passes as is."""
    path = Path(path)
    if str(path) == "-":
        return path
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder", source=flag, expected="a file path")
    check_output_dir(path.parent, flag)
    return path
