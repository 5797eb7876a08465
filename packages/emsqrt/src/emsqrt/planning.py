"""The planning API that other engines build on (elytra cuts plans into tasks with it).

One public place for what a distributed planner needs from emsqrt besides ``run``: output
schemas (``SchemaResolver``), the one step vocabulary (``PlanBuilder``), plans as JSON, the optimizer, aggregate names and the DISTINCT
rewrite, the key type and canonical float keys of a join, and expression helpers. The modules
behind it are emsqrt's own and may move; these names stay.
"""

from __future__ import annotations

from .builder import PlanBuilder, split_alias
from .distinct import rewrite_distinct
from .optimizer import optimize
from .optimizer._exprs import columns_of, map_children, rename_columns
from .optimizer.projection_pushdown import apply as _prune_columns
from .physical.floatkeys import canonical_key
from .physical.join import join_key_type
from .plan import Node, agg_name
from .plan_json import plan_from_json, plan_to_json
from .resolve import SchemaResolver, bind_scan_schemas, decoded

__all__ = [
    "PlanBuilder",
    "SchemaResolver",
    "agg_name",
    "bind_scan_schemas",
    "canonical_key",
    "columns_of",
    "decoded",
    "join_key_type",
    "map_children",
    "optimize",
    "plan_from_json",
    "plan_to_json",
    "prune_columns",
    "rename_columns",
    "rewrite_distinct",
    "split_alias",
]


def prune_columns(plan: Node, resolver: SchemaResolver | None = None) -> Node:
    """``plan`` with every operator reading only the columns something above it uses: scans
    decode fewer columns, and sorts and top-n carry only the columns kept after them. The
    one rule of the optimizer a distributed planner applies to a whole plan before cutting
    it (each task's plan is optimized again when it runs)."""
    return _prune_columns(plan, resolver or SchemaResolver())
