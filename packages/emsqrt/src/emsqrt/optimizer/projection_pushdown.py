"""Rule: scans decode only the columns something above them reads."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .. import plan as lp
from ..resolve import SchemaResolver, right_output_names
from ._exprs import columns_of

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["apply"]

Need = set[str] | None  # None: every column


def _prune(node: lp.Node, need: Need, resolver: SchemaResolver) -> lp.Node:
    def down(child: lp.Node, n: Need) -> lp.Node:
        return _prune(child, n, resolver)

    if isinstance(node, lp.Scan):
        if need is None:
            return node
        full = resolver.schema(replace(node, columns=None))
        cols = tuple(c for c in full.names if c in need)
        if not cols:  # only the rows count: the cheapest column holds them
            read = columns_of(node.predicate) if node.predicate is not None else set()
            cols = (_row_holder(full, read),)
        return replace(node, columns=cols)
    if isinstance(node, lp.Filter):
        n = None if need is None else need | columns_of(node.predicate)
        return replace(node, input=down(node.input, n))
    if isinstance(node, lp.Project):
        return replace(node, input=down(node.input, {i for _, i in node.columns}))
    if isinstance(node, lp.Map):
        if need is None:
            return replace(node, input=down(node.input, None))
        made = {n for n, _ in node.columns}
        used = set().union(*(columns_of(e) for _, e in node.columns))
        return replace(node, input=down(node.input, (need - made) | used))
    if isinstance(node, lp.Sort | lp.TopK):
        n = None if need is None else need | {k.column for k in node.keys}
        if n is None:
            return replace(node, input=down(node.input, None))
        if isinstance(node, lp.TopK):
            n |= set(node.per)
        child = down(node.input, n)
        names = resolver.schema(child).names
        if any(c not in n for c in names):
            # what the pruned input still has beyond the need (an Arrow input, a source
            # leaf of a distributed plan) is not carried through the sort: the rows kept
            # and their order are the same, each row narrower (a top-n per group over a
            # whole dataset then reads, ships and merges only these columns)
            child = lp.Project(child, tuple((c, c) for c in names if c in n))
        return replace(node, input=child)
    if isinstance(node, lp.Aggregate):
        if node.mode == "final":  # its input is the partial states: every column is one
            return replace(node, input=down(node.input, None))
        n = set(node.group_by)
        for spec in node.aggregates:
            for arg in spec.agg.args:
                n |= columns_of(arg)
        return replace(node, input=down(node.input, n))
    if isinstance(node, lp.Join):
        lschema, rschema = resolver.schema(node.left), resolver.schema(node.right)
        renames = right_output_names(node, lschema, rschema)
        if need is None or any(old != new for old, new in renames):
            return replace(node, left=down(node.left, None), right=down(node.right, None))
        lneed = (need & set(lschema.names)) | set(node.left_keys)
        rneed = {old for old, new in renames if new in need} | set(node.right_keys)
        return replace(node, left=down(node.left, lneed), right=down(node.right, rneed))
    if isinstance(node, lp.Limit):
        return replace(node, input=down(node.input, need))
    if isinstance(node, lp.Union):
        inputs = tuple(down(i, need) for i in node.inputs)
        if need is None:
            return replace(node, inputs=inputs)
        # Inputs prune unevenly (a scan does, given batches do not): project every input to
        # the same columns so the union's inputs still match.
        full = resolver.schema(node).names
        keep = [c for c in full if c in need]
        if not keep:  # only the rows count: the column the inputs kept, if one alike
            kept = {tuple(resolver.schema(i).names) for i in inputs}
            one = next(iter(kept)) if len(kept) == 1 else ()
            keep = list(one) if len(one) == 1 else [_row_holder(resolver.schema(node), set())]
        same = tuple((c, c) for c in keep)
        return replace(
            node,
            inputs=tuple(
                i if resolver.schema(i).names == keep else lp.Project(i, same) for i in inputs
            ),
        )
    if isinstance(node, lp.Sink):
        return replace(node, input=down(node.input, None))
    return node


def _row_holder(schema: pa.Schema, read: set[str]) -> str:
    """The column a scan keeps when nothing above reads a column (``count(*)``): one its
    own predicate ``read``s already, else the narrowest fixed-width one, else the first.
    Decoding a string column only to count its rows made a filtered count 40% slower."""
    names = schema.names
    if not names:
        raise ValueError("a scan of no columns")

    def cost(name: str) -> tuple[int, int]:
        t = schema.field(name).type
        try:
            width = t.bit_width
        except ValueError:  # variable width: strings, lists
            width = 1 << 20
        return (0 if name in read else 1, width)

    return str(min(names, key=cost))  # the first of the cheapest


def apply(node: lp.Node, resolver: SchemaResolver) -> lp.Node:
    return _prune(node, None, resolver)
