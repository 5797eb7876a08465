"""session.sql: SQL planned into pipeline stages gives DuckDB's answer (issue 35).

TPC-H's 22 queries over tpchgen-cli's data, and seeded generated queries over NULL-heavy,
skewed tables (outer joins, IN / NOT IN / EXISTS subqueries, self joins, HAVING, ORDER BY
with LIMIT), each compared with DuckDB over the same Parquet files; on the inline backend
and on a local pool whose settings force the distributed paths (many small tasks, no
broadcast, exchanges, small caps).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import elytra
from elytra import SQLPlanError
from emsqrt.plan import Input
from lake.sql.tpch import QUERIES, generate

from .conftest import norm, read_tables, views_oracle


def _split(con: duckdb.DuckDBPyConnection, src: str, out: Path, parts: int) -> Path:
    """``src`` rewritten as ``parts`` files of small row groups (so tasks split it)."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(parts):
        con.execute(
            f"COPY (SELECT * EXCLUDE (__r) FROM (SELECT *, row_number() OVER () AS __r "
            f"FROM read_parquet('{src}')) WHERE __r % {parts} = {i}) "
            f"TO '{out}/part{i}.parquet' (FORMAT parquet, ROW_GROUP_SIZE 2048)"
        )
    return out


@pytest.fixture(scope="module")
def tpch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TPC-H at SF 0.01, each table in three files of 2,048-row groups."""
    root = tmp_path_factory.mktemp("tpch")
    files = generate(0.01, root / "raw")
    con = duckdb.connect()
    return {t: _split(con, str(p), root / t, 3) for t, p in files.items()}


def _normed(column: pa.ChunkedArray) -> list[Any]:
    """:func:`norm` of each value of a column, called once per distinct float or decimal (a
    per-value call over a 1.7M-row join result took 21 of its test's 24 seconds)."""
    if not (pa.types.is_floating(column.type) or pa.types.is_decimal(column.type)):
        return column.to_pylist()
    distinct = pc.unique(column)  # a null and NaN each once, matched by index_in
    normed = np.array([norm(v) for v in distinct.to_pylist()], dtype=object)
    at = pc.index_in(column, value_set=distinct)
    assert at.null_count == 0, f"values of {column.type} not found among its distinct values"
    return list(normed[at.to_numpy(zero_copy_only=False)])


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """The table's rows as tuples of :func:`norm`'d Python values."""
    return list(zip(*(_normed(c) for c in table.columns), strict=True))


def _same(sql: str, got: Any, con: duckdb.DuckDBPyConnection, ordered: bool) -> None:
    want = con.sql(sql).to_arrow_table()
    names = want.column_names
    expected = _rows(want)
    assert got.column_names == names, sql
    rows = _rows(got)
    if ordered:
        assert rows == expected, sql
    else:
        assert sorted(rows, key=repr) == sorted(expected, key=repr), sql


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[elytra.Session]:
    with elytra.connect(home=tmp_path_factory.mktemp("home"), backend="inline") as s:
        yield s


@pytest.fixture(scope="module")
def forced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[elytra.Session]:
    """Two workers; every part its own task, no broadcast (joins are partitioned), every
    group-by exchanged, small caps."""
    with elytra.connect(
        home=tmp_path_factory.mktemp("home"),
        backend="local",
        workers=2,
        task_bytes=1,
        split_bytes=1,
        broadcast_bytes=0,
        exchange_min_bytes=1,
        exchange_partitions=3,
        worker_mem_cap="48MiB",
    ) as s:
        yield s


def _types_equal(sql: str, got: Any, con: duckdb.DuckDBPyConnection) -> None:
    """The result's Arrow types are DuckDB's (decimals stay decimals of DuckDB's width)."""
    want = con.sql(sql).to_arrow_table().schema
    assert [f.type for f in got.schema] == [f.type for f in want], sql


@pytest.mark.parametrize("number", sorted(QUERIES))
def test_tpch_equals_duckdb_inline(
    number: int, tpch: dict[str, Path], inline: elytra.Session
) -> None:
    sql = QUERIES[number]
    got = inline.sql(sql, read_tables(inline, tpch)).collect()
    _same(sql, got, views_oracle(tpch), ordered="ORDER BY" in sql)
    _types_equal(sql, got, views_oracle(tpch))


@pytest.mark.parametrize("number", sorted(QUERIES))
def test_tpch_equals_duckdb_on_forced_distributed_paths(
    number: int, tpch: dict[str, Path], forced: elytra.Session
) -> None:
    sql = QUERIES[number]
    got = forced.sql(sql, read_tables(forced, tpch)).collect()
    _same(sql, got, views_oracle(tpch), ordered="ORDER BY" in sql)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Iterator[elytra.Session]:
    """Two workers; a job of at most 1 GiB of sources runs as one task (every TPC-H query
    here: SF 0.01)."""
    with elytra.connect(
        home=tmp_path_factory.mktemp("home"),
        backend="local",
        workers=2,
        whole_query_bytes="1GiB",
        worker_mem_cap="64MiB",
    ) as s:
        yield s


@pytest.mark.parametrize("number", sorted(QUERIES))
def test_tpch_equals_duckdb_as_one_whole_task(
    number: int, tpch: dict[str, Path], whole: elytra.Session
) -> None:
    sql = QUERIES[number]
    p = whole.sql(sql, read_tables(whole, tpch))
    assert whole.driver.whole(p)
    assert whole.driver.sides_first(p) == []  # EXPLAIN's "run first": none here
    plan, _ = whole.driver.plan(p, "t", Path(whole.settings.resolved_spill_dir()))
    assert [len(s.tasks) for s in plan.stages] == [1], plan.stages
    assert isinstance(plan.merge, Input)  # the merge takes the task's rows as they are
    job = p.submit()
    got = job.result()
    assert job.status()["tasks"]["total"] == 1  # no side ran first: the one task ran it all
    _same(sql, got, views_oracle(tpch), ordered="ORDER BY" in sql)
    _types_equal(sql, got, views_oracle(tpch))


def test_a_whole_job_whose_task_runs_out_of_its_cap_runs_again_as_stages(
    tpch: dict[str, Path], tmp_path: Path
) -> None:
    """Found from outside (helper 49): the whole plan's operators share one task's cap, and
    this query (1 MB of sources) ran out of 256 MiB as one task; as stages it answers."""
    csv = tmp_path / "csv"
    csv.mkdir()
    for i in range(3):  # three files: a union of three scans in the one task's plan
        duckdb.execute(
            f"COPY (SELECT r AS id, (r % 10)::INTEGER AS g, r * 0.5 AS amt FROM "
            f"range({i * 500}, {(i + 1) * 500}) t(r)) TO '{csv}/p{i}.csv' (HEADER)"
        )
    one = (
        "SELECT b.c_mktsegment AS g, count(*) AS x0 FROM orders a JOIN customer b "
        "ON a.o_custkey = b.c_custkey WHERE b.c_custkey NOT IN (SELECT g FROM csvt) "
        "GROUP BY b.c_mktsegment"
    )
    sql = f"SELECT * FROM ({one} UNION ALL {one}) u"
    con = views_oracle(tpch)
    con.execute(f"CREATE VIEW csvt AS SELECT * FROM read_csv('{csv}/*.csv')")
    with elytra.connect(home=tmp_path / "h", backend="inline", whole_query_bytes="1GiB") as s:
        p = s.sql(sql, {**read_tables(s, tpch), "csvt": s.read_csv(str(csv / "*.csv"))})
        assert s.driver.whole(p)
        job = p.submit()
        got = job.result()
        assert job.status()["tasks"]["total"] > 1  # as stages, after the one task failed
        assert job.status().get("reruns", 0) == 0  # not a rerun from a lost exchange
    _same(sql, got, con, ordered=False)


def test_a_whole_job_over_a_lake_dataset_of_no_chunk_answers(tmp_path: Path) -> None:
    """Found from outside (helper 49): the task's own source had no chunk, and its scan was
    a union of no input (a PlanError)."""
    from lake import LakeNode, lake_settings

    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"k": pa.array([], pa.int64())}), empty)
    node = LakeNode(lake_settings(None, home=tmp_path / "home"))
    try:
        node.ingest(empty, "empty", owner="alice")
    finally:
        node.stop()
    with elytra.connect(home=tmp_path / "home", backend="inline", whole_query_bytes="1GiB") as s:
        for sql, want in (
            ("SELECT count(*) AS n FROM empty", [{"n": 0}]),
            ("SELECT k FROM empty UNION ALL SELECT k FROM empty", []),
        ):
            p = s.sql(sql)
            assert s.driver.whole(p)
            assert p.collect().to_pylist() == want, sql


