"""How a join's two sides meet: the type both sides' keys are compared in, which key types can
be compared at all, and the names the right side's other columns take in the output.

One module below both the schema resolver (``emsqrt.resolve``, which types a join's output)
and the join operator (``emsqrt.physical.join``, which runs it), so neither imports the other
for these rules. ``emsqrt.physical.join.join_key_type`` and
``emsqrt.resolve.right_output_names`` stay importable where they were.
"""

from __future__ import annotations

import pyarrow as pa

from . import plan as lp

__all__ = ["join_key_type", "joinable", "right_output_names"]


def join_key_type(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type both sides' keys are compared (and hashed) in."""
    if a == b:
        return a
    if pa.types.is_floating(a) or pa.types.is_floating(b):
        return pa.float64()
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    return pa.string()


def joinable(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether a key of type ``a`` can be compared with one of type ``b``."""
    if a == b:
        return True
    num = (pa.types.is_integer, pa.types.is_floating)
    if any(f(a) for f in num) and any(f(b) for f in num):
        return True
    return bool(pa.types.is_string(a) and pa.types.is_string(b))


def right_output_names(node: lp.Join, left: pa.Schema, right: pa.Schema) -> list[tuple[str, str]]:
    """``(right column, output name)`` for the right's non-key columns."""
    taken = set(left.names)
    out = []
    for name in right.names:
        if name in node.right_keys:
            continue
        new = name
        while new in taken:
            new += "_right"
        taken.add(new)
        out.append((name, new))
    return out
