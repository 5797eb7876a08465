"""A Parquet scan of some of a file's row groups (``Scan.row_groups``): elytra cuts a small
dataset by row groups so that every worker has a task. The kernel (a ``file_row_number``
range DuckDB prunes row groups by) and emsqrt's own operators must read exactly those rows:
checked against DuckDB over pyarrow's ``read_row_groups`` of the same groups."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsqrt import EngineConfig, PlanError, run
from emsqrt import plan as lp
from emsqrt.errors import InputFileError
from emsqrt.kernel import compile_plan
from emsqrt.plan_json import plan_from_json, plan_hash, plan_to_json
from platform_core.expr import parse

from .test_kernel import _same

GROUPS = 7
ROWS = 700  # 7 row groups of 100 rows


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    i = np.arange(ROWS)
    table = pa.table(
        {
            "id": pa.array(i),
            "k": pa.array([None if n % 13 == 0 else f"k{n % 5}" for n in range(ROWS)]),
            "x": pa.array(rng.normal(size=ROWS), mask=i % 17 == 0),
        }
    )
    path = tmp_path_factory.mktemp("rg") / "g.parquet"
    pq.write_table(table, path, row_group_size=ROWS // GROUPS)
    assert pq.read_metadata(path).num_row_groups == GROUPS
    return path


def _oracle(path: Path, rg: tuple[int, int], sql: str) -> pa.Table:
    part = pq.ParquetFile(path).read_row_groups(list(range(*rg)))  # noqa: F841 - DuckDB reads it
    return duckdb.sql(sql.format(t="part")).to_arrow_table()


def _both(plan: lp.Node, spill: Path) -> pa.Table:
    kernel = run(plan, EngineConfig(spill_dir=str(spill)))
    assert [o.op for o in kernel.manifest.operators] == ["kernel"]
    ops = run(plan, EngineConfig(spill_dir=str(spill), kernel="off"))
    assert "kernel" not in [o.op for o in ops.manifest.operators]
    assert kernel.table is not None
    assert ops.table is not None
    _same(kernel.table, ops.table)
    return kernel.table


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=st.integers(0, GROUPS - 1), width=st.integers(1, GROUPS))
def test_a_row_group_range_reads_those_rows_in_the_kernel_and_the_operators(
    grouped: Path, tmp_path: Path, start: int, width: int
) -> None:
    rg = (start, min(GROUPS, start + width))
    scan = lp.Scan(str(grouped), "parquet", row_groups=rg)
    rows = _both(lp.Filter(scan, parse("x > -0.5 OR k IS NULL")), tmp_path)
    want = _oracle(grouped, rg, "SELECT id, k, x FROM {t} WHERE x > -0.5 OR k IS NULL")
    assert sorted(rows.column("id").to_pylist()) == sorted(want.column("id").to_pylist())
    grouped_plan = lp.Aggregate(
        scan,
        ("k",),
        (lp.AggSpec("n", parse("count(*)")), lp.AggSpec("s", parse("sum(x)"))),
        "full",
    )
    got = _both(grouped_plan, tmp_path).sort_by([("k", "ascending")])
    want = _oracle(grouped, rg, "SELECT k, count(*) AS n, sum(x) AS s FROM {t} GROUP BY k")
    want = want.sort_by([("k", "ascending")])
    assert got.column("k").to_pylist() == want.column("k").to_pylist()
    assert got.column("n").to_pylist() == want.column("n").to_pylist()
    assert np.allclose(
        [v or 0.0 for v in got.column("s").to_pylist()],
        [v or 0.0 for v in want.column("s").to_pylist()],
    )


def test_the_kernel_statement_filters_on_row_numbers_of_those_groups(grouped: Path) -> None:
    sql = compile_plan(lp.Scan(str(grouped), "parquet", row_groups=(2, 4))).sql
    assert "file_row_number = true" in sql
    assert "file_row_number >= 200 AND file_row_number < 400" in sql
    # a union of split scans is not one multi-file read (each has its own range)
    both = lp.Union(
        (
            lp.Scan(str(grouped), "parquet", row_groups=(0, 1)),
            lp.Scan(str(grouped), "parquet", row_groups=(5, 7)),
        )
    )
    sql = compile_plan(both).sql
    assert sql.count("read_parquet") == 2


def test_the_plan_json_carries_the_range_and_leaves_whole_scans_as_they_were(
    grouped: Path,
) -> None:
    split = lp.Scan(str(grouped), "parquet", row_groups=(1, 3))
    text = plan_to_json(split)
    assert json.loads(text)["row_groups"] == [1, 3]
    assert plan_from_json(text) == split
    whole = lp.Scan(str(grouped), "parquet")
    assert "row_groups" not in json.loads(plan_to_json(whole))
    assert plan_hash(whole) != plan_hash(split)
    assert plan_from_json(plan_to_json(whole)) == whole


@pytest.mark.parametrize(
    "bad", [[3, 2], [1, 1], [-1, 2], [0, "2"], [0], [0, 1, 2], [True, 2], "0-2"]
)
def test_a_malformed_range_is_refused_naming_it(grouped: Path, bad: object) -> None:
    node = json.loads(plan_to_json(lp.Scan(str(grouped), "parquet")))
    node["row_groups"] = bad
    with pytest.raises(PlanError, match="row_groups"):
        plan_from_json(json.dumps(node))


def test_row_groups_of_a_csv_scan_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="Parquet files only"):
        lp.Scan(str(tmp_path / "a.csv"), "csv", row_groups=(0, 1))


@pytest.mark.parametrize("kernel", ["auto", "off"])
def test_a_range_past_the_file_s_row_groups_names_the_file(
    grouped: Path, tmp_path: Path, kernel: str
) -> None:
    scan = lp.Scan(str(grouped), "parquet", row_groups=(5, 9))
    with pytest.raises(InputFileError, match=f"has {GROUPS} row groups"):
        run(scan, EngineConfig(spill_dir=str(tmp_path), kernel=kernel))


def test_only_an_aggregate_lets_duckdb_drop_the_rows_order(grouped: Path, tmp_path: Path) -> None:
    """An aggregate's statement runs with ``preserve_insertion_order`` off: keeping the order
    through a union of a file read whole and a ``file_row_number`` range of another (a part
    cut by row groups) ran DuckDB out of a 32 MiB limit on G1's q3, and the task fell to
    emsqrt's operators (106 MiB above the worker's start, against 50). A chain of rows keeps
    its order: its rows still come in the file's order, on the same connection after an
    aggregate ran on it."""
    from platform_core import Schema

    schema = Schema.from_arrow(pq.read_schema(grouped))
    scan = lp.Scan(str(grouped), "parquet", schema, row_groups=(1, 6))
    agg = lp.Aggregate(scan, ("k",), (lp.AggSpec("n", parse("count(*)")),))
    rows = lp.Project(lp.Filter(scan, parse("x > -10 OR x IS NULL")), (("id", "id"),))
    assert compile_plan(agg).ordered is False
    assert compile_plan(lp.Project(agg, (("k", "k"),))).ordered is False
    assert compile_plan(rows).ordered is True
    cfg = EngineConfig(spill_dir=str(tmp_path / "spill"))
    got = run(agg, cfg)
    assert [o.op for o in got.manifest.operators] == ["kernel"]
    assert got.table is not None
    _same(got.table, _oracle(grouped, (1, 6), "SELECT k, count(*) AS n FROM {t} GROUP BY k"))
    ids = run(rows, cfg).table
    assert ids is not None
    assert ids.column("id").to_pylist() == list(range(100, 600))  # in the file's order


@pytest.mark.parametrize("ranges", [[(0, 3), None, (4, 7)], [(2, 5), (0, 1)], [None, (6, 7)]])
def test_a_top_n_over_files_cut_by_row_groups_reads_positions_with_the_rows(
    grouped: Path, tmp_path: Path, ranges: list[tuple[int, int] | None]
) -> None:
    """A part cut by row groups (files whole and ranges, in any order) is a union of reads;
    each row's input position comes with it (``file_row_number`` after the reads before),
    not from ``row_number() OVER ()`` over the whole input, which runs on one thread and
    held G1's q8 tasks at twice their time. Ties keep input order: the kernel equals the
    operators row for row, and both equal DuckDB over the same rows in that order."""
    from platform_core import Schema

    schema = Schema.from_arrow(pq.read_schema(grouped))
    reads = tuple(lp.Scan(str(grouped), "parquet", schema, row_groups=r) for r in ranges)
    xs = lp.Map(lp.Union(reads), (("r", parse("round(x, 0)")),))
    plan = lp.TopK(xs, (lp.SortKey("r", True),), 3, ("k",))
    assert "OVER ()" not in compile_plan(plan).sql
    got = _both(plan, tmp_path)
    pieces = []
    for n, r in enumerate(ranges):
        part = pq.ParquetFile(grouped).read_row_groups(list(range(*(r or (0, GROUPS)))))
        pieces.append(
            part.append_column("pos", pa.array([n * ROWS + i for i in range(part.num_rows)]))
        )
    rows = pa.concat_tables(pieces)  # noqa: F841 - DuckDB reads it
    want = duckdb.sql(
        "SELECT id, k, x, round(x, 0) AS r FROM rows QUALIFY row_number() OVER "
        "(PARTITION BY k ORDER BY round(x, 0) DESC NULLS LAST, pos) <= 3"
    ).to_arrow_table()
    _same(got, want)


def test_an_aggregate_over_a_limit_keeps_the_rows_order(grouped: Path, tmp_path: Path) -> None:
    """A limit without a sort takes the first rows: an aggregate above one must not let
    DuckDB drop the arrival order (an outside tester's count over ``LIMIT 1000 OFFSET
    500000`` on two kernel threads counted other rows each run). Same for a top-n's ties
    numbered in arrival order, and arg_min/arg_max, whose ties go to the first row."""
    from platform_core import Schema

    schema = Schema.from_arrow(pq.read_schema(grouped))
    scan = lp.Scan(str(grouped), "parquet", schema)
    count = (lp.AggSpec("n", parse("count(*)")), lp.AggSpec("lo", parse("min(id)")))
    over_limit = lp.Aggregate(lp.Filter(lp.Limit(scan, 300, 200), parse("id >= 0")), (), count)
    over_top = lp.Aggregate(lp.TopK(lp.Limit(scan, 500), (lp.SortKey("k"),), 3), (), count)
    assert compile_plan(over_limit).ordered is True
    assert compile_plan(over_top).ordered is True
    assert compile_plan(lp.Aggregate(lp.Filter(scan, parse("id >= 0")), (), count)).ordered is False
    for threads in (1, 2):
        got = run(
            over_limit, EngineConfig(spill_dir=str(tmp_path / "s"), kernel_threads=threads)
        ).table
        assert got is not None
        assert got.to_pylist() == [{"n": 300, "lo": 200}], threads
