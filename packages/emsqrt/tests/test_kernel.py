"""The DuckDB kernel against emsqrt's own operators (and DuckDB) on the same plans and data.

Every plan runs twice: ``kernel="auto"`` (the kernel, asserted from the manifest) and
``kernel="off"`` (the operators). Their rows must be equal (floats to 1e-9 relative, rows in
any order) with the same Arrow schema. Plans the kernel does not run, and runs it cannot
finish, must come out of the operators with emsqrt's own result or error.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsqrt import EngineConfig, run
from emsqrt import plan as lp
from emsqrt.kernel import KERNEL_FLOOR_BYTES, Unsupported, compile_plan
from platform_core import PlatformError, Schema
from platform_core.expr import parse

N = 20_000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    d = tmp_path_factory.mktemp("kernel")
    x = rng.normal(size=N)
    x[::97] = np.nan
    x[::89] = -0.0
    table = pa.table(
        {
            "k": pa.array([None if i % 53 == 0 else f"k{i % 37}" for i in range(N)]),
            "i": pa.array(rng.integers(-50, 100, N)),
            "j": pa.array(rng.integers(0, 9, N), pa.int32()),
            "x": pa.array(x, mask=np.arange(N) % 71 == 0),
            "f": pa.array(rng.integers(0, 4, N).astype(float)),
        }
    )
    pq.write_table(table, d / "a.parquet", row_group_size=4096)
    pq.write_table(table.slice(0, 500), d / "small.parquet")
    pcsv.write_csv(table.slice(0, 100), d / "a.csv")
    return d


def _same(a: pa.Table, b: pa.Table) -> None:
    assert a.schema == b.schema
    assert a.num_rows == b.num_rows
    cols = a.column_names
    order = [(c, "ascending") for c in cols]
    a, b = a.sort_by(order), b.sort_by(order)
    for c in cols:
        for u, v in zip(a[c].to_pylist(), b[c].to_pylist(), strict=True):
            if isinstance(u, float) and isinstance(v, float):
                assert (math.isnan(u) and math.isnan(v)) or math.isclose(
                    u, v, rel_tol=1e-9, abs_tol=1e-9
                ), (c, u, v)
            else:
                assert u == v, (c, u, v)


def both(plan: lp.Node, spill: Path, **inputs: pa.Table) -> pa.Table:
    """The kernel's rows, checked against the operators' on the same plan."""
    kernel = run(plan, EngineConfig(spill_dir=str(spill)), inputs=inputs or None)
    assert [o.op for o in kernel.manifest.operators] == ["kernel"]
    ops = run(plan, EngineConfig(spill_dir=str(spill), kernel="off"), inputs=inputs or None)
    assert "kernel" not in [o.op for o in ops.manifest.operators]
    assert kernel.table is not None
    assert ops.table is not None
    _same(kernel.table, ops.table)
    return kernel.table


def scan(data: Path, name: str = "a.parquet") -> lp.Scan:
    return lp.Scan(str(data / name), "parquet")


def agg(inp: lp.Node, keys: tuple[str, ...], mode: str, *specs: str) -> lp.Aggregate:
    aggs = tuple(lp.AggSpec(f"o{i}", parse(s)) for i, s in enumerate(specs))
    return lp.Aggregate(inp, keys, aggs, mode)  # type: ignore[arg-type]


AGGS = [
    "count(*)",
    "count(x)",
    "sum(i)",
    "sum(x)",
    "avg(i)",
    "avg(x)",
    "min(k)",
    "max(x)",
    "max(i)",
    "stddev_samp(x)",
    "var_pop(i)",
    "corr(x, i)",
]


@pytest.mark.parametrize("keys", [(), ("k",), ("k", "f"), ("f",)])
@pytest.mark.parametrize("mode", ["full", "partial"])
def test_aggregates_equal_the_operators(
    data: Path, spill_dir: Path, keys: tuple, mode: str
) -> None:
    both(agg(scan(data), keys, mode, *AGGS), spill_dir)


@pytest.mark.parametrize("specs", [("median(x)", "stddev(x)"), ("count(distinct j)", "sum(i)")])
def test_raw_state_aggregates_in_every_mode(data: Path, spill_dir: Path, specs: tuple) -> None:
    full = agg(scan(data), ("k",), "full", *specs)
    both(full, spill_dir)
    partial = agg(scan(data), ("k",), "partial", *specs)
    states = both(partial, spill_dir)
    source = Schema.from_arrow(pq.read_schema(data / "a.parquet"))
    final = lp.Aggregate(
        lp.Input("s", Schema.from_arrow(states.schema)), ("k",), full.aggregates, "final", source
    )
    _same(both(final, spill_dir, s=states), both(full, spill_dir))


def test_final_merges_partial_states_of_several_parts(data: Path, spill_dir: Path) -> None:
    specs = ("count(*)", "sum(i)", "avg(x)", "min(k)", "max(x)")
    parts = [
        run(
            agg(lp.Filter(scan(data), parse(f"j % 3 = {r}")), ("f",), "partial", *specs),
            EngineConfig(spill_dir=str(spill_dir)),
        ).table
        for r in range(3)
    ]
    states = pa.concat_tables(parts)
    source = Schema.from_arrow(pq.read_schema(data / "a.parquet"))
    full = agg(scan(data), ("f",), "full", *specs)
    final = lp.Aggregate(
        lp.Input("s", Schema.from_arrow(states.schema)), ("f",), full.aggregates, "final", source
    )
    _same(both(final, spill_dir, s=states), both(full, spill_dir))


@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "semi", "anti"])
def test_joins_equal_the_operators_and_duckdb(data: Path, spill_dir: Path, how: str) -> None:
    left = lp.Filter(scan(data), parse("i < 0"))
    right = lp.Project(scan(data, "small.parquet"), (("k", "k"), ("x", "x"), ("j2", "j")))
    rows = both(lp.Join(left, right, ("k",), ("k",), how), spill_dir)  # type: ignore[arg-type]
    sql = {
        "semi": "SELECT count(*) FROM a WHERE i < 0 AND k IN (SELECT k FROM s)",
        "anti": "SELECT count(*) FROM a WHERE i < 0 AND NOT EXISTS "
        "(SELECT 1 FROM s WHERE s.k = a.k)",
    }.get(how, f"SELECT count(*) FROM (SELECT * FROM a WHERE i < 0) a {how} JOIN s USING (k)")
    con = duckdb.connect()
    con.sql(f"CREATE VIEW a AS SELECT * FROM '{data / 'a.parquet'}'")
    con.sql(f"CREATE VIEW s AS SELECT * FROM '{data / 'small.parquet'}'")
    assert rows.num_rows == con.sql(sql).fetchall()[0][0]


def test_float_max_states_match_the_operators_in_every_corner(spill_dir: Path) -> None:
    """Found in CI: a group of NaNs only had a NULL max state in the kernel, NaN in the
    operators and the browser worker (whose results are checked against a re-run)."""
    nan = float("nan")
    t = pa.table({"g": [1, 1, 2, 3, 3, 4], "x": [nan, nan, None, nan, 2.0, -0.0]})
    inp = lp.Input("t", Schema.from_arrow(t.schema))
    states = both(agg(inp, ("g",), "partial", "max(x)"), spill_dir, t=t)
    by = {r["g"]: r["__emsqrt_a0_max"] for r in states.to_pylist()}
    assert math.isnan(by[1])
    assert by[2] is None
    assert by[3] == 2.0


def test_counts_of_no_rows_are_the_operators_states(spill_dir: Path) -> None:
    """Found in CI: over no rows and no keys the kernel's count state was 0, the operators'
    (and the browser worker's) NULL."""
    t = pa.table({"x": pa.array([], pa.float64()), "i": pa.array([], pa.int64())})
    inp = lp.Input("t", Schema.from_arrow(t.schema))
    states = both(
        agg(inp, (), "partial", "count(*)", "count(x)", "avg(i)", "sum(i)"), spill_dir, t=t
    )
    assert states.num_rows == 1
    both(agg(lp.Filter(inp, parse("i > 0")), (), "full", "count(*)", "sum(i)"), spill_dir, t=t)


def test_float_keys_group_and_join_canonically(spill_dir: Path) -> None:
    t = pa.table({"f": [0.0, -0.0, float("nan"), float("nan"), 1.0], "v": [1, 2, 3, 4, 5]})
    inp = lp.Input("t", Schema.from_arrow(t.schema))
    grouped = both(agg(inp, ("f",), "full", "sum(v)"), spill_dir, t=t)
    assert grouped.num_rows == 3
    assert both(lp.Join(inp, inp, ("f",), ("f",)), spill_dir, t=t).num_rows == 9


def test_map_filter_project_sort_topk_limit_union(data: Path, spill_dir: Path) -> None:
    m = lp.Map(
        scan(data), (("y", parse("x * 2 + i")), ("i", parse("i + 1")), ("z", parse("i * 10")))
    )
    f = lp.Filter(m, parse("y > 0 OR k IS NULL"))
    both(lp.Project(f, (("a", "z"), ("k", "k"))), spill_dir)
    key = (lp.SortKey("x", True, True), lp.SortKey("i"))

    # ties come out in input order, as the operators' stable sorts give them: whole rows equal
    both(lp.TopK(scan(data), key, 7), spill_dir)
    both(lp.TopK(scan(data), (lp.SortKey("x", True),), 2, ("k",)), spill_dir)
    both(lp.Limit(lp.Sort(scan(data), key), 30, 5), spill_dir)
    both(lp.Limit(lp.Sort(scan(data), (lp.SortKey("j"),)), 40, 3), spill_dir)
    both(lp.Union((scan(data), scan(data, "small.parquet"))), spill_dir)
    both(lp.Union((lp.Filter(scan(data), parse("i > 3")), scan(data, "small.parquet"))), spill_dir)


def test_what_the_kernel_does_not_run_goes_to_the_operators(data: Path, spill_dir: Path) -> None:
    csv = lp.Scan(str(data / "a.csv"), "csv")
    with pytest.raises(Unsupported):
        compile_plan(csv)
    with pytest.raises(Unsupported):  # arg_min's state needs the row ordinal of its tie rule
        compile_plan(agg(scan(data), ("k",), "partial", "arg_min(i, x)"))
    r = run(csv, EngineConfig(spill_dir=str(spill_dir)))
    assert r.manifest.operators[0].op != "kernel"
    assert r.table is not None
    assert r.table.num_rows == 100
    small = EngineConfig(spill_dir=str(spill_dir), mem_cap_bytes=KERNEL_FLOOR_BYTES - 1)
    r = run(agg(scan(data), ("k",), "full", "sum(i)"), small)
    assert "kernel" not in [o.op for o in r.manifest.operators]


def test_a_value_error_is_emsqrts_own_not_duckdbs(spill_dir: Path) -> None:
    t = pa.table({"s": ["1", "2", "x"]})
    inp = lp.Input("t", Schema.from_arrow(t.schema))
    plan = lp.Map(inp, (("n", parse("CAST(s AS INTEGER)")),))
    with pytest.raises(PlatformError) as kernel_error:
        run(plan, EngineConfig(spill_dir=str(spill_dir)), inputs={"t": t})
    with pytest.raises(PlatformError) as ops_error:
        run(plan, EngineConfig(spill_dir=str(spill_dir), kernel="off"), inputs={"t": t})
    assert str(kernel_error.value) == str(ops_error.value)
    assert "duckdb" not in str(kernel_error.value).lower()


def test_a_cap_duckdb_cannot_hold_falls_back_and_spills(tmp_path: Path, spill_dir: Path) -> None:
    """A group-by of 2M distinct keys under the floor cap: DuckDB spills into the run's own
    directory (removed after) or gives up, and either way the answer is exact."""
    n = 2_000_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"k": np.arange(n), "v": np.ones(n, dtype=np.int64)}), path)
    plan = agg(lp.Scan(str(path), "parquet"), ("k",), "full", "sum(v)", "count(*)")
    r = run(plan, EngineConfig(spill_dir=str(spill_dir), mem_cap_bytes=KERNEL_FLOOR_BYTES))
    assert r.table is not None
    assert r.table.num_rows == n
    assert r.table.column("o1").to_numpy().sum() == n


