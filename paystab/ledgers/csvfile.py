"""A CSV file with a header row, read so that every problem names its file, line and column.

Exports from shops and settlement reports from PSPs are read the same way: UTF-8 (a BOM is
dropped, as spreadsheet exports write one), a header row, the columns a reader needs looked
up by name (a missing one is an :class:`InvalidInput` with the header it did find and a
did-you-mean), blank lines skipped, extra trailing fields tolerated (Adyen pads its rows).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from paystab.exceptions import InvalidInput
from paystab.suggest import did_you_mean

MAX_FIELD_BYTES = 1 << 20  # one field; csv's default (128 KiB) is lower than some notes


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int
    fields: list[str]
    table: CsvTable

    def get(self, column: str) -> str:
        """The value of ``column`` (which the table has); a short row is an error."""
        index = self.table.index[column]
        if index >= len(self.fields):
            raise InvalidInput(f"the row has {len(self.fields)} fields, the header "
                               f"{len(self.table.header)}", source=self.table.source,
                               line=self.line, field=column,
                               expected=f"a value in column {index + 1}")
        return self.fields[index].strip()

    def optional(self, column: str | None) -> str:
        if column is None or column not in self.table.index:
            return ""
        index = self.table.index[column]
        return self.fields[index].strip() if index < len(self.fields) else ""

    def problem(self, column: str, problem: str, expected: str) -> InvalidInput:
        return InvalidInput(problem, source=self.table.source, line=self.line, field=column,
                            expected=expected)


@dataclass
class CsvTable:
    source: str
    header: list[str]
    index: dict[str, int]
    rows: list[CsvRow]

    def require(self, columns: Sequence[str], what: str, hint: str | None = None) -> None:
        """Every column in ``columns`` must be in the header (exit 2 naming the first missing)."""
        for column in columns:
            if column not in self.index:
                shown = ", ".join(self.header[:12]) + (" ..." if len(self.header) > 12 else "")
                raise InvalidInput(f"no column '{column}'{did_you_mean(column, self.header)}",
                                   source=self.source, line=1, field=column,
                                   expected=f"{what} with a '{column}' column (the header has: "
                                            f"{shown or 'nothing'})", hint=hint)


def read_csv(path: Path, delimiter: str = ",", source: str | None = None) -> CsvTable:
    """The whole file; unreadable, undecodable or malformed input is an :class:`InvalidInput`."""
    shown = source or str(path)
    if not path.is_file():
        raise InvalidInput("no such file" if not path.exists() else "not a file", source=shown,
                           expected="a CSV file (paths are relative to the stack file)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read: {exc.strerror or exc}", source=shown,
                           expected="a readable CSV file") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", source=shown,
                           line=data[: exc.start].count(b"\n") + 1,
                           expected="a UTF-8 CSV export") from None
    if "\x00" in text:
        raise InvalidInput("a NUL byte in the file", source=shown,
                           line=text[: text.index("\x00")].count("\n") + 1, expected="text")
    csv.field_size_limit(MAX_FIELD_BYTES)
    table = CsvTable(shown, [], {}, [])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InvalidInput(f"malformed CSV: {exc}", source=shown, line=reader.line_num,
                               expected=f"comma-separated values with a header row "
                                        f"(delimiter {delimiter!r})") from None
        if not any(f.strip() for f in fields):
            continue
        if not table.header:
            table.header = [f.strip() for f in fields]
            for i, name in enumerate(table.header):
                table.index.setdefault(name, i)
            continue
        table.rows.append(CsvRow(reader.line_num, fields, table))
    if not table.header:
        raise InvalidInput("empty file", source=shown, line=1,
                           expected="a header row, then one row per payment")
    return table
