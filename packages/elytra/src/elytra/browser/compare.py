"""Comparing a browser's result with a trusted re-run of the same task.

Rows are compared as multisets (a partial aggregate's groups come in any order): both tables
are sorted by every column, then compared column by column: integers, strings, decimals,
dates and booleans exactly, floats within a relative 1e-9 (NaN equals NaN, NULL equals NULL).
"""

from __future__ import annotations

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


def _first_difference(got: pa.ChunkedArray, want: pa.ChunkedArray, floats: bool) -> int | None:
    """The first row where the columns differ (NULL equals NULL; with ``floats``, NaN equals
    NaN and values within ``REL_TOLERANCE`` of each other are equal), or None: vectorised."""
    both_null = pc.and_(pc.is_null(got), pc.is_null(want))
    same = pc.fill_null(pc.equal(got, want), False)
    if floats:
        scale = pc.max_element_wise(pc.abs(got), pc.abs(want))
        gap = pc.abs(pc.subtract(got, want))
        # a finite gap only: inf against -inf (or a finite value) is a difference, however big
        # the tolerance of an infinite scale would be
        near = pc.and_(pc.is_finite(gap), pc.less_equal(gap, pc.multiply(scale, REL_TOLERANCE)))
        both_nan = pc.and_(pc.is_nan(got), pc.is_nan(want))
        same = pc.or_(same, pc.fill_null(pc.or_(near, both_nan), False))
    ok = pc.or_(same, both_null)
    if pc.all(ok).as_py() is not False:
        return None
    return int(pc.index(ok, False).as_py())


def same_result(got: pa.Table, want: pa.Table) -> str | None:
    """None if ``got`` equals ``want`` (see the module docstring), else what differs."""
    if got.schema.names != want.schema.names or got.schema.types != want.schema.types:
        return f"schema {got.schema} where {want.schema} was expected"
    if got.num_rows != want.num_rows:
        return f"{got.num_rows} rows where {want.num_rows} were expected"
    a, b = _sorted(got), _sorted(want)
    for name, typ in zip(a.column_names, a.schema.types, strict=True):
        x, y = a.column(name), b.column(name)
        if pa.types.is_nested(typ):  # no element-wise kernels: compare as Python values
            differs = next((i for i, (u, v) in enumerate(zip(x, y, strict=True)) if u != v), None)
        else:
            differs = _first_difference(x, y, pa.types.is_floating(typ))
        if differs is not None:
            u, v = x[differs].as_py(), y[differs].as_py()
            return f"column {name!r} row {differs}: {u!r} where {v!r} was expected"
    return None
