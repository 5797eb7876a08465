"""Tabular output of every CLI: a rich table on a terminal by default, ``--json`` or ``--csv``.

Cell values are printed as they are: nothing in a value is read as rich markup (a value
``[[null, 1]]`` prints as ``[[null, 1]]``), NULL is shown as a dim ``NULL`` (and as an empty
field in CSV, ``null`` in JSON), and each column's header names its type as
:func:`platform_core.types.type_name` does.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from platform_core.errors import BadInputError
from platform_core.jsoncells import json_cell, json_rows

if TYPE_CHECKING:  # pyarrow and rich load when a table is printed, not for a command's --help
    import pyarrow as pa
    from rich.console import Console

__all__ = [
    "AS_CSV",
    "AS_JSON",
    "Column",
    "OutputFormat",
    "output_format",
    "print_rows",
    "print_table",
    "visible",
]

PIPED_WIDTH = 4096
"""Console width when stdout is a pipe or file: rows stay whole lines."""


class OutputFormat(enum.Enum):
    """How a command prints a result."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


@dataclass(frozen=True)
class Column:
    """A result column: its name and its type's name (empty when unknown)."""

    name: str
    type: str = ""


AS_JSON: Any = typer.Option("--json", help="Print JSON instead of a table.")
AS_CSV: Any = typer.Option("--csv", help="Print CSV instead of a table.")
"""The two options of every command that prints a result: ``as_json: Annotated[bool, AS_JSON]``."""


def output_format(as_json: bool, as_csv: bool) -> OutputFormat:
    """The format ``--json`` / ``--csv`` ask for (a table when neither is given)."""
    if as_json and as_csv:
        raise BadInputError("give --json or --csv, not both")
    if as_json:
        return OutputFormat.JSON
    return OutputFormat.CSV if as_csv else OutputFormat.TABLE


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` for a terminal: control characters (ESC, BEL, ...) shown as ``\\x1b``, never
    sent, so a value cannot move the cursor, clear the screen or retitle the window."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _csv_field(value: Any) -> str:
    """One CSV field as DuckDB writes it: NULL empty, an empty string ``""`` (so the two stay
    apart when read back), quoted when it holds a comma, quote, line break or edge space."""
    if value is None:
        return ""
    text = _text(json_cell(value))
    if text == "" or any(c in text for c in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def print_rows(
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[Any]],
    fmt: OutputFormat = OutputFormat.TABLE,
    *,
    console: Console | None = None,
    title: str | None = None,
) -> None:
    """Print ``rows`` (JSON-ready values, ``None`` for NULL) under ``columns`` in ``fmt``."""
    from rich.table import Table
    from rich.text import Text

    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    out = console or _console()
    if fmt is OutputFormat.JSON:
        body = {
            "columns": [{"name": c.name, "type": c.type} for c in cols],
            "rows": [[json_cell(v) for v in row] for row in rows],
        }
        out.file.write(json.dumps(body, ensure_ascii=False, default=str) + "\n")
    elif fmt is OutputFormat.CSV:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.name for c in cols])
        for row in rows:
            buffer.write(",".join(_csv_field(v) for v in row) + "\n")
        out.file.write(buffer.getvalue())
    else:
        table = Table(title=title, show_edge=False, highlight=False)
        for c in cols:
            header = Text(visible(c.name), style="bold")
            if c.type:
                header.append(f"\n{c.type}", style="dim")
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(
                *(
                    Text("NULL", style="dim italic")
                    if v is None
                    else Text(visible(_text(json_cell(v))))
                    for v in row
                )
            )
        out.print(table)
        count = len(rows)
        out.print(Text(f"({count} row{'s' if count != 1 else ''})", style="dim"))
    out.file.flush()


def _console() -> Console:
    """Stdout; when it is not a terminal, wide enough that no cell is folded."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console(soft_wrap=False)
    return Console(soft_wrap=False, width=PIPED_WIDTH, force_terminal=False)


def print_table(
    table: pa.Table,
    fmt: OutputFormat = OutputFormat.TABLE,
    *,
    console: Console | None = None,
    title: str | None = None,
) -> None:
    """Print an Arrow table (types named as ``platform_core`` names them)."""
    from platform_core.types import type_name

    cols = [Column(f.name, type_name(f.type)) for f in table.schema]
    print_rows(cols, json_rows(table), fmt, console=console, title=title)
