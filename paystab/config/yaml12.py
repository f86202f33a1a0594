"""YAML 1.2 (core schema) values with the line of every field, for typed config files.

PyYAML resolves scalars the YAML 1.1 way: ``NO`` becomes ``False`` (Norway's country code
lost) and ``1:30`` becomes ninety. :class:`Yaml12Loader` resolves only the 1.2 core schema:
``true``/``false``, ``null``/``~``/empty, decimal, ``0o`` octal and ``0x`` hex integers,
floats, ``.inf``/``.nan``; everything else stays a string. :func:`load_with_lines` answers
the plain value (handed to a pydantic model) and a position map ``path tuple -> line`` so a
validation error's ``loc`` can be turned back into ``file:line``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from paystab.exceptions import InvalidInput

Loc = tuple[str | int, ...]


class Yaml12Loader(yaml.SafeLoader):
    """A SafeLoader whose implicit scalar resolution follows the YAML 1.2 core schema."""


Yaml12Loader.yaml_implicit_resolvers = {}
_RESOLVERS: list[tuple[str, str, str]] = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
     r"|\.(?:nan|NaN|NAN))$", "-+0123456789."),
]
for _tag, _pattern, _first in _RESOLVERS:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^$"), [""])


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return str(node.value).lower() == "true"


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(node.value)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # "010" is ten in YAML 1.2, not eight


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(node.value).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], loader: Yaml12Loader,
          source: str) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            if key in out:
                raise InvalidInput(f"duplicate key '{key}'", source=source,
                                   line=key_node.start_mark.line + 1, field=loc_text((*loc, key)))
            out[key] = _walk(value_node, (*loc, key), lines, loader, source)
            # A field is where its key is written: a block below it starts a line later.
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, (*loc, i), lines, loader, source) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_with_lines(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """Parse ``text``; answer the value and the line of every field path."""
    try:
        root = yaml.compose(text, Loader=Yaml12Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise InvalidInput(f"not valid YAML: {exc.problem}", source=source,
                           line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}", source=source) from None
    if root is None:
        raise InvalidInput("the file is empty", source=source, expected="a YAML mapping")
    lines: dict[Loc, int] = {}
    value = _walk(root, (), lines, Yaml12Loader(""), source)
    return value, lines


def load_file_with_lines(path: str | Path) -> tuple[Any, dict[Loc, int]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput("file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the file: {exc}", source=str(p)) from None
    return load_with_lines(text, str(p))


def loc_text(loc: Loc) -> str:
    """``('sources', 0, 'url')`` -> ``sources[0].url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(loc: Loc, lines: dict[Loc, int]) -> tuple[Loc, int | None]:
    """The field path as written in the file and its line, for a validator's ``loc``.

    Validators add steps the file does not have (a union's tag, ``[key]``); those are
    skipped. A missing field answers the line of the nearest parent that exists."""
    kept: list[str | int] = []
    for part in loc:
        if (*kept, part) in lines:
            kept.append(part)
    line = lines.get(tuple(kept))
    shown = list(kept)
    last = loc[-1] if loc else None
    if isinstance(last, str) and (not kept or kept[-1] != last):
        shown.append(last)  # a missing field: named, at its parent's line
    return tuple(shown), line
