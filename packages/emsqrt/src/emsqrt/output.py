"""How ``emsqrt`` shows results and fails: a table, JSON or CSV on stdout; one error line.

Kept in one module so the platform's shared CLI pieces can replace it. Values are printed
literally (never as rich markup: ``[[null]]`` stays ``[[null]]``), NULL as ``NULL``, and
column types as ``platform_core`` names them (``i64``, ``utf8``, ``f64``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import typer

from platform_core import PlatformError, json_cell, json_rows

if TYPE_CHECKING:  # pyarrow and rich load with a result to print, not for `emsqrt --help`
    import pyarrow as pa
    from rich.console import Console
    from rich.text import Text

__all__ = ["Format", "fail", "print_result", "result_json", "type_name"]

Format = Literal["table", "json", "csv"]

#: Rows the table shows; JSON and CSV print every row.
TABLE_ROWS = 20


def type_name(arrow_type: pa.DataType) -> str:
    """The platform's name of a column type (``i64``), or Arrow's for one outside it."""
    from platform_core import from_arrow

    try:
        return str(from_arrow(arrow_type))
    except PlatformError:
        return str(arrow_type)


def _cell(value: Any) -> Text:
    from rich.text import Text

    from platform_core.cli.output import visible

    if value is None:
        return Text("NULL", style="dim italic")
    if isinstance(value, str):
        return Text(visible(value))  # a value's ESC sequences are shown, never sent
    return Text(visible(json.dumps(json_cell(value), ensure_ascii=False, allow_nan=False)))


def result_json(table: pa.Table) -> dict[str, Any]:
    """``{"columns": [{name, type}], "rows": [[...]], "row_count": n}``, every row."""
    return {
        "columns": [{"name": f.name, "type": type_name(f.type)} for f in table.schema],
        "rows": json_rows(table),
        "row_count": table.num_rows,
    }


def print_result(table: pa.Table, fmt: Format, out: Console) -> None:
    """Print ``table`` on ``out`` as a rich table (first rows), JSON or CSV (every row)."""
    if fmt == "json":
        out.file.write(json.dumps(result_json(table), allow_nan=False) + "\n")
        return
    if fmt == "csv":
        from platform_core import write_csv_bytes

        out.file.write(write_csv_bytes(table, instead="use --json").decode())
        return
    from rich.table import Table
    from rich.text import Text

    from platform_core.cli.output import visible

    grid = Table(show_edge=False, header_style="bold")
    for f in table.schema:
        grid.add_column(Text(f"{visible(f.name)}\n{type_name(f.type)}"), overflow="fold")
    shown = table.slice(0, TABLE_ROWS)
    for row in zip(*(c.to_pylist() for c in shown.columns), strict=True):
        grid.add_row(*(_cell(v) for v in row))
    out.print(grid)
    if table.num_rows > TABLE_ROWS:
        out.print(
            Text(f"... {table.num_rows - TABLE_ROWS:,} more rows (--json or --csv prints all)")
        )


def fail(err: Console, message: str, code: int = 2) -> NoReturn:
    """One line on stderr, ``error: <message>``, and exit ``code`` (no traceback)."""
    from rich.text import Text

    line = " ".join(message.split())
    err.print(Text(f"error: {line}", style="red"), soft_wrap=True, highlight=False)
    raise typer.Exit(code)
