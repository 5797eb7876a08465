"""A broadcast side cut to the key range of the task's chunks (join pruning by statistics).

Every task of a broadcast join reads the small side whole and builds its hash table from
all of it. A task's chunks hold a range of the join key, from the lake's statistics (each
chunk's min and max, in its manifest); a small-side row outside that range matches no row of
the task. Where data is clustered by the key, as a fact table loaded in key order is, each
task then reads and hashes only its share: TPC-H's lineitem and orders are both in order
key order, and q03's tasks read a third of orders each (206-261 -> 170-222 ms a task on one
DuckDB thread, measured at SF 1). Where the keys are spread, the range is the whole domain
and the filter costs one comparison a row.

Only where it is sound: an inner join, a semi join, or an outer join that keeps the big
side's rows (a small-side row without a match is dropped by each); not an anti join (NOT IN
answers no row when the small side holds a NULL, which the range would drop). Only integer
keys, traced through filters, projections and renames to a column of each side's source;
anything else (a computed key, a key from another join) is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from emsqrt import plan as lp
from platform_core.expr import parse
from platform_core.expr.nodes import Column
from platform_core.expr.render import quote_identifier

from .sources import LakeSource, Source

__all__ = ["pruned_side", "source_column"]

_KEEPS_BIG = {False: ("inner", "semi", "left"), True: ("inner", "right")}
"""Join types that drop a small-side row without a match, by whether the small side is the
left one."""


def source_column(node: lp.Node, name: str, leaf: str) -> str | None:
    """The column of source ``leaf`` that column ``name`` of ``node`` holds unchanged, or
    None when it is computed, comes from elsewhere, or cannot be followed."""
    while True:
        if isinstance(node, lp.Input):
            return name if node.name == leaf and name in node.schema else None
        if isinstance(node, (lp.Filter, lp.Sort, lp.Limit)):
            node = node.input
        elif isinstance(node, lp.Project):
            found = [inp for out, inp in node.columns if out == name]
            if len(found) != 1:
                return None
            name, node = found[0], node.input
        elif isinstance(node, lp.Map):
            outs = [out for out, _ in node.columns]
            if outs.count(name) > 1:
                return None
            if name in outs:  # made here: only a plain copy of a column the input has
                at = outs.index(name)
                expr = node.columns[at][1]
                if not isinstance(expr, Column) or expr.name in outs[:at]:
                    return None
                name = expr.name
            node = node.input
        else:
            return None


def _integer(src: Source, column: str) -> bool:
    index = src.schema.get_field_index(column)
    return index >= 0 and bool(pa.types.is_integer(src.schema.field(index).type))


def pruned_side(
    join: lp.Join,
    small_left: bool,
    side: lp.Node,
    small: Source,
    big: Source,
    files: Sequence[str],
) -> lp.Node:
    """``side`` (the small side of broadcast ``join``, as the task reads it) with the rows
    whose key falls outside the range of the big side's keys in ``files`` (the task's
    chunks of ``big``) filtered out, where that is sound and the ranges are known."""
    if join.how not in _KEEPS_BIG[small_left] or not isinstance(big, LakeSource):
        return side
    big_node, small_node = (join.right, join.left) if small_left else (join.left, join.right)
    big_keys, small_keys = (
        (join.right_keys, join.left_keys) if small_left else (join.left_keys, join.right_keys)
    )
    terms = []
    for big_key, small_key in zip(big_keys, small_keys, strict=True):
        big_col = source_column(big_node, big_key, big.name)
        small_col = source_column(small_node, small_key, small.name)
        if big_col is None or small_col is None:
            continue
        if not (_integer(big, big_col) and _integer(small, small_col)):
            continue
        span = big.key_range(files, big_col)
        if span is not None:
            terms.append(f"{quote_identifier(small_key)} BETWEEN {span[0]} AND {span[1]}")
    return lp.Filter(side, parse(" AND ".join(terms))) if terms else side