Q03_COLUMNS = {
    "customer": {"c_custkey", "c_mktsegment"},
    "orders": {"o_orderkey", "o_custkey", "o_orderdate", "o_shippriority"},
    "lineitem": {"l_orderkey", "l_extendedprice", "l_discount", "l_shipdate"},
}
"""The columns TPC-H q03 reads of each table."""


def _q03_read_bytes(tpch: dict[str, Path]) -> int:
    """What q03 reads, from the footers: the bound on one task is on the bytes of the columns
    a query reads (their compressed sizes), not its files' (a codec or a wide column it never
    reads does not count)."""
    size = 0
    for table, columns in Q03_COLUMNS.items():
        for f in tpch[table].iterdir():
            meta = pq.read_metadata(f)
            for g in range(meta.num_row_groups):
                for c in range(meta.num_columns):
                    col = meta.row_group(g).column(c)
                    size += col.total_compressed_size if col.path_in_schema in columns else 0
    return size


def test_a_job_over_more_than_whole_query_bytes_or_driver_tables_runs_as_stages(
    tpch: dict[str, Path], tmp_path: Path
) -> None:
    sql = QUERIES[3]
    size = _q03_read_bytes(tpch)
    files = sum(f.stat().st_size for t in Q03_COLUMNS for f in tpch[t].iterdir())
    assert size < files // 2
    with elytra.connect(home=tmp_path, backend="inline", whole_query_bytes=size) as s:
        tables = read_tables(s, tpch)
        assert s.driver.whole(s.sql(sql, tables))
        assert s.driver.whole(s.sql(sql, {**tables, "nation": s.from_arrow(pa.table({"x": [1]}))}))
    with elytra.connect(home=tmp_path, backend="inline", whole_query_bytes=size - 1) as s:
        assert not s.driver.whole(s.sql(sql, read_tables(s, tpch)))
    with elytra.connect(home=tmp_path, backend="inline", whole_query_bytes=size) as s:
        orders = s.from_arrow(pq.read_table(tpch["orders"]))  # held in this process
        assert not s.driver.whole(s.sql(sql, {**read_tables(s, tpch), "orders": orders}))


