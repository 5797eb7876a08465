"""A task is a JSON value; executing it is emsqrt.run over its files under its cap."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from elytra import Task, execute
from emsqrt import plan as lp
from emsqrt.plan_json import plan_to_json
from platform_core import Schema
from platform_core.expr import Aggregate, Column, parse


def test_a_task_round_trips_as_json_and_runs_its_plan(tmp_path: Path) -> None:
    table = pa.table({"k": [i % 7 for i in range(10_000)], "v": list(range(10_000))})
    path = tmp_path / "part.parquet"
    pq.write_table(table, path)
    scan = lp.Scan(str(path), "parquet", Schema.from_arrow(table.schema))
    plan = lp.Aggregate(
        lp.Filter(scan, parse("v % 3 = 0")),
        ("k",),
        (lp.AggSpec("n", Aggregate("count", None)), lp.AggSpec("s", Aggregate("sum", Column("v")))),
    )
    task = Task(
        "j-s0-t0", 0, plan_to_json(plan), 1 << 20, str(tmp_path / "spill"), files=(str(path),)
    )
    again = Task.from_json(task.to_json())
    assert again == task
    assert again.retry().attempt == 2
    got = execute(again)
    want = duckdb.sql(
        f"SELECT k, count(*) AS n, sum(v) AS s FROM '{path}' WHERE v % 3 = 0 GROUP BY k ORDER BY k"
    ).fetchall()
    rows = sorted((r["k"], r["n"], int(r["s"])) for r in got.table.to_pylist())
    assert rows == [(k, n, int(s)) for k, n, s in want]
    assert got.stats["rows_out"] == 7
