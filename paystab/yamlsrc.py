"""YAML documents that remember where every value came from.

Runbooks and stack configs are written by people; when one is wrong the message must name
the file, the line and the field path (``faults[1].params.latency``) and say what was
expected. :func:`load_yaml` composes the YAML node tree (so line numbers survive) and
:class:`Node` walks it with typed accessors that raise :class:`InvalidInput` on misuse.
Scalars are YAML 1.2 (:class:`~paystab.config.yaml12.Yaml12Loader`: ``NO`` stays a string).
Every config file kind has a pydantic model (runbook, stack config, mix, watch, proxy config,
ensemble policy, checkout flow, stack file); most are read through :mod:`paystab.config`.
The checkout flow and the stack file keep this node tree beside their models to point a
model error at its line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from paystab.config.problems import describe
from paystab.config.yaml12 import Yaml12Loader
from paystab.exceptions import InvalidInput
from paystab.units import parse_duration_s, parse_rate

_MISSING = object()


@dataclass(frozen=True)
class Node:
    """One value of a YAML document with its field path and 1-based line."""

    value: Any
    path: str
    line: int | None
    source: str
    _children: Any = None  # dict[str, Node] | list[Node] | None

    # -- errors -----------------------------------------------------------------
    def error(self, problem: str, expected: str | None = None) -> InvalidInput:
        return InvalidInput(
            problem, source=self.source, line=self.line, field=self.path or None, expected=expected
        )

    # -- structure ----------------------------------------------------------------
    def is_map(self) -> bool:
        return isinstance(self._children, dict)

    def keys(self) -> list[str]:
        return list(self._children) if isinstance(self._children, dict) else []

    def has(self, key: str) -> bool:
        return isinstance(self._children, dict) and key in self._children

    def get(self, key: str) -> Node | None:
        self.as_map()
        child = self._children.get(key)
        return child if isinstance(child, Node) else None

    def field(self, key: str) -> Node:
        child = self.get(key)
        if child is None:
            raise self.error(f"missing required field '{key}'")
        return child

    def items(self) -> Iterator[tuple[str, Node]]:
        self.as_map()
        yield from self._children.items()

    def elements(self) -> list[Node]:
        if not isinstance(self._children, list):
            raise self.error(f"got {describe(self.value)}", expected="a list")
        return list(self._children)

    def only_keys(self, allowed: set[str] | list[str]) -> None:
        """Reject unknown keys, naming the first one and listing what is allowed."""
        for key, child in self.items():
            if key not in allowed:
                raise child.error(
                    f"unknown field '{key}'", expected="one of " + ", ".join(sorted(allowed))
                )

    # -- scalars ---------------------------------------------------------------------
    def as_map(self) -> dict[str, Any]:
        if not isinstance(self._children, dict):
            raise self.error(f"got {describe(self.value)}", expected="a mapping")
        return dict(self.value)

    def as_str(self) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.error(f"got {describe(self.value)}", expected="a non-empty string")
        return self.value

    def as_int(self, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.error(f"got {describe(self.value)}", expected="an integer")
        _check_range(self, self.value, lo, hi)
        return self.value

    def as_float(self, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.error(f"got {describe(self.value)}", expected="a number")
        _check_range(self, float(self.value), lo, hi)
        return float(self.value)

    def as_bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"got {describe(self.value)}", expected="true or false")
        return self.value

    def as_choice(self, choices: list[str] | tuple[str, ...] | set[str]) -> str:
        text = self.as_str()
        if text not in choices:
            raise self.error(f"unknown value '{text}'", expected="one of " + ", ".join(sorted(choices)))
        return text

    def as_duration_s(self, lo: float = 0.0, hi: float | None = None) -> float:
        """A duration with its unit ("500ms", "30s", "2m", "1h")."""
        try:
            seconds = parse_duration_s(self.value)
        except ValueError as exc:
            raise self.error(str(exc), expected="a duration with a unit, e.g. 500ms, 30s, 2m") from None
        _check_range(self, seconds, lo, hi, unit="s")
        return seconds

    def as_rate(self, lo: float = 0.0, hi: float | None = None) -> float:
        """A rate in events per second ("100/s", "6000/m", or a plain number of per second)."""
        try:
            rate = parse_rate(self.value)
        except ValueError as exc:
            raise self.error(str(exc), expected="a rate such as 100/s or 6000/m") from None
        _check_range(self, rate, lo, hi, unit="/s")
        return rate


def _check_range(
    node: Node, value: float, lo: float | None, hi: float | None, unit: str = ""
) -> None:
    if lo is not None and value < lo:
        raise node.error(f"{value:g}{unit} is too small", expected=f">= {lo:g}{unit}")
    if hi is not None and value > hi:
        raise node.error(f"{value:g}{unit} is too large", expected=f"<= {hi:g}{unit}")




def _build(node: yaml.Node, path: str, source: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        children: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child_path = f"{path}.{key}" if path else str(key)
            if key in children:
                raise InvalidInput(
                    f"duplicate key '{key}'",
                    source=source,
                    line=key_node.start_mark.line + 1,
                    field=child_path,
                )
            children[key] = _build(value_node, child_path, source)
        value = {k: c.value for k, c in children.items()}
        return Node(value, path, line, source, children)
    if isinstance(node, yaml.SequenceNode):
        items = [_build(v, f"{path}[{i}]", source) for i, v in enumerate(node.value)]
        return Node([c.value for c in items], path, line, source, items)
    constructor = Yaml12Loader("")
    value = constructor.construct_object(node, deep=True)
    return Node(value, path, line, source, None)


def load_yaml_text(text: str, source: str) -> Node:
    """Parse YAML text; syntax errors become :class:`InvalidInput` with the line."""
    try:
        root = yaml.compose(text, Loader=Yaml12Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise InvalidInput(
            f"not valid YAML: {exc.problem}",
            source=source,
            line=mark.line + 1 if mark else None,
            expected="a YAML mapping",
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}", source=source) from None
    if root is None:
        raise InvalidInput("the file is empty", source=source, expected="a YAML mapping")
    return _build(root, "", source)


def load_yaml(path: str | Path) -> Node:
    """Read and parse a YAML file; an unreadable file is an :class:`InvalidInput`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput("file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the file: {exc}", source=str(p)) from None
    return load_yaml_text(text, str(p))