def test_a_job_past_a_quarter_of_a_task_s_cap_or_repartitioned_runs_as_stages(
    tpch: dict[str, Path], tmp_path: Path
) -> None:
    """Every operator of a job run as one task shares one task's cap: past a quarter of it,
    the job runs as stages (one task under a 32 MiB cap spilled to twice the stages' time,
    found from outside). A source given its own count of parts keeps them."""
    sql = QUERIES[3]
    cap = 4 * _q03_read_bytes(tpch)
    with elytra.connect(
        home=tmp_path, backend="inline", whole_query_bytes="1GiB", worker_mem_cap=cap
    ) as s:
        tables = read_tables(s, tpch)
        assert s.driver.whole(s.sql(sql, tables))
        assert not s.driver.whole(
            s.sql(sql, {**tables, "lineitem": tables["lineitem"].repartition(4)})
        )
    with elytra.connect(
        home=tmp_path, backend="inline", whole_query_bytes="1GiB", worker_mem_cap=cap - 4
    ) as s:
        assert not s.driver.whole(s.sql(sql, read_tables(s, tpch)))


def test_on_one_machine_a_job_runs_as_one_task_with_the_caps_of_the_slots_it_replaces(
    tpch: dict[str, Path],
    tmp_path: Path,
    ray_backend: elytra.RayBackend,
    pool: elytra.LocalPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's nodes all on this machine (``machine_slots``: its two CPUs here): a job whose
    columns pass a quarter of a task's cap, but not of the two slots' caps, runs as one task
    under both caps, and equals DuckDB; on the local pool (no slots known) it runs as stages,
    and with ``whole_query_bytes`` 0 never as one task."""
    sql = QUERIES[3]
    size = _q03_read_bytes(tpch)
    cap = 2 * size  # a quarter of it is below the size, a quarter of two of it is not
    assert ray_backend.machine_slots == 2
    with elytra.connect(
        home=tmp_path / "r", backend=ray_backend, whole_query_bytes="64MiB", worker_mem_cap=cap
    ) as s:
        p = s.sql(sql, read_tables(s, tpch))
        assert s.driver.whole(p)
        _, tasks = s.driver.plan(p, "job", tmp_path / "spill")
        assert [t.mem_cap for t in tasks] == [2 * cap]
        got = p.collect()
    want = views_oracle(tpch).sql(sql).to_arrow_table()
    assert got.column_names == want.column_names
    assert [[norm(v) for v in r.values()] for r in got.to_pylist()] == [
        [norm(v) for v in r.values()] for r in want.to_pylist()
    ]
    for bound in (0, size - 1):  # never; a bound set below the job's bytes still holds
        with elytra.connect(
            home=tmp_path / "r0", backend=ray_backend, whole_query_bytes=bound, worker_mem_cap=cap
        ) as s:
            assert not s.driver.whole(s.sql(sql, read_tables(s, tpch)))
    monkeypatch.delenv("ELYTRA_WHOLE_QUERY_BYTES", raising=False)  # conftest's 0
    with elytra.connect(home=tmp_path / "rd", backend=ray_backend, worker_mem_cap=cap) as s:
        assert "whole_query_bytes" not in s.settings.model_fields_set
        assert s.driver.whole(s.sql(sql, read_tables(s, tpch)))  # the default: the caps' quarter
    with elytra.connect(
        home=tmp_path / "l", backend=pool, whole_query_bytes="64MiB", worker_mem_cap=cap
    ) as s:
        p = s.sql(sql, read_tables(s, tpch))
        assert not s.driver.whole(p)
        _, tasks = s.driver.plan(p, "job", tmp_path / "spill")
        assert len(tasks) > 1
        assert {t.mem_cap for t in tasks} == {cap}


# -- generated queries ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tables with NULL-heavy, skewed keys (key 1 holds about half the rows)."""
    root = tmp_path_factory.mktemp("skewed")
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    specs = {
        "a": "CASE WHEN random() < 0.15 THEN NULL WHEN random() < 0.5 THEN 1 "
        "ELSE (random() * 40)::INTEGER END AS k, (random() * 6)::INTEGER AS g, "
        "CASE WHEN random() < 0.1 THEN NULL ELSE round(random() * 100, 1) END AS v, "
        "'s' || (random() * 5)::INTEGER AS s",
        "b": "CASE WHEN random() < 0.2 THEN NULL WHEN random() < 0.4 THEN 1 "
        "ELSE (random() * 60)::INTEGER END AS k, round(random() * 100, 1) AS w, "
        "CASE WHEN random() < 0.3 THEN NULL ELSE 't' || (random() * 3)::INTEGER END AS t",
        "c": "(random() * 30)::INTEGER AS k, (random() * 9)::INTEGER AS x",
    }
    rows = {"a": 3000, "b": 1500, "c": 200}
    out = {}
    for t, cols in specs.items():
        d = root / t
        d.mkdir()
        for i in range(2):
            con.execute(
                f"COPY (SELECT {cols} FROM range({rows[t]})) TO '{d}/p{i}.parquet' "
                "(FORMAT parquet, ROW_GROUP_SIZE 512)"
            )
        out[t] = d
    return out


def _query(rng: random.Random) -> tuple[str, bool]:
    """A seeded query over a, b, c and whether its ORDER BY fixes the row order."""
    join = rng.choice(["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"])
    on_extra = rng.choice(["", " AND b.w > 20", " AND a.v < 70", " AND b.t IS NOT NULL"])
    where = rng.choice(
        [
            "",
            "WHERE a.v > 30",
            "WHERE b.t = 't1' OR a.g = 2",
            "WHERE a.k IN (SELECT k FROM c WHERE x > 3)",
            "WHERE a.k NOT IN (SELECT k FROM b WHERE w > 50)",  # b.k has NULLs: no row
            "WHERE a.k NOT IN (SELECT k FROM c WHERE x > 6)",
            "WHERE EXISTS (SELECT 1 FROM c WHERE c.k = a.k AND c.x > 4)",
            "WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.k = a.k)",
            "WHERE EXISTS (SELECT 1 FROM c WHERE c.k = a.k AND c.x <> a.g)",
            "WHERE a.v > (SELECT avg(w) FROM b)",
        ]
    )
    shape = rng.choice(["group", "rows", "distinct", "self"])
    if shape == "self":
        sql = (
            "SELECT a1.g, count(*) AS n, sum(a2.v) AS s FROM a a1 JOIN a a2 ON a1.k = a2.g "
            "WHERE a1.v > 50 GROUP BY a1.g"
        )
        return sql + " ORDER BY a1.g", True
    base = f"FROM a {join} b ON a.k = b.k{on_extra} {where}"
    if shape == "group":
        having = rng.choice(["", " HAVING count(*) > 3", " HAVING sum(b.w) IS NOT NULL"])
        key = rng.choice(["a.g", "b.t", "a.s, b.t", "coalesce(a.k, b.k) % 5"])
        sql = (
            f"SELECT {key}, count(*) AS n, count(b.w) AS nw, sum(a.v) AS sv, "
            f"min(b.w) AS mw, max(a.s) AS ms {base} GROUP BY {key}{having}"
        )
        return sql, False
    if shape == "distinct":
        return f"SELECT DISTINCT a.g, b.t {base} ORDER BY a.g, b.t LIMIT 12", True
    limit = rng.choice(["", " LIMIT 25", " LIMIT 10 OFFSET 5"])
    sql = (
        f"SELECT a.k AS ak, b.k AS bk, a.v, b.w, a.v + b.w AS vw {base} "
        f"ORDER BY ak, bk, a.v, b.w, vw{limit}"
    )
    return sql, True


@pytest.mark.parametrize("seed", range(40))
def test_generated_queries_equal_duckdb(
    seed: int, skewed: dict[str, Path], inline: elytra.Session, forced: elytra.Session
) -> None:
    sql, ordered = _query(random.Random(seed))
    con = views_oracle(skewed)
    session = forced if seed % 2 else inline
    got = session.sql(sql, read_tables(session, skewed)).collect()
    _same(sql, got, con, ordered)


# a derived table or CTE computing a column on an outer join's null-supplying side: sqlglot
# merged it into the query above, so coalesce(b.w, 0) ran after the join and gave 0, not NULL
NULL_SIDE = [
    "SELECT a.k, d.w FROM a LEFT JOIN (SELECT k, coalesce(w, 0) AS w FROM b) d ON a.k = d.k",
    "SELECT a.k, d.w, d.t FROM a LEFT JOIN (SELECT k, coalesce(w, -1) + 1 AS w, "
    "coalesce(t, 'none') AS t FROM b) d ON a.k = d.k WHERE d.w > -5",
    "WITH d AS (SELECT k, coalesce(w, 0) AS w FROM b) SELECT a.k, d.w FROM a LEFT JOIN d "
    "ON a.k = d.k",
    "SELECT d.k, d.v, b.w FROM (SELECT k, coalesce(v, 7) AS v FROM a) d RIGHT JOIN b ON d.k = b.k",
    "SELECT d.k, d.v, e.x FROM (SELECT k, coalesce(v, 7) AS v FROM a) d FULL JOIN "
    "(SELECT k, coalesce(x, 3) * 2 AS x FROM c) e ON d.k = e.k",
    "SELECT a.g, count(d.w) AS n, sum(d.w) AS s FROM a LEFT JOIN (SELECT k, CASE WHEN w IS NULL "
    "THEN 1 ELSE w END AS w FROM b) d ON a.k = d.k GROUP BY a.g",
]


@pytest.mark.parametrize("i", range(len(NULL_SIDE)))
def test_a_computed_column_on_the_null_supplying_side_stays_null_when_unmatched(
    i: int, skewed: dict[str, Path], inline: elytra.Session, forced: elytra.Session
) -> None:
    sql, session = NULL_SIDE[i], forced if i % 2 else inline
    got = session.sql(sql, read_tables(session, skewed)).collect()
    _same(sql, got, views_oracle(skewed), ordered=False)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("SELEC 1", "does not parse"),
        ("SELECT 1 FROM a; SELECT 2 FROM a", "one statement"),
        ("DROP TABLE a", "only a query"),
        ("SELECT k FROM nowhere", "no dataset 'nowhere'"),
        ("SELECT nope FROM a", "nope"),
        ("SELECT k, row_number() OVER (ORDER BY v) FROM a", "window"),
        ("SELECT k FROM a LIMIT 'x'", "LIMIT"),
    ],
)
def test_a_query_not_planned_says_what_and_why(
    sql: str, words: str, skewed: dict[str, Path], inline: elytra.Session
) -> None:
    with pytest.raises(SQLPlanError, match=words):
        inline.sql(sql, read_tables(inline, skewed))


