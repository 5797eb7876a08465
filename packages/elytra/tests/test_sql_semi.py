"""IN and EXISTS subqueries planned as semi joins (``elytra.sqlsemi``); DuckDB is the oracle.

sqlglot turns them into a LEFT JOIN to a distinct derived table tested with ``IS NOT NULL``;
the planner joins the outer rows to the subquery's rows as a semi join instead. Each query
runs on the inline backend and on a local pool forced onto the distributed paths, over the
NULL-heavy, skewed and mixed-type tables of ``test_break35_sql``, and must equal DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import elytra
from emsqrt import plan as lp

from .conftest import read_tables, views_oracle
from .test_break35_sql import _forced_settings, _same, write_tables

# each is rewritten into a semi join (checked below), and must still answer as DuckDB does
SEMI = [
    # keys of INTEGER and BIGINT, NULLs and duplicates on both sides
    "SELECT count(*) AS n FROM t1 WHERE k IN (SELECT k FROM t2)",
    "SELECT t1.g, count(*) AS n FROM t1 WHERE EXISTS "
    "(SELECT 1 FROM t3 WHERE t3.k = t1.k AND t3.x > 4) GROUP BY 1 ORDER BY 1",
    # two correlated keys, one of them a string with NULLs
    "SELECT t1.g, count(*) AS n FROM t1 WHERE EXISTS "
    "(SELECT * FROM t2 WHERE t2.k = t1.k AND t2.s = t1.s) GROUP BY 1 ORDER BY 1",
    # decimals of one scale, then of two
    "SELECT count(*) AS n, sum(d) AS s FROM t1 WHERE d IN (SELECT dk FROM t3)",
    "SELECT count(*) AS n FROM t3 WHERE dk IN (SELECT dk FROM t2)",
    # a key computed on the outer side, a subquery over a join
    "SELECT count(*) AS n FROM t1 WHERE k + 1 IN (SELECT k FROM t3)",
    "SELECT t1.s, count(*) AS n FROM t1 WHERE k IN "
    "(SELECT t3.k FROM t3 JOIN t4 ON t3.k = t4.k WHERE t4.s = 'x1') GROUP BY 1 ORDER BY 1",
    # beside an outer join, and twice in one query
    "SELECT t1.g, count(t4.s) AS n FROM t1 LEFT JOIN t4 ON t1.k = t4.k "
    "WHERE t1.k IN (SELECT k FROM t3 WHERE x < 3) GROUP BY 1 ORDER BY 1",
    "SELECT count(*) AS n FROM t1 WHERE k IN (SELECT k FROM t3) "
    "AND EXISTS (SELECT 1 FROM t2 WHERE t2.s = t1.s)",
    # a table against itself, an empty subquery, one of a single NULL
    "SELECT count(*) AS n FROM t1 a WHERE a.k IN (SELECT b.k FROM t1 b WHERE b.g = 2)",
    "SELECT count(*) AS n FROM t1 WHERE k IN (SELECT k FROM empty)",
    "SELECT count(*) AS n FROM t1 WHERE k IN (SELECT k FROM one)",
    # the LEFT JOIN written by hand, rows kept in the outer table's order by a sort
    "SELECT t1.k, t1.s FROM t1 LEFT JOIN (SELECT k FROM t3 GROUP BY k) u ON u.k = t1.k "
    "WHERE u.k IS NOT NULL ORDER BY 1, 2",
    # TPC-H q04's shape
    "SELECT t1.s, count(*) AS n FROM t1 WHERE t1.g >= 1 AND t1.g < 4 AND EXISTS "
    "(SELECT * FROM t2 WHERE t2.k = t1.k AND t2.w > 3) GROUP BY t1.s ORDER BY t1.s",
]

# the same LEFT JOIN shape where the derived table is more than a match test: not rewritten
NOT_SEMI = [
    "SELECT t1.k, u.k AS uk FROM t1 LEFT JOIN (SELECT k FROM t3 GROUP BY k) u ON u.k = t1.k "
    "WHERE u.k IS NOT NULL ORDER BY 1",
    "SELECT count(*) AS n FROM t1 LEFT JOIN (SELECT k FROM t3 GROUP BY k) u ON u.k = t1.k "
    "WHERE u.k IS NULL",
    "SELECT count(*) AS n, sum(u.m) AS s FROM t1 LEFT JOIN (SELECT k, max(x) AS m FROM t3 "
    "GROUP BY k) u ON u.k = t1.k WHERE u.k IS NOT NULL",
    "SELECT count(*) AS n FROM t1 LEFT JOIN (SELECT k FROM t3 GROUP BY k HAVING count(*) > 3) u "
    "ON u.k = t1.k WHERE u.k IS NOT NULL",
    "SELECT count(*) AS n FROM t1 LEFT JOIN (SELECT k FROM t3 GROUP BY k) u "
    "ON u.k = t1.k AND t1.g > 1 WHERE u.k IS NOT NULL",
    "SELECT count(*) AS n FROM t1 WHERE k NOT IN (SELECT k FROM t3)",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_tables(tmp_path_factory.mktemp("semi"))


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[elytra.Session]:
    with elytra.connect(home=tmp_path_factory.mktemp("home"), backend="inline") as s:
        yield s


@pytest.fixture(scope="module")
def forced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[elytra.Session]:
    with elytra.connect(
        home=tmp_path_factory.mktemp("home"), backend="local", workers=2, **_forced_settings()
    ) as s:
        yield s


def _joins(node: lp.Node) -> list[lp.Join]:
    found = [node] if isinstance(node, lp.Join) else []
    return found + [j for child in lp.children(node) for j in _joins(child)]


def _semi(sql: str, session: elytra.Session, files: dict[str, Path]) -> bool:
    """Whether the query's plan joins a table to a subquery as a semi join with no distinct
    over the subquery's keys (an aggregate of no aggregates) beneath it."""
    node = session.sql(sql, read_tables(session, files)).node
    semis = [j for j in _joins(node) if j.how == "semi"]
    return any(not _distincts(j.right) for j in semis)


