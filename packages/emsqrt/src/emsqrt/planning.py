"""The planning API that other engines build on (elytra cuts plans into tasks with it).

One public place for what a distributed planner needs from emsqrt besides ``run``: output
schemas (``SchemaResolver``), the one step vocabulary (``PlanBuilder``), plans as JSON, the
optimizer, aggregate names and the DISTINCT rewrite, the key type and canonical float keys of a
join, emsqrt's sort order on Arrow (``SortSpec``), and expression helpers. The kernel's statement (``kernel_fragment``, ``Fragment``) and
runners (``run_fragment``, its ``KernelRun``, ``run_statement``, ``StreamBroken``) and its share of a cap
(``memory_limit``) are here for callers that wrap
the statement themselves. The modules
behind it are emsqrt's own and may move; these names stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from . import plan as lp
from .builder import PlanBuilder, split_alias
from .distinct import rewrite_distinct
from .joinkeys import right_output_names
from .kernel import (
    KERNEL_FLOOR_BYTES,
    Fragment,
    KernelRun,
    StreamBroken,
    Unsupported,
    compile_plan,
    memory_limit,
    run_fragment,
    run_statement,
)
from .optimizer import optimize
from .optimizer._exprs import columns_of, map_children, rename_columns
from .optimizer.outer_joins import apply as _inner_joins
from .optimizer.projection_pushdown import apply as _prune_columns
from .physical.floatkeys import canonical_key
from .physical.join import join_key_type
from .physical.sortkeys import SortSpec
from .plan import Node, agg_name
from .plan_json import plan_from_json, plan_to_json
from .resolve import SchemaResolver, bind_scan_schemas, decoded

__all__ = [
    "Fragment",
    "KernelRun",
    "PlanBuilder",
    "SchemaResolver",
    "SortSpec",
    "StreamBroken",
    "agg_name",
    "bind_scan_schemas",
    "canonical_key",
    "columns_of",
    "decoded",
    "inner_joins",
    "join_key_type",
    "kernel_fragment",
    "map_children",
    "memory_limit",
    "optimize",
    "plan_from_json",
    "plan_to_json",
    "prune_columns",
    "rename_columns",
    "rewrite_distinct",
    "right_output_names",
    "run_fragment",
    "run_statement",
    "split_alias",
]


def inner_joins(plan: Node, resolver: SchemaResolver | None = None) -> Node:
    """``plan`` with each left join whose null-extended rows are all dropped above it made an
    inner join (the optimizer's ``outer_joins`` rule: decorrelated subqueries' joins)."""
    return _inner_joins(plan, resolver or SchemaResolver())


def prune_columns(plan: Node, resolver: SchemaResolver | None = None) -> Node:
    """``plan`` with every operator reading only the columns something above it uses: scans
    decode fewer columns, and sorts and top-n carry only the columns kept after them. The
    one rule of the optimizer a distributed planner applies to a whole plan before cutting
    it (each task's plan is optimized again when it runs)."""
    return _prune_columns(plan, resolver or SchemaResolver())


def kernel_fragment(
    plan: lp.Node,
    cap: int,
    inputs: Mapping[str, Sequence[pa.RecordBatch]] | None = None,
) -> Fragment | None:
    """``plan`` as the one DuckDB statement ``run`` would execute under ``cap`` (scan schemas
    bound, optimized, compiled), or ``None`` where ``run`` would use the operators instead (a
    cap below the kernel's floor, something the kernel does not run). For callers that wrap
    the statement themselves (elytra's tasks write their rows straight into partition files
    with :func:`emsqrt.kernel.run_statement`)."""
    if cap < KERNEL_FLOOR_BYTES:
        return None
    bound = bind_scan_schemas(plan)
    try:
        return compile_plan(optimize(bound, SchemaResolver()), inputs)
    except Unsupported:
        return None
