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
