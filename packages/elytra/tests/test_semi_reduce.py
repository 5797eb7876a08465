"""Semi-join reduction (``elytra.semireduce``): a group-by joined on its keys with a side that
passed a filtered, small join reads only the keys that side keeps; answers equal DuckDB's."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import elytra

# TPC-H q17's shape: the correlated average is a group-by of all facts by key
CORRELATED = """
SELECT sum(f.v) AS s, count(*) AS n FROM facts f JOIN dims d ON f.k = d.k
WHERE d.tag = 'x' AND f.v < (SELECT 0.5 * avg(f2.v) FROM facts f2 WHERE f2.k = d.k)
"""
# the group-by joined after an inner join with the filtered side, in another order
SEMI = """
SELECT f.k, f.v, g.m FROM facts f
JOIN (SELECT k, max(v) AS m FROM facts GROUP BY k) g ON g.k = f.k
JOIN dims d ON d.k = f.k
WHERE d.tag = 'x' AND f.v = g.m
"""
# the filtered side on the null-supplying side of a LEFT join: every fact row stays, so the
# group-by must not be reduced (its groups of keys without a 'x' dim are matched too)
OUTER = """
SELECT f.k, count(*) AS n, max(g.c) AS c FROM facts f
LEFT JOIN (SELECT * FROM dims WHERE tag = 'x') d ON f.k = d.k
JOIN (SELECT k, count(*) AS c FROM facts GROUP BY k) g ON g.k = f.k
GROUP BY f.k
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """facts: 60,000 rows over 6 files, 5,000 keys; dims: one row per key, 2 % tagged 'x'."""
    where = tmp_path_factory.mktemp("semi")
    rng = np.random.default_rng(46)
    k = rng.integers(0, 5000, 60000)
    facts = pa.table({"k": pa.array(k, pa.int64()), "v": pa.array(rng.integers(0, 100, 60000))})
    for i in range(6):
        pq.write_table(facts.slice(i * 10000, 10000), where / f"facts{i}.parquet")
    tags = np.where(np.arange(5000) % 50 == 3, "x", "y")
    dims = pa.table({"k": pa.array(np.arange(5000), pa.int64()), "tag": pa.array(tags)})
    pq.write_table(dims, where / "dims.parquet")
    return where


def _duckdb(data: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{data}/facts*.parquet')")
    con.execute(f"CREATE VIEW dims AS SELECT * FROM read_parquet('{data}/dims.parquet')")
    rows = sorted(
        tuple(float(x) if x is not None else None for x in r) for r in con.execute(sql).fetchall()
    )
    con.close()
    return rows


def _run(
    data: Path, tmp: Path, sql: str, backend: str
) -> tuple[list[tuple[object, ...]], str, int]:
    """Our rows, the plan's text and the rows the tasks handed to the driver."""
    with elytra.connect(home=tmp / "home", backend=backend, workers=2) as s:
        tables = {
            "facts": s.read_parquet(str(data / "facts*.parquet")),
            "dims": s.read_parquet(data / "dims.parquet"),
        }
        p = s.sql(sql, tables)
        text = p.explain()
        got = p.collect()
        rows_in = s.driver.last.driver_rows_in if s.driver.last else -1
    rows = sorted(
        tuple(float(x) if x is not None else None for x in r.values()) for r in got.to_pylist()
    )
    return rows, text, rows_in


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_a_correlated_group_by_reads_only_the_keys_its_join_keeps(
    data: Path, tmp_path: Path, backend: str
) -> None:
    rows, text, rows_in = _run(data, tmp_path, CORRELATED, backend)
    assert rows == _duckdb(data, CORRELATED)
    assert "partial aggregate, broadcast join" in text, text  # the semi join in its tasks
    assert rows_in < 5000, rows_in  # the 100 tagged keys' groups (and the joined facts), not 5,000


def test_a_group_by_joined_before_the_filtered_side_is_reduced(data: Path, tmp_path: Path) -> None:
    rows, text, _ = _run(data, tmp_path, SEMI, "local")
    assert rows == _duckdb(data, SEMI)
    assert "partial aggregate, broadcast join" in text, text


def test_a_filtered_side_that_keeps_every_row_reduces_nothing(data: Path, tmp_path: Path) -> None:
    rows, _, _ = _run(data, tmp_path, OUTER, "local")
    want = _duckdb(data, OUTER)
    assert rows == want
    assert len(want) == 5000  # every key: the LEFT join kept them all


# TPC-H q20's shape: an IN subquery (a LEFT join to its distinct keys, once decorrelated) and a
# correlated scalar beside it (a LEFT join to a group-by of all facts); the filter above makes
# both joins inner, and the IN side's keys then reduce the group-by
IN_SIDE = """
SELECT f.k, count(*) AS n FROM facts f
WHERE f.k IN (SELECT k FROM dims WHERE tag = 'x')
AND f.v > (SELECT 0.5 * avg(f2.v) FROM facts f2 WHERE f2.k = f.k)
GROUP BY f.k
"""


@pytest.mark.parametrize("backend", ["inline", "local"])
def test_an_in_subquery_reduces_the_correlated_group_by_beside_it(
    data: Path, tmp_path: Path, backend: str
) -> None:
    rows, text, rows_in = _run(data, tmp_path, IN_SIDE, backend)
    assert rows == _duckdb(data, IN_SIDE)
    assert "Join left" not in text, text  # both decorrelated joins are inner
    assert "partial aggregate, broadcast join" in text, text
    assert rows_in < 5000, rows_in  # the 100 tagged keys' groups, not 5,000
