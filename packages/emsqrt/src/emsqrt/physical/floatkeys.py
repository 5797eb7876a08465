"""Float keys in the form hashing needs: SQL equality says 0.0 = -0.0 and groups every NaN
together (DuckDB), but Acero and our partition hash compare bits, so -0.0 and each NaN bit
pattern would be keys of their own."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["canonical_key"]


def canonical_key(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Float values with -0.0 as 0.0 and every NaN as one NaN; other types unchanged."""
    if not pa.types.is_floating(values.type):
        return values
    zero = pa.scalar(0.0, values.type)
    folded = pc.add(values, zero)  # -0.0 + 0.0 is +0.0 under IEEE 754
    return pc.if_else(pc.is_nan(values), pa.scalar(float("nan"), values.type), folded)
