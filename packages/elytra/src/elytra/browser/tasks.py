"""Browser tasks: the pure-JSON subset of elytra's tasks that a browser worker may run.

A browser runs data, never code: a task goes to a browser only when its plan is, from the
bottom up, a scan of **one** Parquet file (one lake chunk) followed by filters, projections,
computed columns (``platform_core.expr`` JSON, ``serde.to_dict``), then at most one of

- a partial aggregate (``Aggregate(mode="partial")``) of ``count``, ``sum``, ``avg``, ``min``
  and ``max`` (no DISTINCT): its output is emsqrt's partial-state schema
  (``emsqrt.physical.aggregate.state_schema``), which the driver's final aggregate reads;
- a local top-k (no ``per`` groups) or a limit.

Anything else (a join, a union of files, a Python function, a sort with spill, another
aggregate) is not a browser task: :func:`browser_task` answers ``None`` and the task runs on
the local pool. The plan translated is the one emsqrt would run (scan schemas bound, then
optimized: predicates and projections pushed into the scan), so the scan's pushed-down columns
are what the worker receives and its pushed-down predicate is the first ``filter`` step. The
expected output schema is the stage's (the same on every backend), so the merge cannot tell
which worker ran a task.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from emsqrt import EmsqrtError
from emsqrt import plan as lp
from emsqrt.planning import SchemaResolver, bind_scan_schemas, columns_of, optimize, plan_from_json
from platform_core import PlatformError
from platform_core.expr.serde import to_dict

from ..task import Task

if TYPE_CHECKING:
    from ..stages import Stage

__all__ = ["BROWSER_AGGREGATES", "BrowserTask", "browser_task", "schema_from_b64", "schema_to_b64"]

BROWSER_AGGREGATES = frozenset({"count", "sum", "avg", "min", "max"})
"""Aggregate functions whose partial state a browser computes (emsqrt's README table)."""


def schema_to_b64(schema: pa.Schema) -> str:
    """An Arrow schema as base64 of an Arrow IPC stream with no batches (Arrow JS reads it
    with ``tableFromIPC``: an empty table of that schema)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema):
        pass
    return base64.b64encode(sink.getvalue().to_pybytes()).decode()


def schema_from_b64(text: str) -> pa.Schema:
    return pa.ipc.open_stream(base64.b64decode(text)).schema


@dataclass(frozen=True)
class BrowserTask:
    """What a browser worker runs: ``steps`` over the chunk's ``columns``, giving ``schema``.

    ``scan`` (the chunk's file and what to read of it) stays on the server: the worker gets the
    rows over HTTP (``GET /api/workers/chunks/{task_id}``), never a path.
    """

    task: Task
    scan: lp.Scan
    steps: tuple[dict[str, Any], ...]
    schema: pa.Schema
    columns: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.task.id

    def message(self) -> dict[str, Any]:
        """The ``task`` message of the protocol (JSON; no server path in it)."""
        return {
            "type": "task",
            "task_id": self.task.id,
            "attempt": self.task.attempt,
            "columns": list(self.columns),
            "steps": [dict(s) for s in self.steps],
            "schema": schema_to_b64(self.schema),
            "fields": [[f.name, str(f.type)] for f in self.schema],
        }

    def row_bounds(self) -> tuple[int, int]:
        """The fewest and most rows an honest result can have: one for a partial aggregate
        without keys (even over no rows), at most ``n`` (plus the offset) for a top-k or a
        limit, at most the chunk's rows otherwise (from the Parquet footer, not the data)."""
        import pyarrow.parquet as pq

        meta = pq.read_metadata(self.scan.path)
        first, stop = self.scan.row_groups or (0, meta.num_row_groups)  # a split chunk's part
        chunk_rows = sum(meta.row_group(i).num_rows for i in range(first, stop))
        last = self.steps[-1] if self.steps else {}
        op = last.get("op")
        if op == "partial_aggregate" and not last.get("group_by"):
            return 1, 1
        if op in ("top_k", "limit"):
            return 0, min(chunk_rows, int(last["n"]) + int(last.get("offset") or 0))
        return 0, chunk_rows

    def retry(self) -> BrowserTask:
        return replace(self, task=self.task.retry())


def _sort_key(k: lp.SortKey) -> dict[str, Any]:
    return {"column": k.column, "descending": k.descending, "nulls_first": k.nulls_first}


def _top(node: lp.Node) -> dict[str, Any] | None:
    """The step of a top operator, or None if a browser cannot run it."""
    if isinstance(node, lp.Aggregate):
        if node.mode != "partial":
            return None
        for spec in node.aggregates:
            if spec.agg.name not in BROWSER_AGGREGATES or spec.agg.distinct:
                return None
        return {
            "op": "partial_aggregate",
            "group_by": list(node.group_by),
            "aggregates": [{"name": s.name, "agg": to_dict(s.agg)} for s in node.aggregates],
        }
    if isinstance(node, lp.TopK):
        if node.per:
            return None
        return {"op": "top_k", "keys": [_sort_key(k) for k in node.keys], "n": node.n}
    if isinstance(node, lp.Limit):
        return {"op": "limit", "n": node.n, "offset": node.offset}
    return None


def _chain_step(node: lp.Node) -> dict[str, Any] | None:
    if isinstance(node, lp.Filter):
        return {"op": "filter", "expr": to_dict(node.predicate)}
    if isinstance(node, lp.Project):
        return {"op": "project", "columns": [[out, src] for out, src in node.columns]}
    if isinstance(node, lp.Map):
        return {"op": "map", "columns": [[name, to_dict(e)] for name, e in node.columns]}
    return None


def browser_task(stage: Stage | None, task: Task) -> BrowserTask | None:
    """``task`` as a browser task, or ``None`` when a browser may not run it (see the module
    docstring). ``stage`` gives the expected schema when known (else it is resolved)."""
    try:
        node = plan_from_json(task.plan, trusted=False)  # a Python function: not JSON, None
        node = optimize(bind_scan_schemas(node))
        schema = stage.schema if stage is not None else SchemaResolver().schema(node)
    except (PlatformError, EmsqrtError, ValueError, KeyError, TypeError):
        return None
    steps: list[dict[str, Any]] = []
    top = _top(node)
    if top is not None:
        steps.append(top)
        node = node.input  # type: ignore[attr-defined]
    while not isinstance(node, lp.Scan):
        step = _chain_step(node)
        if step is None:
            return None
        steps.append(step)
        node = node.input  # type: ignore[attr-defined]
    if node.format != "parquet":
        return None
    scan = replace(node, predicate=None)
    if node.predicate is not None:
        # emsqrt's scan reads the predicate's columns too, filters, then keeps ``columns``
        if node.columns is not None:
            wanted = set(node.columns) | columns_of(node.predicate)
            every = SchemaResolver().schema(replace(scan, columns=None)).names
            scan = replace(scan, columns=tuple(c for c in every if c in wanted))
            if scan.columns != node.columns:
                steps.append({"op": "project", "columns": [[c, c] for c in node.columns]})
        steps.append({"op": "filter", "expr": to_dict(node.predicate)})
    steps.reverse()
    columns = tuple(SchemaResolver().schema(scan).names)
    return BrowserTask(task, scan, tuple(steps), schema, columns)
