"""The platform's one CSV reader: DuckDB's ``read_csv`` defaults, streamed in bounded blocks.

Every package reads CSV through here, so a file means the same thing everywhere. The rules,
each checked against DuckDB in ``tests/test_csv.py``:

- Only an empty field is NULL, quoted (``""``) or not; ``NA``, ``null``, ``nan``, ``#N/A``,
  ``NULL`` and ``None`` are values (``nan`` is NaN in a float column, text elsewhere). A blank
  line of a one-column file is such a field (a NULL row); with more columns it is skipped.
- Quoted fields may hold delimiters, doubled quotes and newlines; rows may cross read blocks.
  One row must fit in a block (``block_bytes``); a longer row fails with a message saying so.
- Header names as DuckDB makes them: an empty name becomes ``column<i>``, a repeated name
  ``<name>_<n>``.
- Types are sniffed from a sample (``sample_bytes``) as DuckDB's sniffer picks them:
  ``bool`` (true/false, t/f, yes/no in any case), ``int64`` (no ``+``, no leading zero:
  ``007`` stays text), ``float64`` (decimal or exponent notation, ``nan``), ``date``
  (``YYYY-MM-DD``), ``timestamp[us]`` (``YYYY-MM-DD[T ]hh:mm[:ss[.ffffff]]``),
  ``timestamp[us, UTC]`` (the same, each with ``Z`` or an offset), else text.
  A column mixing ints and floats is float; any other mix is text.

Fields are read as text by pyarrow's streaming reader and converted a whole column at a time
with ``pyarrow.compute``, so memory holds one block and the conversion is vectorised.
"""

from __future__ import annotations

import csv as _pycsv
import os
import re
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from platform_core.errors import BadInputError

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "DEFAULT_SAMPLE_BYTES",
    "CsvError",
    "convert_column",
    "csv_column_names",
    "line_of_row",
    "read_csv_batches",
    "sniff_csv_schema",
    "write_csv_bytes",
]

#: Bytes sniffed for types (the first block of the file).
DEFAULT_SAMPLE_BYTES: Final = 1 << 20
#: Bytes per read block; also the longest row a file may have.
DEFAULT_BLOCK_BYTES: Final = 1 << 20

_TRUE: Final = ("true", "t", "yes", "1")
_FALSE: Final = ("false", "f", "no", "0")
_SNIFF_BOOL: Final = ("true", "t", "yes", "false", "f", "no")
# DuckDB's sniffer: no sign but "-", no leading zero before a digit.
_INT: Final = r"^-?[0-9]+$"
_FLOAT: Final = r"(?i)^-?([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?$|^-?(nan|inf|infinity)$"
_INFINITY: Final = r"(?i)^-?inf(inity)?$"
_LEADING_ZERO: Final = r"^0[0-9]"
_DATE: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?$"
_TIMESTAMP_TZ: Final = _TIMESTAMP[:-1] + r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_STRADDLE: Final = re.compile(r"straddl|block", re.I)


class CsvError(BadInputError):
    """A CSV file cannot be read: a malformed row, a value that does not fit its column's
    type, or a row longer than a read block. ``details`` carries ``line`` when known."""


def _path(source: str | os.PathLike[str]) -> Path:
    return Path(source)


def _dedupe(raw: Sequence[str]) -> list[str]:
    """DuckDB's header names: empty -> ``column<i>``; a repeat of ``n`` -> ``n_<k>`` for its
    k-th repeat, itself deduplicated the same way if taken (``a,a_1,a`` -> ``a, a_1, a_1_1``)."""
    # Compared case-insensitively, as DuckDB compares identifiers: ``a,a,A`` -> ``a, a_1, A_2``
    # (a column ``A`` beside ``a`` could never be named in SQL).
    seen: set[str] = set()
    repeats: dict[str, int] = {}

    def fresh(name: str) -> str:
        while name.lower() in seen:
            key = name.lower()
            repeats[key] = repeats.get(key, 0) + 1
            name = f"{name}_{repeats[key]}"
        return name

    names = []
    for i, name in enumerate(raw):
        out = fresh(name if name != "" else f"column{i}")
        seen.add(out.lower())
        names.append(out)
    return names


