"""Shared test vectors: cases the Python evaluator computed, for other implementations to match.

A browser worker evaluates the JSON form with a TypeScript interpreter
(``apps/playground/lib/expr``); it must give what ``evaluate`` gives. A vector is one JSON
object, made here from an expression and a table by running ``evaluate``::

    {"id": 7, "expr": <to_dict(expr)>, "rows": 3, "type": "i64",
     "columns": [{"name": "l1", "type": "i64", "values": ["-9223372036854775808", null, "7"]}],
     "expected": {"values": ["1", null, "-2"]}}      # or {"error": "OutOfRangeError"}

Values are JSON-safe and exact: integers as decimal strings (JavaScript numbers hold 53 bits),
f64 as numbers or ``"NaN"``/``"-NaN"`` (the sign bit set)/``"Infinity"``/``"-Infinity"``, dates
as ``YYYY-MM-DD`` and timestamps as ``YYYY-MM-DDTHH:MM:SS.ffffff`` (years outside 1..9999 as
``-000044``/``+010000``, computed from day counts, not ``datetime``), bool8 and utf8 as they
are. ``expected.error`` is the class name of the ``PlatformError`` raised (``OutOfRangeError``,
``DivisionByZeroError``, ``ConversionError``, ``EvaluationError``, ``ExpressionError``).
Only the columns the expression uses are written.

The cases themselves are drawn by the property test's generator (``tests/expr_vectors.py``
over ``tests/expr_strategies.py``), whose expressions ``tests/test_expr_property.py`` checks
against DuckDB; this module only encodes and evaluates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

import pyarrow as pa

from platform_core.errors import PlatformError
from platform_core.schema import Schema

from .checker import check
from .evaluate import evaluate
from .nodes import Column, Expr, walk
from .serde import to_dict

__all__ = ["VECTOR_TYPES", "decode_value", "encode_values", "iso_date", "iso_timestamp", "vector"]

#: The column and result types vectors carry (the browser interpreter's; see ``browser``).
VECTOR_TYPES: Final = frozenset({"i32", "i64", "f64", "bool8", "utf8", "date", "timestamp[us]"})
_DAY_US: Final = 86_400_000_000


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of days since 1970-01-01, proleptic Gregorian, astronomical years."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def iso_date(days: int) -> str:
    y, m, d = _civil(days)
    year = f"{y:04d}" if 0 <= y <= 9999 else f"{'-' if y < 0 else '+'}{abs(y):06d}"
    return f"{year}-{m:02d}-{d:02d}"


def iso_timestamp(micros: int) -> str:
    days, of_day = divmod(micros, _DAY_US)
    seconds, fraction = divmod(of_day, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{iso_date(days)}T{clock}.{fraction:06d}"


def _encode(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind in ("i32", "i64"):
        return str(value)
    if kind == "f64":
        if math.isnan(value):
            return "-NaN" if math.copysign(1.0, value) < 0 else "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return float(value)
    if kind == "date":
        return iso_date(value)
    if kind == "timestamp[us]":
        return iso_timestamp(value)
    return value


def encode_values(values: pa.Array | pa.ChunkedArray, kind: str) -> list[Any]:
    """An Arrow column of a vector type as JSON-safe values (see the module docstring)."""
    if kind == "date":
        values = values.cast(pa.int32())
    elif kind == "timestamp[us]":
        values = values.cast(pa.int64())
    elif kind == "utf8" and not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return [_encode(v, kind) for v in values.to_pylist()]


def decode_value(value: Any, kind: str) -> Any:
    """The inverse of the encoding for numbers (floats keep the sign of NaN)."""
    if value is None:
        return None
    if kind in ("i32", "i64"):
        return int(value)
    if kind == "f64" and isinstance(value, str):
        special = {"NaN": math.nan, "-NaN": -math.nan, "Infinity": math.inf}
        return special.get(value, -math.inf)
    return value


def _used_columns(expr: Expr) -> list[str]:
    seen: dict[str, None] = {}
    for node in walk(expr):
        if isinstance(node, Column):
            seen.setdefault(node.name, None)
    return list(seen)


def vector(expr: Expr, table: pa.Table, id: int) -> dict[str, Any]:
    """One vector: ``expr`` over ``table`` as the Python evaluator computes it."""
    schema = Schema.from_arrow(table.schema)
    columns = []
    for name in _used_columns(expr):
        kind = str(schema.field(name).type)
        if kind not in VECTOR_TYPES:
            raise ValueError(f"column {name!r} of type {kind} has no vector encoding")
        columns.append({"name": name, "type": kind, "values": encode_values(table[name], kind)})
    out: dict[str, Any] = {"id": id, "expr": to_dict(expr), "rows": table.num_rows}
    out["columns"] = columns
    try:
        kind = str(check(expr, schema))
        out["type"] = kind
        result = evaluate(expr, table)
    except PlatformError as exc:
        out["expected"] = {"error": type(exc).__name__}
        return out
    out["expected"] = {"values": encode_values(result, kind)}
    return out


def error_kinds(vectors: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many vectors expect each error kind (``"values"`` for the others)."""
    counts: dict[str, int] = {}
    for v in vectors:
        key = v["expected"].get("error", "values")
        counts[key] = counts.get(key, 0) + 1
    return counts
