"""EXPLAIN and EXPLAIN ANALYZE of a pipeline as JSON: its stages, their tasks and joins, the
exchanges between them and the merge in the driver; with ANALYZE, what each task ran, where,
and the rows, bytes and seconds of each stage and round.

The query route of the platform (``elytra.sqlroute``) answers ``EXPLAIN`` with it, and the
playground's SQL page draws it as a tree. It reads the stage plan the driver makes
(``Driver.plan``), and for ANALYZE the task results a backend yields; it changes neither.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .explain import render

if TYPE_CHECKING:
    from .driver import Driver
    from .pipeline import Pipeline
    from .stages import Stage, StagePlan

__all__ = ["TaskRecord", "analyze_json", "explain_table", "plan_json"]

LISTED_TASKS = 64
"""Tasks listed per stage in the JSON (the count and totals always cover all of them)."""


@dataclass
class TaskRecord:
    """What one task did, as its backend reported it."""

    task_id: str
    stage: int
    seconds: float
    rows_out: int
    bytes_in: int
    bytes_out: int
    partitioned: bool = False
    """It hash-partitioned its rows into an exchange's files itself (a worker-side exchange)."""
    worker: int | None = None
    node: str | None = None
    attempt: int = 1
    threads: int = 1
    """DuckDB threads it ran on (more than one: a task alone, given its node's cores)."""
    extra: dict[str, Any] = field(default_factory=dict)


def _stage_json(i: int, stage: Stage, exchange_sides: Mapping[int, Any]) -> dict[str, Any]:
    """One stage: what it reads, its joins (broadcast), where its rows go, its tasks."""
    joins = [
        {
            "strategy": "broadcast",
            "how": b.join.how,
            "keys": [list(b.join.left_keys), list(b.join.right_keys)],
            "small_side": b.source.describe(),
            "small_side_bytes": _bytes_of(b.source),
        }
        for b in stage.broadcast
    ]
    if i in exchange_sides:
        ex, side = exchange_sides[i]
        to = f"hash exchange {ex.name} ({'right' if side else 'left'} side)"
    else:
        to = "gather into the driver's merge"
    tasks = [
        {"id": t.id, "files": len(t.files), "bytes_in": int(t.bytes_in)}
        for t in stage.tasks[:LISTED_TASKS]
    ]
    return {
        "index": i,
        "name": stage.name,
        "kind": stage.kind,
        "reads": stage.source.describe(),
        "joins": joins,
        "output": to,
        "task_count": len(stage.tasks),
        "bytes_in": sum(int(t.bytes_in) for t in stage.tasks),
        "tasks": tasks,
    }


def _bytes_of(source: Any) -> int | None:
    try:
        parts = source.parts(1 << 62)
    except Exception:  # an in-memory source has no files
        return None
    return sum(int(p.bytes) for p in parts)


def plan_json(driver: Driver, p: Pipeline, backend: str, parts: int) -> dict[str, Any]:
    """The stages ``driver`` cuts ``p`` into, as JSON (nothing runs). ``parts``: the hash
    exchanges' partitions."""
    with tempfile.TemporaryDirectory(prefix="elytra-explain-") as tmp:
        plan, _ = driver.plan(p, "explain", Path(tmp))
    out = _plan_of(plan, backend, parts)
    # run before the stages are cut again: the stages above show the plan without them
    out["run_first"] = ["\n".join(render(side)) for side in driver.sides_first(p)]
    return out


def _plan_of(plan: StagePlan, backend: str, parts: int) -> dict[str, Any]:
    sides = plan.exchange_sides()
    exchanges = [
        {
            "name": ex.name,
            "strategy": "hash exchange",
            "how": ex.join.how,
            "left_stage": ex.left,
            "right_stage": ex.right,
            "keys": [list(ex.join.left_keys), list(ex.join.right_keys)],
            "partitions": parts,
        }
        for ex in plan.exchanges
    ]
    return {
        "engine": "elytra",
        "backend": backend,
        "stages": [_stage_json(i, s, sides) for i, s in enumerate(plan.stages)],
        "exchanges": exchanges,
        "merge": {
            "strategy": "gather",
            "where": "the driver (the platform that took the query)",
            "inputs_held": sorted(plan.driver_inputs),
            "plan": render(plan.merge),
        },
    }


