"""Logical plans: frozen dataclasses, one per operator, children first.

A plan is a tree; the root is usually a :class:`Sink`, or any node when the caller collects
the result as Arrow. Expressions are ``platform_core.expr`` nodes. Plans are values: equal
plans compare equal, hash equally (``plan_hash``) and round-trip through JSON (``plan_json``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Literal

from platform_core import Schema
from platform_core.expr import Aggregate as AggExpr
from platform_core.expr import Column, Expr
from platform_core.expr import Literal as LiteralExpr

from .errors import PlanError

__all__ = [
    "AGGREGATE_MODES",
    "AggSpec",
    "Aggregate",
    "AggregateMode",
    "Filter",
    "Input",
    "Join",
    "JoinType",
    "Limit",
    "Map",
    "Node",
    "Project",
    "PyMap",
    "Scan",
    "Sink",
    "Sort",
    "SortKey",
    "TopK",
    "Union",
    "agg_name",
    "children",
    "replace_children",
]

FileFormat = Literal["csv", "jsonl", "parquet"]
JoinType = Literal["inner", "left", "right", "full", "semi", "anti"]
JOIN_TYPES: tuple[str, ...] = ("inner", "left", "right", "full", "semi", "anti")
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")


@dataclass(frozen=True)
class Node:
    """Base of every logical operator."""


@dataclass(frozen=True)
class Scan(Node):
    """Read a CSV, JSONL or Parquet file; schema given or inferred. The optimizer fills
    ``columns`` (projection pushdown) and ``predicate`` (predicate pushdown)."""

    path: str
    format: FileFormat = "csv"
    schema: Schema | None = None
    columns: tuple[str, ...] | None = None
    predicate: Expr | None = None
    delimiter: str = ","
    row_groups: tuple[int, int] | None = None
    """Parquet only: read row groups ``start`` to ``stop`` (exclusive) of the file, not all
    of it. A file smaller than one chunk is still split into several tasks this way (elytra
    cuts a part by row groups so every worker has one)."""

    def __post_init__(self) -> None:
        if self.row_groups is not None:
            rg = self.row_groups
            if (
                len(rg) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in rg)
                or not 0 <= rg[0] < rg[1]
            ):
                raise PlanError(
                    f"scan {self.path!r}: row_groups must be [start, stop] with "
                    f"0 <= start < stop, got {list(rg)!r}"
                )
            if self.format != "parquet":
                raise PlanError(
                    f"scan {self.path!r}: row_groups apply to Parquet files only, not {self.format}"
                )


@dataclass(frozen=True)
class Input(Node):
    """Batches handed to the run by the caller under ``name`` (the Arrow-in API)."""

    name: str
    schema: Schema


@dataclass(frozen=True)
class Filter(Node):
    input: Node
    predicate: Expr


@dataclass(frozen=True)
class Project(Node):
    """Keep these columns, in this order, each as ``(output name, input name)``."""

    input: Node
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Map(Node):
    """Add or replace computed columns ``(name, expression)``, evaluated left to right."""

    input: Node
    columns: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class SortKey:
    column: str
    descending: bool = False
    nulls_first: bool = False


@dataclass(frozen=True)
class Sort(Node):
    input: Node
    keys: tuple[SortKey, ...]


@dataclass(frozen=True)
class AggSpec:
    """One output column of an aggregate: its name and an aggregate call (``sum(x)``,
    ``corr(y, x)``, ... : ``platform_core.expr.AGGREGATES``)."""

    name: str
    agg: AggExpr


def _arg_name(arg: Expr) -> str:
    if isinstance(arg, Column):
        return arg.name
    if isinstance(arg, LiteralExpr) and isinstance(arg.value, int | float):
        return re.sub(r"\W+", "_", str(arg.value)).strip("_")  # quantile_cont(x, 0.9): 0_9
    return re.sub(r"\W+", "_", str(arg))


def agg_name(agg: AggExpr) -> str:
    """The output name of an aggregate given no ``AS``: ``sum_x``, ``count``,
    ``count_distinct_x``, ``quantile_cont_x_0_9`` (every argument, so two quantiles differ)."""
    if agg.arg is None:
        return agg.name
    arg = "_".join(_arg_name(a) for a in agg.args)
    return f"{agg.name}_distinct_{arg}" if agg.distinct else f"{agg.name}_{arg}"


AggregateMode = Literal["full", "partial", "final"]
AGGREGATE_MODES: tuple[str, ...] = ("full", "partial", "final")


@dataclass(frozen=True)
class Aggregate(Node):
    """Group by ``group_by`` and compute ``aggregates``.

    ``mode`` splits one aggregate across processes (the README's partial-state table):
    ``partial`` outputs each group's partial states (the keys, then ``__emsqrt_a<i>_<part>``
    columns; raw rows for DISTINCT and quantiles), ``final`` reads such states (from any
    number of partial runs, concatenated) and outputs the result. ``state_of`` is the schema
    of the rows the partial aggregate read: a final aggregate is typed against it.
    """

    input: Node
    group_by: tuple[str, ...]
    aggregates: tuple[AggSpec, ...]
    mode: AggregateMode = "full"
    state_of: Schema | None = None


@dataclass(frozen=True)
class Join(Node):
    """Equi-join: output is the left columns, then the right's non-key columns (a name the
    left already has gets ``_right``); key columns hold ``coalesce(left, right)`` as SQL's
    ``USING``. ``semi``/``anti`` output the left columns only."""

    left: Node
    right: Node
    left_keys: tuple[str, ...]
    right_keys: tuple[str, ...]
    how: JoinType = "inner"


@dataclass(frozen=True)
class Limit(Node):
    input: Node
    n: int
    offset: int = 0


@dataclass(frozen=True)
class TopK(Node):
    """The first ``n`` rows in ``keys`` order (a Sort under a Limit, fused by the optimizer);
    with ``per``, the first ``n`` of each group of equal ``per`` values (SQL's
    ``row_number() OVER (PARTITION BY per ORDER BY keys) <= n``; NULLs form one group)."""

    input: Node
    keys: tuple[SortKey, ...]
    n: int
    per: tuple[str, ...] = ()


@dataclass(frozen=True)
class Union(Node):
    """UNION ALL of inputs with the same column names (types unified)."""

    inputs: tuple[Node, ...]


@dataclass(frozen=True)
class Sink(Node):
    """Write the input to a file (atomically: a temporary file renamed into place)."""

    input: Node
    path: str
    format: FileFormat = "csv"


@dataclass(frozen=True)
class PyMap(Node):
    """A Python function over each batch (elytra's ``map_batches``, ``map``, ``flat_map``).

    ``fn`` is the pickled callable (cloudpickle), ``schema`` its output. ``mode`` is
    ``batches`` (a RecordBatch in, a RecordBatch, Table or dict of columns out), ``rows``
    (a row dict in, a row dict out) or ``flat`` (a row dict in, a list of row dicts out).
    Plans holding one are not pure JSON: they are decoded only where code may run
    (``plan_from_json(..., trusted=True)``), never from a request.
    """

    input: Node
    fn: bytes
    schema: Schema
    mode: Literal["batches", "rows", "flat"] = "batches"
    name: str = "fn"


def children(node: Node) -> tuple[Node, ...]:
    """The node's inputs, left to right."""
    if isinstance(node, Union):
        return node.inputs
    if isinstance(node, Join):
        return (node.left, node.right)
    child = getattr(node, "input", None)
    return (child,) if isinstance(child, Node) else ()


def replace_children(node: Node, new: tuple[Node, ...]) -> Node:
    """A copy of ``node`` with its inputs replaced (same order as ``children``)."""
    from dataclasses import replace

    if isinstance(node, Union):
        return replace(node, inputs=new)
    if isinstance(node, Join):
        return replace(node, left=new[0], right=new[1])
    if any(f.name == "input" for f in fields(node)):
        return replace(node, input=new[0])  # type: ignore[call-arg]
    return node
