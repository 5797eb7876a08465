"""max_parallel_tasks: independent plans run concurrently on shares of one cap."""

from __future__ import annotations

from pathlib import Path

from oracle import KiB, assert_same_rows, duck, input_node, make_table

from emsqrt import Aggregate, AggSpec, EngineConfig, Sort, SortKey, run_parallel
from platform_core.expr import parse


def test_parallel_tasks_share_the_cap(spill_dir: Path) -> None:
    tables = [
        make_table({"rows": 8000, "keys": 5000, "nulls": 0.05, "skew": False, "seed": s})
        for s in range(4)
    ]
    plans = []
    for i, t in enumerate(tables):
        node = input_node("t", t)
        if i % 2:
            plans.append(Sort(node, (SortKey("s"), SortKey("k"))))
        else:
            plans.append(Aggregate(node, ("k",), (AggSpec("n", parse("count(*)")),)))  # type: ignore[arg-type]
    cap = 256 * KiB
    cfg = EngineConfig(mem_cap_bytes=cap, spill_dir=str(spill_dir), max_parallel_tasks=2)
    results = run_parallel(plans, cfg, inputs=[{"t": t} for t in tables])
    for i, (t, r) in enumerate(zip(tables, results, strict=True)):
        m = r.manifest
        assert m.memory["cap_bytes"] == cap // 2
        assert m.memory["reserved_peak_bytes"] <= cap // 2
        assert m.memory["parallel_reserved_peak_bytes"] <= cap
        assert m.schedule["budget_per_task_bytes"] == cap // 2
        assert m.spilled_bytes > 0
        if i % 2:
            want = duck("SELECT * FROM t ORDER BY s, k", t=t)
            assert_same_rows(r.table.select(["s", "k"]), want.select(["s", "k"]), ordered=True)  # type: ignore[union-attr]
        else:
            assert_same_rows(r.table, duck("SELECT k, count(*) AS n FROM t GROUP BY k", t=t))  # type: ignore[arg-type]