def test_sql_reads_lake_datasets_by_name_and_goes_on_as_a_pipeline(
    tmp_path: Path, skewed: dict[str, Path]
) -> None:
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        s.read_parquet(str(skewed["c"] / "*.parquet")).write("c")  # a lake dataset
        got = s.sql("SELECT x, count(*) AS n FROM c GROUP BY x").filter("n > 1").sort("x").collect()
    want = views_oracle(skewed).execute(
        "SELECT x, count(*) AS n FROM c GROUP BY x HAVING count(*) > 1 ORDER BY x"
    )
    assert [tuple(r.values()) for r in got.to_pylist()] == want.fetchall()


def test_two_exchanged_group_bys_in_one_job_both_reach_the_merge(
    skewed: dict[str, Path], forced: elytra.Session
) -> None:
    """Found by TPC-H q20 on the forced paths: the driver swapped the first exchanged
    group-by's node into the merge plan, which rebuilt every node above it, so the second
    (looked up by identity) was never swapped ("input 'stage3' was not given")."""
    t = read_tables(forced, skewed)
    left = t["a"].group_by("k").agg(n="count(*)")
    right = t["c"].group_by("k").agg(x="max(x)")
    got = left.join(right, on="k").collect()
    want = views_oracle(skewed).execute(
        "SELECT * FROM (SELECT k, count(*) AS n FROM a GROUP BY k) "
        "JOIN (SELECT k, max(x) AS x FROM c GROUP BY k) USING (k)"
    )
    assert sorted(map(tuple, (r.values() for r in got.to_pylist()))) == sorted(want.fetchall())