def _totals(records: Sequence[TaskRecord], exchanged: frozenset[int]) -> dict[str, Any]:
    """A stage's (or round's) tasks summed; bytes go to an exchange when the task partitioned
    them or its stage is a hash exchange's side, else to the driver's merge."""
    to_exchange = [r for r in records if r.partitioned or r.stage in exchanged]
    return {
        "tasks": len(records),
        "task_seconds": round(sum(r.seconds for r in records), 6),
        "max_task_seconds": round(max((r.seconds for r in records), default=0.0), 6),
        "rows_out": sum(r.rows_out for r in records),
        "bytes_in": sum(r.bytes_in for r in records),
        "bytes_out": sum(r.bytes_out for r in records),
        "bytes_to_exchange": sum(r.bytes_out for r in to_exchange),
        "bytes_to_driver": sum(r.bytes_out for r in records)
        - sum(r.bytes_out for r in to_exchange),
        "workers": sorted({r.worker for r in records if r.worker is not None}),
        "nodes": sorted({r.node for r in records if r.node is not None}),
        "attempts": max((r.attempt for r in records), default=0),
    }


def analyze_json(
    plan: dict[str, Any],
    records: Sequence[TaskRecord],
    job_record: Mapping[str, Any],
    result: pa.Table,
) -> dict[str, Any]:
    """``plan`` with what running it did: per stage and per later round (an exchange's join
    tasks, a group-by's final aggregates, a sort's ranges) the tasks' rows, bytes and
    seconds; the job's time per phase; and the bytes that moved between stages and into the
    driver."""
    by_stage: dict[int, list[TaskRecord]] = {}
    for r in records:
        by_stage.setdefault(r.stage, []).append(r)
    n = len(plan["stages"])
    sides = frozenset(
        i for e in plan["exchanges"] for i in (int(e["left_stage"]), int(e["right_stage"]))
    )
    out = dict(plan)
    out["stages"] = [
        {**s, "analyze": _totals(by_stage.get(s["index"], []), sides)} for s in plan["stages"]
    ]
    out["rounds"] = [
        {"stage_index": k, "what": "tasks over exchanged partitions", **_totals(v, sides)}
        for k, v in sorted(by_stage.items())
        if k >= n
    ]
    recorded = dict(job_record.get("stages") or {})
    exchanged = dict(recorded.pop("exchanged", None) or {})
    phases = {k: v.get("seconds") for k, v in recorded.items()}
    everything = _totals(records, sides)
    out["analyze"] = {
        "seconds": phases,
        "rows_out": int(result.num_rows),
        "result_bytes": int(result.nbytes),
        "tasks": everything["tasks"],
        "bytes_read": everything["bytes_in"],
        "bytes_between_stages": everything["bytes_to_exchange"],
        "bytes_to_driver": everything["bytes_to_driver"],
        # of the exchanges' rows: those the driver partitioned (they came into it), and those
        # the tasks partitioned on their own node (never through the driver)
        "exchanged_via_driver_bytes": int(exchanged.get("via_driver_bytes") or 0),
        "exchanged_by_tasks_bytes": int(exchanged.get("by_tasks_bytes") or 0),
        "spilled_bytes": int(job_record.get("spilled_bytes") or 0),
        # tasks whose query DuckDB ran from its own text (``nativesql``), not from the plan
        "native_tasks": int(job_record.get("native_tasks") or 0),
    }
    return out


def explain_table(plan: dict[str, Any], records: Sequence[TaskRecord] | None) -> pa.Table:
    """EXPLAIN's rows: one per task (planned tasks; with ANALYZE, the tasks that ran)."""
    if records is None:
        rows = [
            {"stage": s["index"], "task": t["id"], "bytes_in": t["bytes_in"]}
            for s in plan["stages"]
            for t in s["tasks"]
        ]
        return pa.table(
            {
                "stage": pa.array([r["stage"] for r in rows], pa.int64()),
                "task": pa.array([r["task"] for r in rows], pa.string()),
                "bytes_in": pa.array([r["bytes_in"] for r in rows], pa.int64()),
            }
        )
    ordered = sorted(records, key=lambda r: (r.stage, r.task_id))
    return pa.table(
        {
            "stage": pa.array([r.stage for r in ordered], pa.int64()),
            "task": pa.array([r.task_id for r in ordered], pa.string()),
            "node": pa.array([r.node for r in ordered], pa.string()),
            "worker": pa.array([r.worker for r in ordered], pa.int64()),
            "attempt": pa.array([r.attempt for r in ordered], pa.int64()),
            "seconds": pa.array([round(r.seconds, 6) for r in ordered], pa.float64()),
            "rows_out": pa.array([r.rows_out for r in ordered], pa.int64()),
            "bytes_in": pa.array([r.bytes_in for r in ordered], pa.int64()),
            "bytes_out": pa.array([r.bytes_out for r in ordered], pa.int64()),
            "threads": pa.array([r.threads for r in ordered], pa.int64()),
        }
    )
