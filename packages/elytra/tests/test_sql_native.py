"""A SQL job run as one task hands DuckDB the query's own text (``elytra.nativesql``).

DuckDB is the oracle: every query of the SQL tests here (odd joins, semi joins, NULL-heavy
and skewed keys) runs as one task on the inline backend, a local pool and Ray, must equal
DuckDB over the same files, and must have been run from its text (``native_tasks``), not
from the plan. What must not run from the text runs the plan and still equals DuckDB: a
pipeline grown from the query, a table that is a pipeline with steps, CSV files (the text's
scans are Parquet reads), a cap DuckDB cannot run the query under.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import elytra
from elytra import SQLPlanError
from elytra.nativesql import native_of
from elytra.sqlplan import parse_query
from platform_core import PlatformError

from .conftest import read_tables, views_oracle
from .test_break35_sql import QUERIES, _same, write_tables
from .test_sql_semi import NOT_SEMI, SEMI

WHOLE = {"whole_query_bytes": "1GiB", "worker_mem_cap": "256MiB"}
"""Every job of these tables runs as one task."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tables(tmp_path_factory.mktemp("native"))


@pytest.fixture(scope="module", params=["inline", "local", "ray"])
def whole(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[elytra.Session]:
    backend: Any = "inline"
    if request.param != "inline":
        backend = request.getfixturevalue("pool" if request.param == "local" else "ray_backend")
    with elytra.connect(home=tmp_path_factory.mktemp("home"), backend=backend, **WHOLE) as s:
        yield s


def _ran(session: elytra.Session, p: elytra.Pipeline) -> tuple[pa.Table, int]:
    """The pipeline's rows and how many of its tasks DuckDB ran from the query's text."""
    table = p.collect()
    stats = session.driver.last  # type: ignore[union-attr]
    assert stats is not None
    assert stats.tasks_total == 1, "the job ran as one task"
    return table, stats.native_tasks


ODD = [
    # table names in any case, aliases, a table read three times, a CTE over a table
    "SELECT T1.g, count(*) AS n FROM T1 JOIN t3 ON T1.k = t3.k GROUP BY 1 ORDER BY 1",
    "SELECT a.g, count(*) AS n FROM t1 a, t1 b, t1 c WHERE a.k = b.k AND b.g = c.g "
    "AND a.g < 2 AND c.k = 7 GROUP BY 1 ORDER BY 1",
    "WITH u AS (SELECT k, sum(x) AS sx FROM t3 GROUP BY k) "
    "SELECT t4.s, sum(u.sx) AS total FROM t4 JOIN u ON t4.k = u.k GROUP BY 1 ORDER BY 1",
    # a literal and a quoted identifier that spell a table's name or a placeholder's stem
    "SELECT 't1' AS t, '__elytra_table_' AS p, \"t4\".\"s\" FROM t4 ORDER BY 3 LIMIT 5",
    # a group-by expression over a join, ties under a LIMIT, DISTINCT, UNION
    "SELECT t1.k % 3 AS m, t1.g, count(*) AS n FROM t1 JOIN t4 ON t1.k = t4.k "
    "GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 4",
    "SELECT DISTINCT s FROM t1 ORDER BY 1 NULLS FIRST",
    "SELECT k FROM t3 UNION SELECT k FROM t4 ORDER BY 1",
    # scalar subquery, NOT IN against NULLs, decimals and doubles (NaN, -0.0)
    "SELECT count(*) AS n FROM t1 WHERE d > (SELECT avg(d) FROM t1)",
    "SELECT count(*) AS n FROM t2 WHERE k NOT IN (SELECT k FROM t1 WHERE k IS NOT NULL)",
    "SELECT g, sum(f) AS sf, count(f) AS cf FROM t5 GROUP BY 1 ORDER BY 1",
    # no rows, and one NULL row
    "SELECT count(*) AS n, sum(w) AS s FROM empty",
    "SELECT k, w FROM one",
]


@pytest.mark.parametrize("sql", QUERIES + SEMI + NOT_SEMI + ODD)
def test_a_whole_query_is_duckdbs_own_and_equals_duckdb(
    sql: str, files: dict[str, Path], whole: elytra.Session
) -> None:
    table, native = _ran(whole, whole.sql(sql, read_tables(whole, files)))
    _same(sql, table, views_oracle(files))
    assert native == 1, f"the task ran the plan, not the query's text: {sql}"


def test_explain_says_duckdb_runs_the_text(files: dict[str, Path], whole: elytra.Session) -> None:
    p = whole.sql("SELECT k, count(*) AS n FROM t3 GROUP BY k", read_tables(whole, files))
    assert "the query's own text run by DuckDB" in p.explain()
    grown = p.filter(elytra.col("n") > 1)
    assert "the query's own text" not in grown.explain()


def test_a_pipeline_grown_from_a_query_runs_its_plan(
    files: dict[str, Path], whole: elytra.Session
) -> None:
    sql = "SELECT k, count(*) AS n FROM t3 GROUP BY k"
    p = whole.sql(sql, read_tables(whole, files)).filter(elytra.col("n") > 3)
    table, native = _ran(whole, p)
    assert native == 0
    want = views_oracle(files).sql(f"SELECT * FROM ({sql}) WHERE n > 3").to_arrow_table()
    assert sorted(table.to_pylist(), key=repr) == sorted(want.to_pylist(), key=repr)


def test_a_table_with_steps_of_its_own_is_read_through_its_plan(
    files: dict[str, Path], whole: elytra.Session
) -> None:
    tables = read_tables(whole, files)
    tables["t3"] = tables["t3"].filter(elytra.col("x") > 4)  # the text cannot know this
    sql = "SELECT count(*) AS n, sum(k) AS s FROM t3"
    table, native = _ran(whole, whole.sql(sql, tables))
    assert native == 0
    want = views_oracle(files).sql("SELECT count(*) AS n, sum(k) AS s FROM t3 WHERE x > 4")
    assert table.to_pylist() == want.to_arrow_table().to_pylist()


def test_no_text_where_a_cte_is_named_as_a_table(files: dict[str, Path]) -> None:
    with elytra.connect(home=files["t1"].parent / "cte-home", backend="inline", **WHOLE) as s:
        tables = read_tables(s, files)
        sql = "WITH t3 AS (SELECT k FROM t4 WHERE s = 'x1') SELECT count(*) AS n FROM t3"
        assert native_of(sql, parse_query(sql), tables, parse_query(sql)) is None
        table, native = _ran(s, s.sql(sql, tables))
        assert native == 0
        assert table.to_pylist() == views_oracle(files).sql(sql).to_arrow_table().to_pylist()


def test_csv_tables_run_the_plan(tmp_path: Path) -> None:
    """The text's scans are Parquet reads: a CSV table's query runs its plan (emsqrt reads
    CSV with its own type inference), and still equals DuckDB's ``read_csv``."""
    path = tmp_path / "t.csv"
    duckdb.sql(
        "COPY (SELECT i % 7 AS k, i * 0.5 AS v FROM range(500) r(i)) TO "
        f"'{path}' (HEADER, DELIMITER ',')"
    )
    with elytra.connect(home=tmp_path / "home", backend="inline", **WHOLE) as s:
        sql = "SELECT k, sum(v) AS s FROM t GROUP BY k ORDER BY k"
        table, native = _ran(s, s.sql(sql, {"t": s.read_csv(str(path))}))
    assert native == 0
    want = duckdb.sql(sql.replace("FROM t", f"FROM read_csv('{path}')")).to_arrow_table()
    assert table.to_pylist() == want.to_pylist()


def test_a_cap_duckdb_cannot_run_under_falls_back_to_the_plan(tmp_path: Path) -> None:
    """Under a cap below DuckDB's floor the text is not tried: the plan runs (and spills)."""
    path = tmp_path / "big.parquet"
    duckdb.sql(
        "COPY (SELECT i % 5000 AS k, md5(i::VARCHAR) AS s FROM range(200000) r(i)) "
        f"TO '{path}' (FORMAT parquet)"
    )
    sql = "SELECT k, count(DISTINCT s) AS n FROM big GROUP BY k ORDER BY k"
    with elytra.connect(
        home=tmp_path / "home",
        backend="inline",
        whole_query_bytes="1GiB",
        worker_mem_cap="16MiB",
        driver_mem_cap="64MiB",
    ) as s:
        p = s.sql(sql, {"big": s.read_parquet(str(path))})
        table = p.collect()
        stats = s.driver.last  # type: ignore[union-attr]
    assert stats is not None
    assert stats.native_tasks == 0
    want = duckdb.sql(sql.replace("FROM big", f"FROM read_parquet('{path}')")).to_arrow_table()
    assert table.to_pylist() == want.to_pylist()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM t1, read_csv('/etc/passwd')",
        "SELECT * FROM query('SELECT 1')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT getenv('HOME') AS h FROM t1",
        "SELECT current_setting('temp_directory') AS d FROM t1",
        "SELECT 1 AS x FROM t1; SELECT 2",
        # a sample or an UNPIVOT was dropped from the text and from the plan: all rows
        "SELECT count(*) AS n FROM t1 TABLESAMPLE RESERVOIR(5 ROWS)",
        "SELECT count(*) AS n FROM t4 UNPIVOT (v FOR c IN (k, s))",
    ],
)
def test_the_text_reads_nothing_the_caller_did_not_give(
    sql: str, files: dict[str, Path], whole: elytra.Session
) -> None:
    """Only a query that planned keeps its text: a table function, a path, a function the
    planner does not translate or a second statement is refused before anything runs."""
    with pytest.raises(SQLPlanError):
        whole.sql(sql, read_tables(whole, files))


