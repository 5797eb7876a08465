"""The reference evaluator of browser tasks: what a worker computes from a task's steps.

Filters and computed columns use ``platform_core.expr.evaluate`` (the evaluator the browser's
TypeScript interpreter conforms to); a filter keeps the rows whose predicate is true (NULL
drops the row); computed columns are evaluated left to right, each seeing the ones before.
The partial aggregate, top-k and limit are emsqrt's own operators over the rows so far, so
their output is exactly emsqrt's (the partial-state schema of its README). The result is cast
to the task's expected schema (types the evaluator widened come back to the stage's).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from emsqrt import EngineConfig, run
from emsqrt import plan as lp
from platform_core import Schema
from platform_core.expr.serde import from_dict

__all__ = ["evaluate_steps"]

_INPUT = "rows"


def _emsqrt_step(step: dict[str, Any], table: pa.Table, mem_cap: int) -> pa.Table:
    leaf = lp.Input(_INPUT, Schema.from_arrow(table.schema))
    node: lp.Node
    op = step["op"]
    if op == "partial_aggregate":
        aggs = tuple(lp.AggSpec(a["name"], from_dict(a["agg"])) for a in step["aggregates"])  # type: ignore[arg-type]
        node = lp.Aggregate(leaf, tuple(step["group_by"]), aggs, "partial")
    elif op == "top_k":
        keys = tuple(
            lp.SortKey(k["column"], bool(k["descending"]), bool(k["nulls_first"]))
            for k in step["keys"]
        )
        node = lp.TopK(leaf, keys, int(step["n"]))
    else:
        raise ValueError(f"unknown step {op!r}")
    out = run(node, EngineConfig(mem_cap_bytes=mem_cap), inputs={_INPUT: table}).table
    assert out is not None
    return out


def evaluate_steps(
    steps: list[dict[str, Any]],
    table: pa.Table,
    schema: pa.Schema | None,
    mem_cap: int = 256 << 20,
) -> pa.Table:
    """Run a browser task's ``steps`` over the chunk's rows ``table``; rows of ``schema``, or
    with ``None`` the evaluator's own types (what a task computed from these steps carries)."""
    from platform_core.expr import evaluate

    for step in steps:
        op = step["op"]
        if op == "filter":
            mask = evaluate(from_dict(step["expr"]), table)
            table = table.filter(mask)
        elif op == "project":
            cols = step["columns"]
            table = pa.Table.from_arrays(
                [table.column(src) for _, src in cols], names=[out for out, _ in cols]
            )
        elif op == "map":
            for name, expr in step["columns"]:
                values = evaluate(from_dict(expr), table)
                if name in table.column_names:
                    table = table.set_column(table.column_names.index(name), name, values)
                else:
                    table = table.append_column(name, values)
        elif op == "limit":
            table = table.slice(int(step["offset"]), int(step["n"]))
        else:
            table = _emsqrt_step(step, table, mem_cap)
    if schema is None:
        return table
    if table.schema.names != schema.names:
        raise ValueError(f"columns {table.schema.names} where {schema.names} were expected")
    return table.cast(schema) if not table.schema.equals(schema) else table
