"""Join sides run first (``elytra.prerun``): a side known to keep few rows (an aggregate
without group keys, or one under a HAVING) is computed before the rest, then read whole by
the other side's tasks; answers equal DuckDB's over the same files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra

HAVING = """
SELECT f.k, sum(f.v) AS s, count(*) AS n FROM facts f
WHERE f.k IN (SELECT k FROM facts GROUP BY k HAVING sum(v) > {limit})
GROUP BY f.k
"""
SCALAR = "SELECT count(*) AS n, sum(v) AS s FROM facts WHERE v > (SELECT avg(v) FROM facts)"
PLAIN = """
SELECT f.k, f.v FROM facts f JOIN (SELECT k, max(v) AS m FROM facts GROUP BY k) g
ON f.k = g.k AND f.v = g.m
"""


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60,000 rows over 6 files: 3,000 keys, a few of them with large sums."""
    where = tmp_path_factory.mktemp("facts")
    rng = np.random.default_rng(45)
    k = rng.integers(0, 3000, 60000)
    v = rng.integers(0, 100, 60000) + np.where(k % 500 == 7, 1000, 0)
    table = pa.table({"k": pa.array(k, pa.int64()), "v": pa.array(v, pa.int64())})
    for i in range(6):
        pq.write_table(table.slice(i * 10000, 10000), where / f"f{i}.parquet")
    return where


