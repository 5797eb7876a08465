"""The CLI kit's table and CSV output: no terminal escapes from values, NULL kept apart from
the empty string. (Break-it tests of issue 13: each names the defect it found.)"""

from __future__ import annotations

import io

from rich.console import Console

from platform_core.cli import OutputFormat, print_rows


def _table(columns: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    print_rows(columns, rows, OutputFormat.TABLE, console=Console(file=buffer, force_terminal=True))
    return buffer.getvalue()


def test_table_never_sends_a_values_terminal_escapes() -> None:
    """A cell (any user's uploaded data) holding ESC sequences reached the terminal raw: ESC[2J
    cleared the reader's screen, ESC]0; retitled the window, and a crafted value could redraw
    what `lake query` seemed to print."""
    shown = _table(["v\x1b[31m"], [["a\x1b]0;pwned\x07b\x1b[2Jc\x9b1m"]])
    assert "\x1b[2J" not in shown
    assert "\x1b]0;" not in shown
    assert "\x9b" not in shown
    assert "\x1b[31m" not in shown.split("\n")[0].replace("\x1b[1m", "").replace("\x1b[0m", "")
    assert "\\x1b[2J" in shown  # shown, visibly


def test_csv_writes_empty_string_and_null_apart() -> None:
    """--csv wrote NULL and '' both as an empty field (DuckDB writes '' as "")."""
    buffer = io.StringIO()
    print_rows(["id", "s"], [[1, ""], [2, None]], OutputFormat.CSV, console=Console(file=buffer))
    assert buffer.getvalue() == 'id,s\n1,""\n2,\n'


def test_emsqrt_table_never_sends_a_values_terminal_escapes() -> None:
    """emsqrt's own table printer had the same hole (a Parquet value ESC[2J cleared the screen)."""
    import pyarrow as pa

    emsqrt_output = __import__("pytest").importorskip("emsqrt.output")
    buffer = io.StringIO()
    table = pa.table({"v\x1b[31m": ["a\x1b[2Jb"]})
    emsqrt_output.print_result(table, "table", Console(file=buffer, force_terminal=True))
    shown = buffer.getvalue()
    assert "\x1b[2J" not in shown
    assert "\\x1b[2J" in shown
