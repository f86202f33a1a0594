"""Tables on a terminal, lines in a pipe: the one printer of every command that draws tables.

On a terminal a command's rich renderable (tables, panels, groups) is drawn as it is. When
the stream is not a terminal (a pipe, a file, a CI log) :func:`show` prints the same data
line by line instead — no box drawing, nothing cut at 80 columns — so ``grep`` and ``awk``
read it: a table's title on its own line, then one line per row in ``logfmt``
(``key=value``, values with spaces quoted), the columns without a header (row labels)
leading the line. A renderer that already has a line form of its own (``paystab load``'s
``result_lines``, the drill's ``plain_summary``) passes that instead; this is the general
fallback, so a new table needs no code of its own to behave in a pipe.
"""

from __future__ import annotations

import io
import re
import sys

import click
from rich.console import Console, Group, RenderableType
from rich.errors import MarkupError
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

BOX_CHARACTERS = re.compile("[\u2500-\u257f]")  # rich's box drawing: ─ │ ┃ ┏ ╭ …


def is_terminal(stderr: bool = False) -> bool:
    """True when the stream a command writes to is a terminal (tables), else lines."""
    stream = sys.stderr if stderr else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def show(renderable: RenderableType, *, stderr: bool = False) -> None:
    """Draw ``renderable`` on a terminal, or print it as :func:`lines` when piped."""
    if is_terminal(stderr):
        Console(stderr=stderr).print(renderable)
        return
    for line in lines(renderable):
        click.echo(line, err=stderr)


def lines(renderable: RenderableType) -> list[str]:
    """The line form of a rich renderable (see the module docstring)."""
    if isinstance(renderable, Table):
        return _table_lines(renderable)
    if isinstance(renderable, Group):
        return [line for part in renderable.renderables for line in lines(part)]
    if isinstance(renderable, Panel | Padding):
        return lines(renderable.renderable)
    if isinstance(renderable, str | Text):
        return [line.rstrip() for line in _plain(renderable).splitlines()]
    buffer = io.StringIO()  # anything else: rendered without width limit or colour
    Console(file=buffer, width=10_000, color_system=None, force_terminal=False,
            emoji=False).print(renderable)
    return [line.rstrip() for line in buffer.getvalue().splitlines() if line.strip()]


def _plain(cell: RenderableType) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except MarkupError:
            return cell
    return " ".join(lines(cell))


def _key(header: RenderableType) -> str:
    return re.sub(r"\W+", "_", _plain(header).strip().lower()).strip("_")


def _value(cell: RenderableType) -> str:
    text = "; ".join(part.strip() for part in _plain(cell).splitlines() if part.strip())
    if text and not re.search(r"[\s\"=]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table_lines(table: Table) -> list[str]:
    out = [_plain(table.title).strip()] if table.title else []
    columns = [(_key(c.header) if table.show_header else "", [*c.cells]) for c in table.columns]
    for row in range(table.row_count):
        label = [_plain(cells[row]).strip() for key, cells in columns if not key]
        pairs = [f"{key}={_value(cells[row])}" for key, cells in columns if key]
        head = ": ".join(part for part in label if part)
        out.append(f"{head}: {' '.join(pairs)}" if head and pairs else head or " ".join(pairs))
    return out