def _duckdb(facts: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{facts}/f*.parquet')")
    rows = sorted(con.execute(sql).fetchall())
    con.close()
    return rows


def _ours(s: elytra.Session, facts: Path, sql: str) -> list[tuple[object, ...]]:
    table = s.sql(sql, {"facts": s.read_parquet(str(facts / "f*.parquet"))}).collect()
    return sorted(tuple(r.values()) for r in table.to_pylist())


@pytest.mark.parametrize("backend", ["inline", "local"])
@pytest.mark.parametrize("limit", [5000, 10**9])  # a few keys kept; none
def test_a_having_side_runs_first_and_gives_duckdbs_answer(
    facts: Path, tmp_path: Path, backend: str, limit: int
) -> None:
    sql = HAVING.format(limit=limit)
    with elytra.connect(home=tmp_path / "home", backend=backend, workers=2) as s:
        tables = {"facts": s.read_parquet(str(facts / "f*.parquet"))}
        assert "run first (side 0)" in s.sql(sql, tables).explain()
        got = _ours(s, facts, sql)
        ran = s.driver.last.stage_seconds
    assert "first0 tasks" in ran, ran  # the side ran as a job of its own
    assert got == _duckdb(facts, sql)
    if limit == 10**9:
        assert got == []


def test_a_scalar_side_runs_first(facts: Path, tmp_path: Path) -> None:
    with elytra.connect(home=tmp_path / "home", backend="local", workers=2) as s:
        got = _ours(s, facts, SCALAR)
        ran = s.driver.last.stage_seconds
    assert "first0 tasks" in ran, ran
    assert got == _duckdb(facts, SCALAR)


def test_a_plain_group_by_side_is_not_run_first(facts: Path, tmp_path: Path) -> None:
    """A group-by of a side too big to broadcast may keep as many groups as rows: run first
    it would only add a round. (Facts here are about 1 MB: broadcast up to 100 kB.)"""
    home = tmp_path / "home"
    with elytra.connect(home=home, backend="local", workers=2, broadcast_bytes=100_000) as s:
        tables = {"facts": s.read_parquet(str(facts / "f*.parquet"))}
        assert "run first" not in s.sql(PLAIN, tables).explain()
        got = _ours(s, facts, PLAIN)
        ran = s.driver.last.stage_seconds
    assert not any(k.startswith("first") for k in ran), ran
    assert got == _duckdb(facts, PLAIN)


# a join to the distinct keys of a filtered table: at most the filter's few rows (the same
# query as IN, which is planned as a semi join with no group-by: ``sqlsemi.py``)
IN_FILTERED = (
    "SELECT count(*) AS n, sum(v) AS s FROM facts "
    "JOIN (SELECT k FROM facts WHERE v > 1090 GROUP BY k) u ON facts.k = u.k"
)


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_a_group_by_of_a_small_filtered_side_is_run_first(
    facts: Path, tmp_path: Path, backend: str
) -> None:
    with elytra.connect(home=tmp_path / "home", backend=backend, workers=2) as s:
        tables = {"facts": s.read_parquet(str(facts / "f*.parquet"))}
        assert "run first (side 0)" in s.sql(IN_FILTERED, tables).explain()
        got = _ours(s, facts, IN_FILTERED)
        ran = s.driver.last.stage_seconds
        rows_in = s.driver.last.driver_rows_in
    assert "first0 tasks" in ran, ran
    assert got == _duckdb(facts, IN_FILTERED)
    assert rows_in < 2000, rows_in  # the few keys and the partial sums, not 60,000 facts


def test_the_side_s_file_goes_with_the_job(facts: Path, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    with elytra.connect(home=tmp_path / "home", backend="local", workers=2, spill_dir=spill) as s:
        got = _ours(s, facts, HAVING.format(limit=5000))
        assert got
        left = [p for p in spill.rglob("first*")] if spill.exists() else []
    assert left == []


# a CTE used twice (TPC-H q15's shape): the same group-by of facts at each use
TWICE = """
WITH sums AS (SELECT k, sum(v) AS s FROM facts GROUP BY k)
SELECT a.k, a.s FROM sums a WHERE a.s = (SELECT max(s) FROM sums)
"""


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_a_cte_used_twice_is_computed_once(facts: Path, tmp_path: Path, backend: str) -> None:
    """Each use of the CTE plans the same subtree, so the job runs it first once and both
    uses read its rows: facts are read once, not once per use."""
    with elytra.connect(home=tmp_path / "home", backend=backend, workers=2) as s:
        got = _ours(s, facts, TWICE)
        rows_in = s.driver.last.rows_in
    assert got == _duckdb(facts, TWICE)
    assert len(got) >= 1
    # facts once (60,000) and the CTE's 3,000 rows at its uses; computed twice it is 120,000+
    assert 60000 <= rows_in <= 66000, rows_in


# a side run first that holds a copy of one run before it and runs a side of its own first
# (found from outside: both were named first0, and the copy read the inner side's file)
NESTED = [
    """
WITH r AS (SELECT k, sum(v) AS s FROM facts GROUP BY k),
     q AS (SELECT k, count(*) AS s FROM facts GROUP BY k),
     x AS (SELECT r1.k, sum(r1.s) AS rs, sum(q1.s) + sum(q2.s) AS n
           FROM r r1 JOIN q q1 ON r1.k = q1.k JOIN q q2 ON q1.k = q2.k GROUP BY r1.k)
SELECT a.k, a.s, x1.rs, x2.n FROM r a JOIN x x1 ON a.k = x1.k JOIN x x2 ON a.k = x2.k
""",
    """
WITH r AS (SELECT k, sum(v) AS s FROM facts GROUP BY k)
SELECT f.k, f.v FROM facts f
WHERE f.v > (SELECT max(r.s) / 100 FROM r
             JOIN (SELECT k FROM facts GROUP BY k HAVING count(*) > 25) h ON r.k = h.k)
  AND f.k IN (SELECT k FROM r WHERE s > 1500)
""",
]


@pytest.mark.parametrize("sql", NESTED)
def test_sides_within_sides_read_their_own_files(facts: Path, tmp_path: Path, sql: str) -> None:
    with elytra.connect(home=tmp_path / "home", backend="inline", workers=2) as s:
        got = _ours(s, facts, sql)
    want = _duckdb(facts, sql)
    assert want, "the query keeps rows"
    assert got == want
