"""Sort order with DuckDB's semantics on Arrow: NULLS FIRST/LAST per key, NaN above numbers.

Arrow puts NaN next to the nulls; DuckDB orders NaN as the largest number. Each key therefore
sorts on helper columns first: ``is null`` (placing nulls) and, for floats, ``is nan``, then
the value. The helper columns travel with spilled runs so the merge compares rows the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import plan as lp

__all__ = ["SortSpec"]

_AUX = "__emsqrt_sort_"


class SortSpec:
    """Keys of one sort: helper columns to add, Arrow sort keys, and Python row comparison."""

    def __init__(self, keys: Sequence[lp.SortKey], schema: pa.Schema) -> None:
        self.keys = tuple(keys)
        self.columns: list[tuple[str, bool]] = []  # (column, descending) in comparison order
        self.aux: list[tuple[str, str, str]] = []  # (aux name, kind, source column)
        for i, key in enumerate(self.keys):
            t = schema.field(key.column).type
            null_name = f"{_AUX}{i}_null"
            self.aux.append((null_name, "null", key.column))
            # is_null ascending puts nulls last; descending puts them first.
            self.columns.append((null_name, key.nulls_first))
            if pa.types.is_floating(t):
                nan_name = f"{_AUX}{i}_nan"
                self.aux.append((nan_name, "nan", key.column))
                self.columns.append((nan_name, key.descending))
            self.columns.append((key.column, key.descending))

    @property
    def arrow_keys(self) -> list[tuple[str, str, str]]:
        return [(c, "descending" if d else "ascending", "at_end") for c, d in self.columns]

    def augment(self, table: pa.Table) -> pa.Table:
        """The table with the helper columns appended."""
        for name, kind, source in self.aux:
            col = table.column(source)
            value = pc.is_null(col) if kind == "null" else pc.fill_null(pc.is_nan(col), False)
            table = table.append_column(name, value)
        return table

    def strip(self, table: pa.Table) -> pa.Table:
        """The table without the helper columns."""
        names = {a[0] for a in self.aux}
        return table.select([n for n in table.column_names if n not in names])

    def indices(self, table: pa.Table) -> pa.Array:
        """Sorting permutation of an augmented table."""
        return pc.sort_indices(table, sort_keys=self.arrow_keys)

    def row(self, table: pa.Table, i: int) -> tuple[Any, ...]:
        """Row ``i``'s comparison values (a few Python scalars: used per merge step, not row)."""
        out = []
        for name, _ in self.columns:
            v = table.column(name)[i].as_py()
            if isinstance(v, float) and v != v:
                v = None  # NaN: the helper column already placed it
            out.append(v)
        return tuple(out)

    def compare(self, a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
        """-1, 0 or 1 as row ``a`` sorts before, with or after row ``b``."""
        for (x, y), (_, desc) in zip(zip(a, b, strict=True), self.columns, strict=True):
            if x == y or x is None or y is None:
                continue
            c = -1 if x < y else 1
            return -c if desc else c
        return 0

    def count_le(self, table: pa.Table, bound: tuple[Any, ...]) -> int:
        """How many leading rows of a sorted table sort at or before ``bound`` (binary search)."""
        lo, hi = 0, table.num_rows
        while lo < hi:
            mid = (lo + hi) // 2
            if self.compare(self.row(table, mid), bound) <= 0:
                lo = mid + 1
            else:
                hi = mid
        return lo