@pytest.mark.parametrize(
    "sql",
    [
        # found from outside: sqlglot's optimizer drops these parts, so the planner never saw
        # the function in them; DuckDB ran it, and a result's order read out its setting
        "SELECT DISTINCT k FROM (SELECT k FROM t3 ORDER BY "
        "ascii(substr(current_setting('TimeZone'), 1, 1)) - k) x",
        "WITH unused AS (SELECT current_setting('temp_directory') AS d FROM t1) "
        "SELECT count(*) AS n FROM t3",
    ],
)
def test_a_function_the_planner_never_saw_is_not_run_from_the_text(
    sql: str, files: dict[str, Path], whole: elytra.Session
) -> None:
    table, native = _ran(whole, whole.sql(sql, read_tables(whole, files)))
    assert native == 0, sql
    want = views_oracle(files).sql(sql).to_arrow_table()  # no order asked of the outer query
    assert sorted(table.to_pylist(), key=repr) == sorted(want.to_pylist(), key=repr), sql


def test_a_value_duckdb_cannot_convert_after_rows_went_out_is_named(tmp_path: Path) -> None:
    """DuckDB fails after it streamed rows into the task's result file: the file goes and the
    plan runs, which names the value (not a retried, unnamed ``StreamBroken``)."""
    path = tmp_path / "big.parquet"
    duckdb.sql(
        f"COPY (SELECT i AS id, md5(i::VARCHAR) AS h FROM range(300000) r(i)) TO '{path}' "
        "(FORMAT parquet)"
    )
    sql = "SELECT id, h, CAST(CASE WHEN id < 290000 THEN '1' ELSE 'x' END AS INTEGER) AS v FROM b"
    with elytra.connect(
        home=tmp_path / "home", backend="inline", driver_mem_cap="32MiB", **WHOLE
    ) as s:
        with pytest.raises(PlatformError, match="'x'"):
            s.sql(sql, {"b": s.read_parquet(str(path))}).collect()
        left = [f for f in (tmp_path / "home").rglob("*") if f.is_file() and "spill" in f.parts]
        assert left == []
