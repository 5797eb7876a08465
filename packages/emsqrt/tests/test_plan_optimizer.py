"""Plan JSON round trips, the planner registry, and each optimizer rule (rewrites checked
against the plan's own unoptimized result)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oracle import assert_same_rows, duck, make_table

from emsqrt import (
    EngineConfig,
    Filter,
    Limit,
    Node,
    Pipeline,
    PlanError,
    Scan,
    Sort,
    TopK,
    optimize,
    plan_from_json,
    plan_hash,
    plan_to_json,
    run,
)
from emsqrt.physical_planner import Lowerer
from platform_core.expr import Literal, parse


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    a = make_table({"rows": 3000, "keys": 300, "nulls": 0.1, "skew": False, "seed": 21})
    b = make_table({"rows": 500, "keys": 300, "nulls": 0.1, "skew": False, "seed": 22}, "r")
    pq.write_table(a, tmp_path / "a.parquet", row_group_size=200)
    pq.write_table(b, tmp_path / "b.parquet", row_group_size=200)
    return tmp_path / "a.parquet", tmp_path / "b.parquet"


def _pipelines(files: tuple[Path, Path]) -> list[Pipeline]:
    a, b = files
    left, right = Pipeline.scan(a), Pipeline.scan(b)
    return [
        left.filter("k > 10 AND 1 + 1 = 2").select("k", "s AS name").filter("name LIKE 'w1%'"),
        left.map(x="v * 2").filter("x > 0 AND g < 3").sort(["x DESC"]).limit(7),
        left.join(right, left_on=["k"], right_on=["rk"], how="inner").filter("g > 0 AND rg < 0"),
        left.join(right, left_on=["k"], right_on=["rk"], how="left")
        .filter("s IS NOT NULL")
        .select("k", "rv"),
        left.union(left.filter("k < 5")).filter("g = 1").limit(20),
        left.aggregate(["s"], ["COUNT(DISTINCT k)", "SUM(v)"]).filter("sum_v > 0").sort(["s"]),
    ]


def test_json_round_trip_and_hash(files: tuple[Path, Path]) -> None:
    for p in _pipelines(files):
        text = plan_to_json(p.node)
        back = plan_from_json(text)
        assert back == p.node
        assert plan_hash(back) == plan_hash(p.node)
    with pytest.raises(PlanError, match="unknown plan operator 'explode'"):
        plan_from_json('{"op": "explode"}')
    with pytest.raises(PlanError, match="unknown fields"):
        plan_from_json(
            '{"op": "limit", "n": 1, "input": {"op": "input", "name": "x", "schema": {"fields": []}}, "x": 1}'
        )


def test_optimizer_keeps_results(spill_dir: Path, files: tuple[Path, Path]) -> None:
    cfg = EngineConfig(mem_cap_bytes=128 * 1024, spill_dir=str(spill_dir))
    for p in _pipelines(files):
        plain = run(p.node, cfg, optimize=False).table
        opt = run(p.node, cfg).table
        assert plain is not None
        assert opt is not None
        assert_same_rows(opt, plain, ordered=isinstance(p.node, Sort))


def _nodes(node: Node) -> list[Node]:
    from emsqrt.plan import children

    return [node, *[n for c in children(node) for n in _nodes(c)]]


def test_rules_rewrite_as_documented(files: tuple[Path, Path]) -> None:
    p0, p1, p2, *_ = _pipelines(files)
    o0 = optimize(p0.node)
    scans = [n for n in _nodes(o0) if isinstance(n, Scan)]
    assert not [n for n in _nodes(o0) if isinstance(n, Filter)]  # both filters reached the scan
    assert scans[0].predicate is not None
    assert scans[0].columns == ("k", "s")  # projection pushdown
    assert not any(isinstance(e, Literal) and e.value is True for e in [scans[0].predicate])
    o1 = optimize(p1.node)
    assert isinstance(o1, TopK)
    assert o1.n == 7
    o2 = optimize(p2.node)
    joined = [n for n in _nodes(o2) if isinstance(n, Scan)]
    assert all(s.predicate is not None for s in joined)  # each side's conjunct went to its scan
    assert not [n for n in _nodes(o2) if isinstance(n, Filter)]
    from emsqrt.optimizer.constant_folding import fold

    assert fold(parse("1 + 1 = 2")) == Literal(True, fold(parse("1 + 1 = 2")).type)  # type: ignore[attr-defined]
    merged = [n for n in _nodes(optimize(Limit(Limit(p0.node, 10), 3))) if isinstance(n, Limit)]
    assert [(m.n, m.offset) for m in merged] == [(3, 0)]  # two limits merged, below the project


def test_planner_registry_refuses_unknown_operators(spill_dir: Path) -> None:
    from dataclasses import dataclass

    from emsqrt.budget import MemoryBudget
    from emsqrt.context import ExecContext
    from emsqrt.resolve import SchemaResolver
    from emsqrt.spill import SpillManager

    @dataclass(frozen=True)
    class Pivot(Node):
        pass

    with SpillManager(spill_dir) as spill:
        ctx = ExecContext.for_cap(MemoryBudget(1 << 20), spill, 1)
        with pytest.raises(PlanError, match="no physical operator for logical Pivot"):
            Lowerer(ctx, SchemaResolver()).lower(Pivot())


def test_explain_shows_estimates_and_actuals(spill_dir: Path, files: tuple[Path, Path]) -> None:
    p = _pipelines(files)[5]
    text = p.explain(64 * 1024, spill_dir=str(spill_dir))
    assert "aggregate" in text
    assert "est " in text
    r = p.run(64 * 1024, spill_dir=str(spill_dir))
    shown = r.explain()
    assert "actual" in shown
    assert "spilled" in shown
    assert r.manifest.schedule["max_fan_in"] >= 1
    assert r.manifest.schedule["live_frontier"] >= 2
    assert isinstance(pa.table({"x": [1]}), pa.Table)


def test_a_union_of_a_scan_and_given_batches_prunes_to_matching_columns(
    spill_dir: Path, tmp_path: Path
) -> None:
    # The scan can drop columns the aggregate does not read; the given batches cannot. Each
    # input is projected to the same columns, or the union's inputs would not match.
    from emsqrt import Aggregate, AggSpec, Input, Union
    from platform_core import Schema

    t = make_table({"rows": 2000, "keys": 40, "nulls": 0.1, "skew": False, "seed": 5})
    pq.write_table(t, tmp_path / "t.parquet")
    schema = Schema.from_arrow(t.schema)
    both = Union((Scan(str(tmp_path / "t.parquet"), "parquet", schema), Input("held", schema)))
    agg = Aggregate(both, ("k",), (AggSpec("n", parse("count(*)")),))
    cfg = EngineConfig(mem_cap_bytes=1 << 20, spill_dir=str(spill_dir))
    got = run(agg, cfg, inputs={"held": t}).table
    assert got is not None
    want = duck(
        "SELECT k, count(*) AS n FROM (SELECT * FROM t UNION ALL SELECT * FROM t) GROUP BY k", t=t
    )
    assert_same_rows(got, want)


def test_columns_not_used_above_a_top_n_or_sort_are_not_carried_through_it(tmp_path: Path) -> None:
    """Only the columns used above a top-n (per group) or sort pass through it: a Project
    under it where the input has more (an Arrow input here, a dataset leaf in elytra), and
    the rows and their order stay the same, ties included."""
    from emsqrt import Input, Project, SortKey
    from emsqrt.planning import prune_columns
    from platform_core import Schema

    t = make_table({"rows": 2000, "keys": 30, "nulls": 0.1, "skew": True, "seed": 4})
    t = t.append_column("u", pa.array(range(t.num_rows)))
    inp = Input("t", Schema.from_arrow(t.schema))
    top = TopK(inp, (SortKey("g", True),), 2, ("k",))
    for plan in (
        Project(top, (("k", "k"), ("g", "g"))),
        Project(Sort(inp, (SortKey("g"),)), (("u", "u"),)),
    ):
        pruned = prune_columns(plan)
        below = pruned.input.input  # type: ignore[attr-defined]
        assert isinstance(below, Project)
        assert {c for c, _ in below.columns} < set(t.column_names)
        for kernel in ("auto", "off"):
            cfg = EngineConfig(kernel=kernel, spill_dir=str(tmp_path / "spill"))
            got = run(pruned, cfg, inputs={"t": t}, optimize=False).table
            want = run(plan, cfg, inputs={"t": t}, optimize=False).table
            assert got is not None
            assert want is not None
            # a top-n per group's rows come in any order; a sort's in its order
            assert_same_rows(got, want, ordered=isinstance(plan.input, Sort))  # type: ignore[attr-defined]


def test_a_count_reads_the_predicates_column_or_the_narrowest(
    spill_dir: Path, tmp_path: Path
) -> None:
    """When nothing above a scan reads a column (``count(*)``), the scan keeps one its own
    predicate reads, else the narrowest fixed-width one: not the first column, a string here,
    decoded only to be counted. The counts still equal DuckDB's, on the kernel and off it."""
    from emsqrt import Aggregate, AggSpec, Union
    from platform_core import Schema

    t = pa.table(
        {
            "name": pa.array([f"row-{i % 97}" for i in range(3000)]),
            "big": pa.array(range(3000), pa.int64()),
            "small": pa.array([i % 7 for i in range(3000)], pa.int8()),
            "v": pa.array([i / 3 for i in range(3000)], pa.float64()),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(t, path, row_group_size=500)
    schema = Schema.from_arrow(t.schema)
    scan = Scan(str(path), "parquet", schema)
    count = (AggSpec("n", parse("count(*)")),)
    cases = {
        "filtered": (Aggregate(Filter(scan, parse("v > 100")), (), count), ("v",)),
        "bare": (Aggregate(scan, (), count), ("small",)),
        "union": (
            Aggregate(Filter(Union((scan, scan)), parse("v > 100")), (), count),
            ("v",),
        ),
    }
    for name, (plan, kept) in cases.items():
        scans = [n for n in _nodes(optimize(plan)) if isinstance(n, Scan)]
        assert scans, name
        assert all(s.columns == kept for s in scans), (name, [s.columns for s in scans])
        for kernel in ("auto", "off"):
            cfg = EngineConfig(kernel=kernel, spill_dir=str(spill_dir))
            got = run(plan, cfg).table
            assert got is not None
            rows = 2 if name == "union" else 1
            where = "" if name == "bare" else "WHERE v > 100"
            want = duck(f"SELECT {rows} * count(*) AS n FROM t {where}", t=t)
            assert got.column("n").to_pylist() == want.column("n").to_pylist(), (name, kernel)


def test_a_nested_group_key_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """Arrow's hash aggregate has no list or struct keys: a group-by or distinct over one is
    a plan error naming the column and its type (it was Arrow's own NotImplemented)."""
    from emsqrt import Aggregate, AggSpec
    from emsqrt.resolve import SchemaResolver
    from platform_core import Schema

    t = pa.table({"lst": pa.array([[1, 2], [3]], pa.list_(pa.int32())), "x": [1, 2]})
    path = tmp_path / "l.parquet"
    pq.write_table(t, path)
    scan = Scan(str(path), "parquet", Schema.from_arrow(t.schema))
    plan = Aggregate(scan, ("x", "lst"), (AggSpec("n", parse("count(*)")),))
    with pytest.raises(PlanError, match="column 'lst' of type list<item: int32>"):
        SchemaResolver().schema(plan)
    ok = Aggregate(scan, ("x",), (AggSpec("n", parse("count(*)")),))
    assert SchemaResolver().schema(ok).names == ["x", "n"]