@pytest.mark.parametrize("stream", [False, True])
def test_a_run_out_of_memory_on_several_threads_runs_again_on_one(
    data: Path, spill_dir: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """Each DuckDB thread holds buffers of its own: a statement that runs out of memory on
    two may fit on one, which the kernel tries before it gives the plan to the operators.
    (DuckDB's failure is forced here on more than one thread; test_sql.py's whole TPC-H q09
    under 64 MiB is the real case.)"""
    from emsqrt.kernel import run as kernel_run

    tried: list[int] = []
    attempt = kernel_run._stream_fragment if stream else kernel_run._table_fragment

    def failing_on_several(fragment, cap, spill, threads, on_batch=None, cancelled=None):  # type: ignore[no-untyped-def]
        tried.append(threads)
        if threads > 1:
            return kernel_run._OUT_OF_MEMORY
        return attempt(fragment, cap, spill, threads, on_batch, cancelled)

    name = "_stream_fragment" if stream else "_table_fragment"
    monkeypatch.setattr(kernel_run, name, failing_on_several)
    plan = agg(scan(data), ("k",), "full", "sum(i)", "count(*)")
    config = EngineConfig(spill_dir=str(spill_dir), kernel_threads=2)
    batches: list[pa.RecordBatch] = []
    got = run(plan, config, on_batch=batches.append if stream else None)
    assert tried[-2:] == [2, 1]
    assert [o.op for o in got.manifest.operators] == ["kernel"]  # not the operators
    table = pa.Table.from_batches(batches) if stream else got.table
    assert table is not None
    want = run(plan, EngineConfig(spill_dir=str(spill_dir), kernel="off")).table
    assert want is not None
    _same(table, want)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(st.sampled_from(["k", "j", "f"]), unique=True, max_size=2),
    specs=st.lists(
        st.sampled_from([*AGGS, "median(x)", "count(distinct f)"]), min_size=1, max_size=4
    ),
    pred=st.sampled_from([None, "i > 10", "x < 0.5 OR k IS NULL", "j IN (1, 2, 3)"]),
    mode=st.sampled_from(["full", "partial"]),
)
def test_generated_aggregates(
    data: Path, spill_dir: Path, keys: list, specs: list, pred: str | None, mode: str
) -> None:
    src: lp.Node = scan(data)
    if pred is not None:
        src = lp.Filter(src, parse(pred))
    both(agg(src, tuple(keys), mode, *specs), spill_dir)