def _raw_names(path: Path, delimiter: str, block_bytes: int) -> list[str]:
    bad: list[Any] = []

    def invalid(row: Any) -> str:
        bad.append(row)
        return "error"

    read = pa_csv.ReadOptions(block_size=max(block_bytes, 1 << 16), use_threads=False)
    parse = pa_csv.ParseOptions(
        delimiter=delimiter, newlines_in_values=True, invalid_row_handler=invalid
    )
    convert = pa_csv.ConvertOptions(null_values=[""], strings_can_be_null=True)
    try:
        with pa_csv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        ) as reader:
            return list(reader.schema.names)
    except pa.ArrowInvalid as exc:
        raise _parse_error(
            path, str(exc), block_bytes, bad[0] if bad else None, delimiter, 0
        ) from None


def csv_column_names(
    path: str | os.PathLike[str], *, delimiter: str = ",", block_bytes: int = DEFAULT_BLOCK_BYTES
) -> list[str]:
    """The file's column names as DuckDB's ``read_csv`` names them."""
    return _dedupe(_raw_names(_path(path), delimiter, block_bytes))


def _text_batches(
    path: Path,
    delimiter: str,
    block_bytes: int,
    columns: Sequence[str] | None,
    *,
    use_threads: bool,
    memory_pool: pa.MemoryPool | None,
) -> tuple[list[str], Generator[pa.RecordBatch, None, None]]:
    """All (or ``columns``) fields as text, renamed to DuckDB's names; NULL only if empty."""
    raw = _raw_names(path, delimiter, block_bytes)
    names = _dedupe(raw)
    wanted, given, include = _columns_to_read(path, raw, names, columns)
    unique = len(set(raw)) == len(raw)
    bad: list[Any] = []

    def invalid(row: Any) -> str:
        bad.append(row)
        return "error"

    # A Python file object: Arrow's own file input reads ahead (emsqrt measured a 2.5 MB pool
    # peak against 0.4 MB for 64 KiB blocks).
    handle = open(path, "rb")  # noqa: SIM115 - closed with the reader
    try:
        reader = pa_csv.open_csv(
            handle,
            memory_pool=memory_pool,
            read_options=pa_csv.ReadOptions(
                block_size=block_bytes,
                use_threads=use_threads,
                column_names=None if unique else names,
                skip_rows=0 if unique else 1,
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=True,
                invalid_row_handler=invalid,
                # DuckDB reads a blank line of a one-column file as a NULL row (it is an
                # empty field) and skips it when there are more columns (too few fields).
                ignore_empty_lines=len(raw) > 1,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(given, pa.string()),
                include_columns=include,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,  # DuckDB: "" is NULL too
            ),
        )
    except pa.ArrowInvalid as exc:
        handle.close()
        first_bad = bad[0] if bad else None
        raise _parse_error(path, str(exc), block_bytes, first_bad, delimiter, 0) from None
    except BaseException:
        handle.close()
        raise

    def batches() -> Generator[pa.RecordBatch, None, None]:
        rows = 0
        try:
            for batch in reader:
                batch = pa.RecordBatch.from_arrays(batch.columns, names=wanted)
                rows += batch.num_rows
                yield batch
        except pa.ArrowInvalid as exc:
            first_bad = bad[0] if bad else None
            raise _parse_error(path, str(exc), block_bytes, first_bad, delimiter, rows) from None
        finally:
            reader.close()
            handle.close()

    return wanted, batches()