def test_a_where_condition_on_the_from_table_filters_it_before_it_joins(
    tpch: dict[str, Path], inline: elytra.Session
) -> None:
    """sqlglot moves a WHERE condition into the ON of the joined table it names, but not one
    on the FROM table (TPC-H q03's ``c_mktsegment = 'BUILDING'`` on customer, the first of
    its comma-joined tables): it filtered every joined row, above all the joins. It now
    filters its table before the join; a condition on a table a RIGHT JOIN may null stays
    above the join, where SQL puts it."""
    from emsqrt import plan as lp

    tables = read_tables(inline, tpch)

    def filters_on(node: lp.Node, column: str) -> list[bool]:
        """For each filter naming ``column``: whether a join is below it."""
        out = []
        if isinstance(node, lp.Filter) and column in str(node.predicate):
            stack, joined = list(lp.children(node)), False
            while stack:
                n = stack.pop()
                joined |= isinstance(n, lp.Join)
                stack.extend(lp.children(n))
            out.append(joined)
        for child in lp.children(node):
            out += filters_on(child, column)
        return out

    assert filters_on(inline.sql(QUERIES[3], tables).node, "c_mktsegment") == [False]
    right = (
        "SELECT count(*) AS n FROM customer RIGHT JOIN orders ON c_custkey = o_custkey "
        "WHERE c_mktsegment = 'BUILDING'"
    )
    assert filters_on(inline.sql(right, tables).node, "c_mktsegment") == [True]
    con = views_oracle(tpch)
    _same(right, inline.sql(right, tables).collect(), con, ordered=False)


