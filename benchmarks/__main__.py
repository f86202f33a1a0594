"""``python -m benchmarks NAME [--json FILE] [...]``: run one benchmark from a checkout.

Each benchmark is a module ``benchmarks/NAME.py`` with ``main(argv: list[str]) -> int``
that prints a table and writes its JSON (measured numbers, targets, pass/fail) to --json.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main() -> int:
    names = _names()
    if len(sys.argv) < 2 or sys.argv[1] in {"-h", "--help"}:
        print("usage: python -m benchmarks NAME [--json FILE] [options]")
        print("benchmarks: " + ", ".join(names))
        return 0 if len(sys.argv) >= 2 else 2
    name = sys.argv[1].replace("-", "_")
    if name not in names:
        print(f"unknown benchmark {sys.argv[1]!r}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{name}")
    return int(module.main(sys.argv[2:]))


if __name__ == "__main__":
    sys.exit(main())