def test_paths_are_files_not_globs_or_hive_folders(tmp_path: Path, spill_dir: Path) -> None:
    """Found from outside: DuckDB globbed ``x[1].parquet`` (reading ``x1.parquet``) and took a
    ``year=1999`` folder for a column. The kernel reads the named file or leaves it to the
    operators."""
    pq.write_table(pa.table({"v": [1]}), tmp_path / "x[1].parquet")
    pq.write_table(pa.table({"v": [100]}), tmp_path / "x1.parquet")
    pq.write_table(pa.table({"v": [7]}), tmp_path / "a*.parquet")
    pq.write_table(pa.table({"v": [8]}), tmp_path / "ab.parquet")
    (tmp_path / "year=1999").mkdir()
    pq.write_table(pa.table({"year": [2020, 2021], "v": [1, 2]}), tmp_path / "year=1999/f.parquet")
    cfg = EngineConfig(spill_dir=str(spill_dir))
    for name, want in (("x[1].parquet", [1]), ("a*.parquet", [7])):
        r = run(lp.Scan(str(tmp_path / name), "parquet"), cfg)
        assert r.table is not None
        assert r.table.column("v").to_pylist() == want
    hive = lp.Filter(
        lp.Scan(str(tmp_path / "year=1999/f.parquet"), "parquet"), parse("year = 2020")
    )
    assert both(hive, spill_dir).to_pylist() == [{"year": 2020, "v": 1}]


