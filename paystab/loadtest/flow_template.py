"""The flow files' small, safe template language and JSON paths — parsed once, no eval.

A template is text with ``{{ name }}`` holes; a name is one of the per-checkout values
(:data:`BUILTINS`: ``key``, ``seq``, ``amount``, ``currency``, ``country``, ``method``,
``customer``, ``card``, ``card_expect``) or a value a previous step extracted. Nothing else: no
expressions, filters, attribute access or code — a template can only copy values. A string
that is exactly one hole (``"{{ amount }}"``) keeps the value's JSON type (an amount stays a
number); inside longer text the value is spliced as text.

A JSON path is ``$`` followed by ``.field`` and ``[index]`` steps (``$.order.id``,
``$.charges[0].state``), parsed into a tuple at load time and walked without allocation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

BUILTINS = frozenset({"key", "seq", "amount", "currency", "country", "method", "customer",
                      "card", "card_expect"})
_HOLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[\"([^\"]+)\"\]")


class TemplateError(ValueError):
    """A template or JSON path that cannot be read (the message says why)."""


def holes(text: str) -> list[str]:
    """The names used by ``text``; a ``{{`` that is not a simple name is an error."""
    names = _HOLE.findall(text)
    leftover = _HOLE.sub("", text)
    if "{{" in leftover or "}}" in leftover:
        raise TemplateError(f"cannot read the template {text!r}: a hole is {{{{ name }}}} with "
                            "a plain name (no expressions)")
    return names


class Text:
    """A compiled string template: literal parts and names, alternating."""

    __slots__ = ("names", "parts", "whole")

    def __init__(self, text: str) -> None:
        self.names = holes(text)
        self.parts = _HOLE.split(text)  # [lit, name, lit, name, ..., lit]
        self.whole = len(self.names) == 1 and self.parts[0] == "" and self.parts[2] == ""

    def render(self, values: Mapping[str, Any], escape: Callable[[str], str] | None = None) -> str:
        """The text with every hole filled; ``escape`` is applied to each value (not to the
        template's own text): URL-quoting in a path, dropping line breaks in a header."""
        parts = self.parts
        if len(parts) == 1:
            return parts[0]
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            value = str(values[parts[i]])
            out.append(escape(value) if escape is not None else value)
            out.append(parts[i + 1])
        return "".join(out)


def quote_path_value(value: str) -> str:
    """A value spliced into a URL path: one segment, nothing that could end the request line."""
    return quote(value, safe="-._~")


def header_value(value: str) -> str:
    """A value spliced into a header: no CR/LF (a value from an answer must not add headers)."""
    return value.replace("\r", "").replace("\n", "") if "\r" in value or "\n" in value else value


class JsonBody:
    """A JSON document with templated strings, rendered to bytes by splicing fragments.

    The document is serialised once around placeholders, so rendering a body costs one
    ``json.dumps`` per hole, not per document.
    """

    __slots__ = ("fragments", "names")

    def __init__(self, document: Any) -> None:
        slots: list[tuple[str, Text]] = []

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                text = Text(value)
                if not text.names:
                    return value
                marker = f"\ue000{len(slots)}\ue001"  # private-use: never escaped by json.dumps
                slots.append((marker, text))
                return marker
            if isinstance(value, dict):
                return {str(k): walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

        encoded = json.dumps(walk(document), separators=(",", ":"), ensure_ascii=False)
        self.fragments: list[str | Text] = []
        self.names: list[str] = []
        rest = encoded
        for marker, text in slots:
            before, rest = rest.split(f'"{marker}"', 1)
            self.fragments.append(before)
            self.fragments.append(text)
            self.names.extend(text.names)
        self.fragments.append(rest)

    def render(self, values: Mapping[str, Any]) -> bytes:
        out: list[str] = []
        for fragment in self.fragments:
            if isinstance(fragment, str):
                out.append(fragment)
            elif fragment.whole:
                out.append(json.dumps(values[fragment.parts[1]], ensure_ascii=False))
            else:
                out.append(json.dumps(fragment.render(values), ensure_ascii=False))
        return "".join(out).encode()


def parse_path(text: str) -> tuple[str | int, ...]:
    """``$.a.b[0]`` → ``("a", "b", 0)``; anything else is a :class:`TemplateError`."""
    if not text.startswith("$"):
        raise TemplateError(f"{text!r} is not a JSON path: it starts with $ (e.g. $.order.id)")
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        match = _PATH_STEP.match(text, pos)
        if match is None:
            raise TemplateError(f"cannot read the JSON path {text!r} at {text[pos:]!r} "
                                "(steps are .field, [0] or [\"field\"])")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = match.end()
    return tuple(steps)


_ABSENT = object()


def lookup(document: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path``, or :data:`ABSENT` when the document has no such place."""
    value = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _ABSENT
            value = value[step]
        else:
            if not isinstance(value, dict):
                return _ABSENT
            value = value.get(step, _ABSENT)
            if value is _ABSENT:
                return _ABSENT
    return value


ABSENT = _ABSENT


def is_name(text: str) -> bool:
    return _NAME.fullmatch(text) is not None
