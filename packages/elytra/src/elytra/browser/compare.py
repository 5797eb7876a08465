"""Comparing a browser's result with a trusted re-run of the same task.

Rows are compared as multisets (a partial aggregate's groups come in any order): both tables
are sorted by every column, then compared column by column: integers, strings, decimals,
dates and booleans exactly, floats within a relative 1e-9 (NaN equals NaN, NULL equals NULL).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["REL_TOLERANCE", "same_result"]

REL_TOLERANCE = 1e-9


def _sorted(table: pa.Table) -> pa.Table:
    keys = [
        (name, "ascending")
        for name, typ in zip(table.column_names, table.schema.types, strict=True)
        if not (pa.types.is_nested(typ) or pa.types.is_floating(typ))
    ]
    # floats last and rounded: a float key that differs in its last bits must not reorder rows
    floats = [
        name
        for name, typ in zip(table.column_names, table.schema.types, strict=True)
        if pa.types.is_floating(typ)
    ]
    if not keys and not floats:
        return table
    rounded = table
    for name in floats:
        x = table.column(name)
        # rounding scales by 10**6: finite values near f64's maximum would overflow (and they
        # have no digits after the point to round anyway), so they are kept as they are
        small = pc.less(pc.abs(x), 1e300)
        key = pc.if_else(small, pc.round(pc.if_else(small, x, 0.0), 6), x)
        rounded = rounded.append_column(f"__sort_{name}", key)
        keys.append((f"__sort_{name}", "ascending"))
    order = pc.sort_indices(rounded, sort_keys=keys)
    return table.take(order)


def _close(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    assert isinstance(a, float)
    assert isinstance(b, float)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= REL_TOLERANCE * max(abs(a), abs(b))


def same_result(got: pa.Table, want: pa.Table) -> str | None:
    """None if ``got`` equals ``want`` (see the module docstring), else what differs."""
    if got.schema.names != want.schema.names or got.schema.types != want.schema.types:
        return f"schema {got.schema} where {want.schema} was expected"
    if got.num_rows != want.num_rows:
        return f"{got.num_rows} rows where {want.num_rows} were expected"
    a, b = _sorted(got), _sorted(want)
    for name, typ in zip(a.column_names, a.schema.types, strict=True):
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if pa.types.is_floating(typ):
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                if not _close(u, v):
                    return f"column {name!r} row {i}: {u!r} where {v!r} was expected"
        elif x != y:
            i = next(i for i, (u, v) in enumerate(zip(x, y, strict=True)) if u != v)
            return f"column {name!r} row {i}: {x[i]!r} where {y[i]!r} was expected"
    return None