def test_names_that_differ_only_in_case_stay_apart(spill_dir: Path) -> None:
    t = pa.table({"a": [1, 2, 3], "A": [10, 20, 30]})
    inp = lp.Input("t", Schema.from_arrow(t.schema))
    plan = agg(inp, ("A",), "full", "sum(a)", "max(A)")
    r = run(plan, EngineConfig(spill_dir=str(spill_dir)), inputs={"t": t})
    assert r.table is not None
    assert sorted(r.table.to_pylist(), key=lambda x: x["A"])[0] == {"A": 10, "o0": 1, "o1": 10}


def test_times_are_utc_whatever_the_process_zone(
    spill_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as _time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    _time.tzset()
    try:
        ts = pa.array([1704151800_000_000], pa.timestamp("us", tz="UTC"))  # 2024-01-01 23:30Z
        t = pa.table({"ts": ts})
        inp = lp.Input("t", Schema.from_arrow(t.schema))
        plan = lp.Map(inp, (("h", parse("hour(ts)")), ("d", parse("CAST(ts AS DATE)"))))
        out = both(plan, spill_dir, t=t)
        assert out.column("h").to_pylist() == [23]
    finally:
        monkeypatch.delenv("TZ")
        _time.tzset()


def test_a_kernel_run_that_spills_into_a_spill_dir_not_made_yet(tmp_path: Path) -> None:
    """The task's spill directory is made lazily by the operators; DuckDB makes its own
    temporary directory only when it spills, and only under an existing parent. Before the
    fix every kernel run that had to spill failed there and went to the operators (the elytra
    bench's q8 took 36 s instead of about 1 s)."""
    n = 2_000_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"k": np.arange(n), "v": np.ones(n, dtype=np.int64)}), path)
    spill = tmp_path / "job" / "s0-t0"  # not made yet, like a task's
    plan = agg(lp.Scan(str(path), "parquet"), ("k",), "full", "sum(v)", "count(*)")
    r = run(plan, EngineConfig(spill_dir=str(spill), mem_cap_bytes=64 << 20))
    # under 32 MiB DuckDB spills these 2M groups: without the directory it failed, and the
    # operators ran instead
    assert [o.op for o in r.manifest.operators] == ["kernel"]
    assert r.table is not None
    assert r.table.num_rows == n
    assert r.table.column("o1").to_numpy().sum() == n
    assert not any(spill.iterdir())  # the run's own directory went with it


def test_rows_too_wide_for_duckdbs_vectors_go_to_the_operators(tmp_path: Path) -> None:
    """DuckDB hands results out in vectors of 2048 rows, whatever their width: 2048 rows of
    40 KB are 80 MB, past a 64 MiB cap before anything counts them. Such rows go to the
    operators; narrow ones stay in the kernel."""
    wide, narrow = tmp_path / "wide.parquet", tmp_path / "narrow.parquet"
    duckdb.sql(f"COPY (SELECT i, repeat('x', 40000) || i AS s FROM range(50) t(i)) TO '{wide}'")
    duckdb.sql(f"COPY (SELECT i, 'x' || i AS s FROM range(50) t(i)) TO '{narrow}'")
    config = EngineConfig(spill_dir=str(tmp_path / "spill"), mem_cap_bytes=64 << 20)
    ops = [o.op for o in run(lp.Scan(str(wide), "parquet"), config).manifest.operators]
    assert "kernel" not in ops
    ops = [o.op for o in run(lp.Scan(str(narrow), "parquet"), config).manifest.operators]
    assert ops == ["kernel"]