def test_date_intervals_are_folded_before_sqlglot_sees_them() -> None:
    """With python-dateutil installed (pandas brings it), sqlglot's optimizer folded
    ``DATE '2024-01-31' + INTERVAL 1 MONTH`` itself, into a DATE where DuckDB has a TIMESTAMP,
    and folded the interval arithmetic the planner refuses; without it, both came out right.
    The planner folds them first, so the optimizer finds no INTERVAL either way."""
    import sqlglot
    from sqlglot import exp

    from elytra.sqlplan import _dates_folded

    tree = sqlglot.parse_one(
        "SELECT DATE '2024-01-31' + INTERVAL 1 MONTH AS d FROM a "
        "WHERE dt < DATE '2024-03-01' - INTERVAL 1 DAY",
        read="duckdb",
    )
    folded = _dates_folded(tree)  # type: ignore[arg-type]
    assert folded.find(exp.Interval) is None
    assert folded.sql("duckdb") == (
        "SELECT CAST('2024-02-29 00:00:00' AS TIMESTAMP) AS d FROM a "
        "WHERE dt < CAST('2024-02-29' AS DATE)"
    )
    for text in (
        "SELECT dt - INTERVAL 1 MONTH FROM a",
        "SELECT k FROM a WHERE dt < DATE '2024-02-29' + INTERVAL 1 YEAR - INTERVAL 1 DAY",
    ):
        with pytest.raises(SQLPlanError, match="INTERVAL"):
            _dates_folded(sqlglot.parse_one(text, read="duckdb"))  # type: ignore[arg-type]


