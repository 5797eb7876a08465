"""Arrow values as JSON can hold them: the one encoding of every JSON query and job result.

NaN and the infinities, which JSON has no number for, become the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (as protobuf's JSON mapping writes them), nested ones too;
decimals stay exact (whole ones as numbers, others as strings); bytes are hex; dates and times
ISO 8601; durations seconds. ``json.dumps(..., allow_nan=False)`` then never refuses a cell.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only named: a CLI printing rows need not load pyarrow for --help
    import pyarrow as pa

__all__ = ["json_cell", "json_rows"]


def json_cell(value: Any) -> Any:
    """One cell (a Python value from ``to_pylist``) as JSON can hold it."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list | tuple):
        return [json_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_cell(v) for k, v in value.items()}
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def json_rows(table: pa.Table) -> list[list[Any]]:
    """The table's rows as lists of JSON-ready cells (converted column by column)."""
    columns = [[json_cell(v) for v in _values(col)] for col in table.columns]
    return [list(r) for r in zip(*columns, strict=True)] if columns else []


def _values(column: pa.ChunkedArray) -> list[Any]:
    """The column's Python values; a date or timestamp column holding one outside Python's
    years 1 to 9999 (DuckDB reads ``0001-01-01 00:00:00+02``: 1 BC in UTC) as Arrow's ISO
    text of each value instead (``0000-12-31 22:00:00.000000Z``)."""
    try:
        return list(column.to_pylist())
    except OverflowError:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)):
            raise
        return list(pc.cast(column, pa.string()).to_pylist())
