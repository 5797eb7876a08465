"""Break-testing join sides run first (``elytra.prerun``) from outside: generated data with
NULL keys and values, decimals, dates, strings and int64 sums past its range, several files
per table; every answer equals DuckDB's over the same files, and a job that ran sides first
reports its task counters as one job (done never past total)."""

from __future__ import annotations

import datetime
import decimal
import math
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra

N = 3000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 rows over 4 files (row groups of 200): 40 keys and NULL keys, NULL values."""
    where = tmp_path_factory.mktemp("b45")
    rng = random.Random(45)
    k = [None if rng.random() < 0.05 else rng.randrange(40) for _ in range(N)]
    v = [None if rng.random() < 0.05 else rng.randrange(-50, 100) for _ in range(N)]
    d = [
        None if rng.random() < 0.05 else decimal.Decimal(rng.randrange(-10000, 10000)) / 100
        for _ in range(N)
    ]
    s = [rng.choice(["a", "b", "c", "dd", None, ""]) for _ in range(N)]
    dt = [datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(400)) for _ in range(N)]
    big = [rng.choice([2**62, -(2**62), 1, 2**40]) for _ in range(N)]
    table = pa.table(
        {
            "k": pa.array(k, pa.int64()),
            "v": pa.array(v, pa.int64()),
            "d": pa.array(d, pa.decimal128(12, 2)),
            "s": pa.array(s, pa.string()),
            "dt": pa.array(dt, pa.date32()),
            "big": pa.array(big, pa.int64()),
        }
    )
    for i in range(4):
        pq.write_table(table.slice(i * N // 4, N // 4), where / f"t{i}.parquet", row_group_size=200)
    return where


QUERIES = {
    "in_having": "SELECT k, v FROM t WHERE k IN (SELECT k FROM t GROUP BY k HAVING sum(v) > 3500)",
    "not_in_having_null_key": (
        "SELECT k, v FROM t WHERE k NOT IN (SELECT k FROM t GROUP BY k HAVING sum(v) > 3500)"
    ),
    "not_in_keeps_all_groups_with_null": (
        "SELECT k, v FROM t WHERE k NOT IN (SELECT k FROM t GROUP BY k HAVING count(*) > 0)"
    ),
    "in_keeps_nothing": (
        "SELECT k, v FROM t WHERE k IN (SELECT k FROM t GROUP BY k HAVING sum(v) > 10000000)"
    ),
    "scalar_avg": "SELECT count(*) AS n, sum(v) AS s FROM t WHERE v > (SELECT avg(v) FROM t)",
    "scalar_over_no_rows": (
        "SELECT count(*) AS n FROM t WHERE v > (SELECT avg(v) FROM t WHERE v > 1000)"
    ),
    "scalar_decimal": "SELECT count(*) AS n FROM t WHERE d > (SELECT avg(d) FROM t)",
    "scalar_date": "SELECT count(*) AS n FROM t WHERE dt >= (SELECT max(dt) FROM t)",
    "scalar_string": "SELECT count(*) AS n FROM t WHERE s = (SELECT min(s) FROM t)",
    "left_reduced_right": (
        "SELECT a.k, a.v, g.n FROM t a LEFT JOIN "
        "(SELECT k, count(*) AS n FROM t GROUP BY k HAVING count(*) > 80) g ON a.k = g.k"
    ),
    "right_reduced_left": (
        "SELECT a.k, a.v, g.n FROM (SELECT k, count(*) AS n FROM t GROUP BY k "
        "HAVING count(*) > 80) g RIGHT JOIN t a ON a.k = g.k"
    ),
    "full_reduced": (
        "SELECT a.k, a.v, g.n FROM t a FULL JOIN "
        "(SELECT k, count(*) AS n FROM t GROUP BY k HAVING count(*) > 80) g ON a.k = g.k"
    ),
    "having_keeps_all": (
        "SELECT a.k, a.v, g.n FROM t a JOIN "
        "(SELECT k, count(*) AS n FROM t GROUP BY k HAVING count(*) >= 0) g ON a.k = g.k"
    ),
    "sum_past_int64": (
        "SELECT a.k, g.sb FROM t a JOIN (SELECT k, sum(big) AS sb FROM t GROUP BY k "
        "HAVING sum(big) > 0) g ON a.k = g.k"
    ),
    "decimal_date_side": (
        "SELECT a.k, g.sd, g.md FROM t a JOIN (SELECT k, sum(d) AS sd, min(dt) AS md FROM t "
        "GROUP BY k HAVING sum(d) > 0) g ON a.k = g.k"
    ),
    "null_aggregates": (
        "SELECT a.k, g.ms FROM t a JOIN (SELECT k, max(s) AS ms, sum(v) AS sv FROM t GROUP BY k "
        "HAVING max(s) IS NULL OR sum(v) IS NULL OR count(*) > 80) g ON a.k = g.k"
    ),
    "three_sides": (
        "SELECT count(*) AS n FROM t WHERE k IN (SELECT k FROM t GROUP BY k HAVING sum(v) > 3500)"
        " AND v < (SELECT avg(v) FROM t)"
        " AND k NOT IN (SELECT k FROM t GROUP BY k HAVING count(*) < 60)"
    ),
    "two_reduced_sides": (
        "SELECT a.k, b.k AS k2 FROM (SELECT k FROM t GROUP BY k HAVING count(*) > 80) a JOIN "
        "(SELECT k FROM t GROUP BY k HAVING sum(v) > 3000) b ON a.k = b.k"
    ),
    "nested": (
        "SELECT k, v FROM t WHERE v = (SELECT max(v) FROM t WHERE k IN "
        "(SELECT k FROM t GROUP BY k HAVING count(*) > 80))"
    ),
    "nested_in_side": (
        "SELECT k, v FROM t WHERE k IN (SELECT k FROM t WHERE v > (SELECT avg(v) FROM t) "
        "GROUP BY k HAVING count(*) > 30)"
    ),
    "top_k_side": (
        "SELECT a.k, a.v FROM t a JOIN (SELECT k, v FROM t ORDER BY v DESC NULLS LAST, k "
        "LIMIT 10) g ON a.k = g.k"
    ),
    "self_join_scalar": (
        "SELECT count(*) AS n FROM t a JOIN (SELECT max(v) AS m FROM t) g ON a.v = g.m"
    ),
}


ON_THE_POOL = (
    "not_in_having_null_key",
    "scalar_decimal",
    "full_reduced",
    "having_keeps_all",
    "sum_past_int64",
    "three_sides",
    "nested_in_side",
    "top_k_side",
)


def _norm(rows: Any) -> list[tuple[Any, ...]]:
    def one(x: Any) -> Any:
        if isinstance(x, decimal.Decimal):
            return int(x) if x == x.to_integral_value() else float(x)
        return x

    return sorted((tuple(one(x) for x in r) for r in rows), key=repr)


def _same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            if isinstance(a, float) or isinstance(b, float):
                if a is None or b is None or not math.isclose(a, b, rel_tol=1e-9):
                    return False
            elif a != b:
                return False
    return True


def _duckdb(data: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{data}/t*.parquet')")
    rows = _norm(con.execute(sql).fetchall())
    con.close()
    return rows


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_generated_queries_with_sides_run_first_give_duckdbs_answer(
    data: Path, tmp_path: Path, backend: str
) -> None:
    wrong = {}
    with elytra.connect(home=tmp_path / "home", backend=backend, workers=2) as s:
        for name, sql in QUERIES.items():
            if backend == "local" and name not in ON_THE_POOL:
                continue  # the file's time: the pool runs a representative share
            table = s.sql(sql, {"t": s.read_parquet(str(data / "t*.parquet"))})
            got = _norm(tuple(r.values()) for r in table.collect().to_pylist())
            want = _duckdb(data, sql)
            if not _same(got, want):
                wrong[name] = (got[:3], want[:3], len(got), len(want))
    assert not wrong, wrong


def test_a_job_that_ran_sides_first_counts_its_tasks_as_one_job(data: Path, tmp_path: Path) -> None:
    """The sides' tasks are done tasks of the job: its record's total must count them too,
    else it says ``done 17 of total 4`` and a negative number running."""
    sql = QUERIES["three_sides"]
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        job = s.sql(sql, {"t": s.read_parquet(str(data / "t*.parquet"))}).submit()
        assert job.wait(60) == "succeeded"
        tasks = job.status()["tasks"]
        ran = s.driver.last
    assert "first0 tasks" in ran.stage_seconds  # sides did run first
    assert tasks["done"] == tasks["total"] == ran.tasks_total, tasks
    assert tasks["running"] == 0, tasks


EDGES = {
    "count_over_no_rows": (
        "SELECT count(*) AS n FROM t WHERE k >= (SELECT count(*) FROM t WHERE v > 1000)"
    ),
    "coalesce_sum_over_no_rows": (
        "SELECT count(*) AS n FROM t WHERE v > coalesce((SELECT sum(v) FROM t WHERE v > 1000), 0)"
    ),
    "having_without_group_by": (
        "SELECT k, v FROM t WHERE k IN (SELECT max(k) FROM t HAVING count(*) > 0)"
    ),
    "not_in_empty_having_without_group_by": (
        "SELECT count(*) AS n FROM t WHERE k NOT IN "
        "(SELECT max(k) FROM t HAVING count(*) > 1000000)"
    ),
    "not_in_a_null_only": (
        "SELECT count(*) AS n FROM t WHERE k NOT IN (SELECT max(v) FROM t WHERE v > 1000)"
    ),
    "left_join_of_an_empty_typed_side": (
        "SELECT a.k, g.sd, g.md, g.ms, g.av FROM t a LEFT JOIN (SELECT k, sum(d) AS sd, "
        "min(dt) AS md, max(s) AS ms, avg(v) AS av FROM t GROUP BY k "
        "HAVING count(*) > 1000000) g ON a.k = g.k"
    ),
    "count_distinct_scalar": (
        "SELECT count(*) AS n FROM t WHERE k < (SELECT count(DISTINCT k) FROM t) / 2"
    ),
    "join_on_or_with_a_scalar_side": (
        "SELECT a.k, a.v FROM t a JOIN (SELECT max(v) AS m, min(v) AS mi FROM t) g "
        "ON a.v = g.m OR a.v = g.mi"
    ),
}


def test_edge_sides_run_first_give_duckdbs_answer_and_types(data: Path, tmp_path: Path) -> None:
    """Aggregates without keys over no rows (count 0, sum NULL), HAVING without GROUP BY,
    NOT IN of an empty side and of a NULL, an empty side's column types under a LEFT join."""
    wrong = {}
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        for name, sql in EDGES.items():
            table = s.sql(sql, {"t": s.read_parquet(str(data / "t*.parquet"))})
            assert "run first" in table.explain(), name
            got_table = table.collect()
            got = _norm(tuple(r.values()) for r in got_table.to_pylist())
            want = _duckdb(data, sql)
            if not _same(got, want):
                wrong[name] = (got[:3], want[:3], len(got), len(want))
            if name == "left_join_of_an_empty_typed_side":
                types = [str(t) for t in got_table.schema.types]
                assert types == ["int64", "decimal128(38, 2)", "date32[day]", "string", "double"]
    assert not wrong, wrong


