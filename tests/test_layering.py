"""Import rules between layers, checked on the source (AST), not by importing anything.

* The system under test (``paystab/stack/``) never reaches into the tooling that tests it:
  no import of ``paystab.alerting``, ``paystab.chaos``, ``paystab.loadtest``,
  ``paystab.drill``, ``paystab.anomaly`` (nor the CLI), at module level or inside a function.
* ``paystab.report`` (the report model and its renderers) does not import ``paystab.slo``:
  the SLO arithmetic fills the report, never the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "paystab"
TOOLING = ("paystab.alerting", "paystab.chaos", "paystab.loadtest", "paystab.drill",
           "paystab.anomaly", "paystab.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, anywhere in its body;
    relative imports resolved against ``module``'s package."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)  # from x import sub
    return names


def imported_modules(path: Path) -> set[str]:
    return imports_of(path.read_text(), _module_name(path), path.name == "__init__.py")


def _breaks(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names for f in forbidden if n == f or n.startswith(f + "."))


STACK_MODULES = sorted((PACKAGE / "stack").rglob("*.py"))


def test_the_walker_sees_every_kind_of_import() -> None:
    source = ("import paystab.chaos.base\nfrom .. import catalog\n"
              "def f():\n    from paystab.alerting import runtime\n"
              "    from ...drill import runner\n")
    names = imports_of(source, "paystab.stack.sub.mod")
    assert {"paystab.stack.catalog", "paystab.drill.runner", "paystab.alerting.runtime"} <= names
    assert _breaks(names, TOOLING) == ["paystab.alerting", "paystab.alerting.runtime",
                                       "paystab.chaos.base", "paystab.drill",
                                       "paystab.drill.runner"]
    assert "paystab.stack.dialects.base" in imports_of("from .base import X",
                                                       "paystab.stack.dialects", is_package=True)


@pytest.mark.parametrize("path", STACK_MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_stack_does_not_import_the_tooling(path: Path) -> None:
    assert _breaks(imported_modules(path), TOOLING) == []


def test_report_does_not_import_slo() -> None:
    offenders = {str(p.relative_to(PACKAGE)): _breaks(imported_modules(p), ("paystab.slo",))
                 for p in sorted((PACKAGE / "report").rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_there_are_stack_modules_to_check() -> None:
    assert len(STACK_MODULES) > 20
    assert any(p.name == "gateway.py" for p in STACK_MODULES)