def _distincts(node: lp.Node) -> list[lp.Aggregate]:
    found = [node] if isinstance(node, lp.Aggregate) and not node.aggregates else []
    return found + [a for child in lp.children(node) for a in _distincts(child)]


@pytest.mark.parametrize("sql", SEMI)
def test_a_match_test_is_a_semi_join(
    sql: str, files: dict[str, Path], inline: elytra.Session
) -> None:
    assert _semi(sql, inline, files), sql


@pytest.mark.parametrize("sql", NOT_SEMI[:5])
def test_a_derived_table_that_is_more_than_a_test_is_joined(
    sql: str, files: dict[str, Path], inline: elytra.Session
) -> None:
    assert not _semi(sql, inline, files), sql


@pytest.mark.parametrize("sql", SEMI + NOT_SEMI)
def test_query_equals_duckdb_inline(
    sql: str, files: dict[str, Path], inline: elytra.Session
) -> None:
    _same(sql, inline.sql(sql, read_tables(inline, files)).collect(), views_oracle(files))


@pytest.mark.parametrize("sql", SEMI + NOT_SEMI)
def test_query_equals_duckdb_on_forced_distributed_paths(
    sql: str, files: dict[str, Path], forced: elytra.Session
) -> None:
    _same(sql, forced.sql(sql, read_tables(forced, files)).collect(), views_oracle(files))


# found from outside (break-it pass): each gave a wrong answer or failed with the rewrite
# before it refused the first two shapes and copied a key column used twice
SMALL = {
    "a": "SELECT id, k, f::DOUBLE AS f FROM (VALUES (1, 1, 1), (2, 2, 2), (3, NULL, NULL)) v(id, k, f)",
    "b": "SELECT * FROM (VALUES (1, 1, 1::BIGINT, 1.0::DOUBLE), (1, 2, 1::BIGINT, 1.0::DOUBLE)) "
    "v(k, g, kk, f)",
    "c": "SELECT * FROM range(1, 5) v(id)",
    "e": "SELECT * FROM (VALUES (1, 1, 1::BIGINT, 1.0::DOUBLE)) v(k, g, kk, f) WHERE false",
}
FOUND = [
    # a RIGHT or FULL join after it adds rows that WHERE's test drops again
    "SELECT a.id AS aid, c.id AS cid FROM a LEFT JOIN (SELECT k FROM b GROUP BY k) u "
    "ON u.k = a.k RIGHT JOIN c ON c.id = a.id WHERE u.k IS NOT NULL ORDER BY 2",
    "SELECT a.id AS aid, c.id AS cid FROM a LEFT JOIN (SELECT k FROM b GROUP BY k) u "
    "ON u.k = a.k FULL JOIN c ON c.id = a.id WHERE u.k IS NOT NULL ORDER BY 2",
    # a GROUP BY key left out of ON: a row per value of it (the CTE read twice keeps it)
    "WITH u AS (SELECT k, g FROM b GROUP BY k, g) SELECT count(*) AS n FROM a "
    "LEFT JOIN u ON u.k = a.k WHERE u.k IS NOT NULL UNION ALL SELECT count(g) FROM u",
    # one outer column compared with two inner ones (no cast between INTEGER and DOUBLE)
    "SELECT a.id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.f AND b.kk = a.f)",
    "SELECT a.id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.f = a.f AND b.g = a.f)",
    "SELECT a.id FROM a WHERE EXISTS (SELECT 1 FROM e WHERE e.f = a.f AND e.k = a.f)",
    "SELECT a.id FROM a LEFT JOIN (SELECT k, kk FROM b GROUP BY k, kk) u ON u.k = a.f "
    "AND u.kk = a.f WHERE u.k IS NOT NULL",
    "SELECT a.id FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b.g = a.k)",
]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("small")
    con = duckdb.connect()
    for t, sql in SMALL.items():
        (root / t).mkdir()
        con.execute(f"COPY ({sql}) TO '{root / t}/p.parquet' (FORMAT parquet)")
    return {t: root / t for t in SMALL}


@pytest.mark.parametrize("sql", FOUND)
def test_found_shapes_equal_duckdb_inline(
    sql: str, small: dict[str, Path], inline: elytra.Session
) -> None:
    _same(sql, inline.sql(sql, read_tables(inline, small)).collect(), views_oracle(small))


@pytest.mark.parametrize("sql", FOUND)
def test_found_shapes_equal_duckdb_on_forced_distributed_paths(
    sql: str, small: dict[str, Path], forced: elytra.Session
) -> None:
    _same(sql, forced.sql(sql, read_tables(forced, small)).collect(), views_oracle(small))