def test_queries_planned_at_once_bind_their_own_tables(tmp_path: Path) -> None:
    """The planner binds every query on a cursor of one DuckDB database: tables of the same
    name and other schemas, planned on several threads at once, never meet."""
    from concurrent.futures import ThreadPoolExecutor

    with elytra.connect(home=tmp_path / "home", backend="inline") as s:

        def plan(i: int) -> list[str]:
            t = s.from_arrow(pa.table({f"c{i}": [i], "k": [str(i)]}))
            return s.sql(f"SELECT c{i} + 1 AS v{i}, k FROM t", {"t": t}).columns

        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(plan, range(40)))
    assert got == [[f"v{i}", "k"] for i in range(40)]


def test_a_query_planned_again_reuses_its_optimized_tree_unharmed(tmp_path: Path) -> None:
    """The planner keeps sqlglot's optimized tree by text and table schemas: the same text
    plans to the same stages again (the kept tree is not changed by the first planning), and
    over tables of another schema it is planned afresh."""
    from elytra import sqlplan

    sql = (
        "SELECT k, sum(v) AS s FROM t WHERE k IN (SELECT k FROM t GROUP BY k "
        "HAVING count(*) > 1) GROUP BY k ORDER BY k"
    )
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        ints = s.from_arrow(pa.table({"k": [1, 1, 2, 3, 3, 3], "v": [1, 2, 3, 4, 5, 6]}))
        first = s.sql(sql, {"t": ints})
        assert any(key[0] == sql for key in sqlplan._OPTIMIZED)
        again = s.sql(sql, {"t": ints})
        assert again.explain() == first.explain()
        assert again.collect().to_pylist() == [{"k": 1, "s": 3}, {"k": 3, "s": 15}]
        texts = s.from_arrow(pa.table({"k": ["a", "a", "b"], "v": [1.5, 2.0, 3.0]}))
        other = s.sql(sql, {"t": texts}).collect()
    assert other.to_pylist() == [{"k": "a", "s": 3.5}]
    assert other.schema.field("k").type == pa.string()


def test_tables_whose_schemas_print_alike_do_not_share_a_kept_plan(tmp_path: Path) -> None:
    """Found by an outside tester: the kept trees were keyed by the schemas' text, and a
    column named ``"x: int64\\ny"`` prints as two columns ``x`` and ``y`` do; the second
    table's query then got the first's tree and failed. The key is the schemas' IPC bytes."""
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        one = s.from_arrow(pa.table({"x: int64\ny": ["s"]}))
        two = s.from_arrow(pa.table({"x": [1], "y": ["t"]}))
        assert one.schema.to_string() == two.schema.to_string()  # the collision itself
        sql = "SELECT * FROM t"
        assert s.sql(sql, {"t": one}).collect().to_pylist() == [{"x: int64\ny": "s"}]
        assert s.sql(sql, {"t": two}).collect().to_pylist() == [{"x": 1, "y": "t"}]
        assert s.sql(sql, {"t": one}).collect().to_pylist() == [{"x: int64\ny": "s"}]