def _columns_to_read(
    path: Path, raw: list[str], names: list[str], columns: Sequence[str] | None
) -> tuple[list[str], list[str], list[str]]:
    """``(wanted, given, include)``: the columns asked for (checked), the names Arrow is to
    give the header's columns (``raw`` itself when no name repeats) and the ones it reads."""
    wanted = list(names) if columns is None else list(columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise CsvError(
            f'column "{missing[0]}" is not in the CSV file "{path.name}" '
            f"(its columns: {', '.join(names)})",
            column=missing[0],
        )
    # Arrow picks columns by name: with repeated names, give it DuckDB's names and skip the
    # header row (a row count, so a name must not hold a newline then).
    unique = len(set(raw)) == len(raw)
    if not unique and any("\n" in n or "\r" in n for n in raw):
        raise CsvError(
            f'the header of "{path.name}" repeats a column name and has a line break inside '
            "a quoted name; rename the columns"
        )
    given = raw if unique else names
    return wanted, given, [given[names.index(c)] for c in wanted]


def _parse_error(
    path: Path, message: str, block_bytes: int, row: Any, delimiter: str, rows_before: int
) -> CsvError:
    if row is not None:
        line = _line_of_bad_row(path, delimiter, rows_before, row.expected_columns)
        where = f"line {line}" if line is not None else "a row"
        return CsvError(
            f"{where} is malformed: expected {row.expected_columns} columns, found "
            f"{row.actual_columns}: {row.text[:80]!r}; fix the row or the delimiter",
            line=line,
        )
    if _STRADDLE.search(message):
        return CsvError(
            f"a CSV row is longer than the {block_bytes}-byte read block (or a quote is never "
            f"closed); close the quote, or read with a larger block ({message})",
            read_block=block_bytes,
        )
    return CsvError(f"malformed CSV: {message}")


def _records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record, header included (error paths only)."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = _pycsv.reader(f, delimiter=delimiter)
        start = 1
        for record in reader:
            yield start, record
            start = reader.line_num + 1


def _line_of_bad_row(path: Path, delimiter: str, rows_before: int, expected: int) -> int | None:
    """The line of the first record after ``rows_before`` data rows with a wrong field count."""
    for i, (line, record) in enumerate(_records(path, delimiter)):
        if i > rows_before and len(record) != expected:
            return line
    return None


def line_of_row(path: str | os.PathLike[str], row: int, *, delimiter: str = ",") -> int | None:
    """The 1-based line where data row ``row`` (0-based, after the header) starts."""
    for i, (line, _) in enumerate(_records(Path(path), delimiter)):
        if i == row + 1:
            return line
    return None


# --- type sniffing ---------------------------------------------------------------------------


def _all(mask: pa.Array) -> bool:
    return bool(pc.all(mask, skip_nulls=True).as_py() is not False)


def _casts(values: pa.Array, target: pa.DataType) -> bool:
    try:
        pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _sniff_column(values: pa.Array) -> pa.DataType:
    """DuckDB's sniffed type for a column of text (NULLs ignored; all NULL is text)."""
    present = values.drop_null()
    if len(present) == 0:
        return pa.string()
    if _all(pc.is_in(pc.utf8_lower(present), value_set=pa.array(_SNIFF_BOOL))):
        return pa.bool_()
    no_leading_zero = _all(pc.invert(pc.match_substring_regex(present, _LEADING_ZERO)))
    if no_leading_zero and _all(pc.match_substring_regex(present, _INT)):
        if _casts(present, pa.int64()):
            return pa.int64()
        return pa.float64()  # beyond int64: DuckDB says HUGEINT, the vocabulary has none
    # DuckDB's sniffer takes a leading "inf" for a date and then gives up on the column.
    first_inf = pc.match_substring_regex(present[:1], _INFINITY)[0].as_py()
    floats = no_leading_zero and not first_inf
    floats = floats and _all(pc.match_substring_regex(present, _FLOAT))
    if floats and _casts(present, pa.float64()):
        return pa.float64()
    if _all(pc.match_substring_regex(present, _DATE)) and _casts(present, pa.date32()):
        return pa.date32()
    if _all(pc.match_substring_regex(present, _TIMESTAMP)) and _casts(present, pa.timestamp("us")):
        return pa.timestamp("us")
    if _all(pc.match_substring_regex(present, _TIMESTAMP_TZ)):
        utc = pa.timestamp("us", "UTC")
        if _casts(present, utc):
            return utc
    return pa.string()


def sniff_csv_schema(
    path: str | os.PathLike[str],
    *,
    delimiter: str = ",",
    sample_bytes: int = DEFAULT_SAMPLE_BYTES,
) -> pa.Schema:
    """Column names and types as DuckDB's sniffer gives them, from the first ``sample_bytes``
    (see the module docstring for the rules). Raises ``CsvError`` if the sample is malformed."""
    file = _path(path)
    names, batches = _text_batches(
        file, delimiter, sample_bytes, None, use_threads=False, memory_pool=None
    )
    try:
        first = next(batches, None)
    finally:
        batches.close()
    if first is None:
        return pa.schema([pa.field(n, pa.string()) for n in names])
    return pa.schema([pa.field(n, _sniff_column(first.column(n))) for n in names])


# --- conversion ------------------------------------------------------------------------------


def _to_bool(values: pa.Array) -> pa.Array:
    lower = pc.utf8_lower(values)
    yes = pc.is_in(lower, value_set=pa.array(_TRUE))
    no = pc.is_in(lower, value_set=pa.array(_FALSE))
    if not _all(pc.or_(pc.or_(yes, no), pc.is_null(values))):
        raise pa.ArrowInvalid("not a boolean")
    return pc.if_else(pc.is_null(values), pa.scalar(None, pa.bool_()), yes)


def convert_column(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Text fields to ``target`` the way DuckDB casts them; ``pa.ArrowInvalid`` if one does not fit."""
    if pa.types.is_string(target):
        return values
    if pa.types.is_boolean(target):
        return _to_bool(values)
    return pc.cast(values, target)


def _first_bad(values: pa.Array, target: pa.DataType) -> tuple[int, str]:
    """Index and text of the first value that does not convert (error path only)."""
    lo, hi = 0, len(values)
    while hi - lo > 1:  # bisect on vectorised conversions: log2(n) casts
        mid = (lo + hi) // 2
        try:
            convert_column(values.slice(lo, mid - lo), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
        else:
            lo = mid
    return lo, str(values[lo].as_py())


def read_csv_batches(
    path: str | os.PathLike[str],
    schema: pa.Schema,
    *,
    delimiter: str = ",",
    columns: Sequence[str] | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    use_threads: bool = False,
    memory_pool: pa.MemoryPool | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the file as batches of ``schema`` (or its ``columns``), one block at a time.

    ``schema`` names the file's columns (as ``csv_column_names``) with the types to read them
    as, usually from ``sniff_csv_schema``. A value that does not fit raises ``CsvError`` naming
    the column, the value and its line.
    """
    file = _path(path)
    wanted = list(schema.names) if columns is None else list(columns)
    out = pa.schema([schema.field(c) for c in wanted])
    _, texts = _text_batches(
        file, delimiter, block_bytes, wanted, use_threads=use_threads, memory_pool=memory_pool
    )
    rows = 0
    try:
        for batch in texts:
            arrays = []
            for field, values in zip(out, batch.columns, strict=True):
                try:
                    arrays.append(convert_column(values, field.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    at, text = _first_bad(values, field.type)
                    line = line_of_row(file, rows + at, delimiter=delimiter)
                    where = f"line {line}" if line is not None else f"data row {rows + at + 1}"
                    raise CsvError(
                        f'{where}: column "{field.name}": {text!r} is not {field.type}',
                        line=line,
                        column=field.name,
                        value=text,
                    ) from None
            rows += batch.num_rows
            yield pa.RecordBatch.from_arrays(arrays, schema=out)
    finally:
        texts.close()


def write_csv_bytes(table: pa.Table, *, instead: str) -> bytes:
    """``table`` as CSV (pyarrow's writer: a header, strings quoted, NULL empty); a column
    CSV cannot hold (lists, structs) is a ``BadInputError`` saying what to use ``instead``."""
    sink = pa.BufferOutputStream()
    try:
        pa_csv.write_csv(table, sink)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BadInputError(f"the result cannot be written as CSV ({exc}); {instead}") from None
    return bytes(sink.getvalue().to_pybytes())