def test_a_side_larger_than_the_drivers_cap_streams_to_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120,000 kept ids (about 1 MB) under a 256 KiB driver cap: the side's rows reach
    ``first0.parquet`` batch by batch, and the answer is DuckDB's."""
    where = tmp_path / "ids"
    where.mkdir()
    n = 30_000
    for i in range(4):
        t = pa.table(
            {
                "id": pa.array(range(i * n, (i + 1) * n), pa.int64()),
                "v": pa.array([(j * 7919) % 1000 for j in range(n)], pa.int64()),
            }
        )
        pq.write_table(t, where / f"b{i}.parquet", row_group_size=7_500)
    sql = (
        "SELECT count(*) AS n, sum(b.v) AS s FROM t b WHERE b.id IN "
        "(SELECT id FROM t GROUP BY id HAVING max(v) >= 0)"
    )
    batches: list[int] = []
    real = pq.ParquetWriter.write_batch

    def write_batch(self, batch, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(self.where).name.startswith("first"):
            batches.append(batch.num_rows)
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", write_batch)
    with elytra.connect(
        home=tmp_path / "home", backend="inline", driver_mem_cap="256KiB", worker_mem_cap="4MiB"
    ) as s:
        table = s.sql(sql, {"t": s.read_parquet(str(where / "b*.parquet"))})
        got = _norm(tuple(r.values()) for r in table.collect().to_pylist())
    assert got == _duckdb_over(where / "b*.parquet", sql)
    assert sum(batches) == 4 * n
    assert max(batches) < 4 * n // 2, batches  # streamed, never the whole side at once


def _duckdb_over(glob: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{glob}')")
    rows = _norm(con.execute(sql).fetchall())
    con.close()
    return rows


@pytest.mark.parametrize("query", ["three_sides", "nested_in_side"])
def test_a_job_that_ran_sides_first_keeps_one_timeline_bar_per_task(
    data: Path, tmp_path: Path, query: str
) -> None:
    """The invariant of ``test_validate``'s one bar per task, for a job whose sides ran first:
    their tasks were named ``s0-t0`` like the job's own, so the job's bars overwrote theirs
    (4 bars for 12 tasks) and the job's stage counters reset the sides'. A side run first
    inside a side run first (``nested_in_side``) was named as the side around it."""
    sql = QUERIES[query]
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        job = s.sql(sql, {"t": s.read_parquet(str(data / "t*.parquet"))}).submit()
        assert job.wait(60) == "succeeded"
        status = job.status()
    tl, total = status["timeline"], status["tasks"]["total"]
    assert len(tl["tasks"]) == total, sorted(tl["tasks"])
    assert sum(s["done"] for s in tl["stages"].values()) == total, tl["stages"]
    assert all(s["done"] == s["total"] for s in tl["stages"].values()), tl["stages"]
    assert any(name.startswith("first0-") for name in tl["tasks"]), sorted(tl["tasks"])


def test_a_job_that_ran_sides_first_counts_the_source_rows_they_read(
    data: Path, tmp_path: Path
) -> None:
    """``rows_in`` is the rows of the job's sources it read: ``three_sides`` reads the table
    once for the job's own stage and once for each of its two sides run first, and the sides'
    files are not sources of the job (it said 3,001: the table once and the side's one row)."""
    sql = (
        "SELECT count(*) AS n FROM t WHERE k IN (SELECT k FROM t GROUP BY k HAVING sum(v) > 3500)"
        " AND v < (SELECT avg(v) FROM t)"
    )
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        job = s.sql(sql, {"t": s.read_parquet(str(data / "t*.parquet"))}).submit()
        assert job.wait(60) == "succeeded"
        status = job.status()
        ran = s.driver.last.stage_seconds
    assert "first1 tasks" in ran, ran  # both sides ran first
    assert status["rows_in"] == 3 * N, status["rows_in"]
