"""The SQL gate resolves names per scope: no CTE in one branch lets a file path through in
another, and no query reaches a file by path or table function (issue 11, item 9).

Each attack names a real chunk file of a *deleted* dataset, which the sandbox's allowed
directory (the chunk store) would let DuckDB read: the gate alone must stop it. A ``(SHOW x)``
subquery's name is checked like any other table name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake import LakeNode, SQLError, check_read_only


@pytest.fixture
def deleted_chunk(
    node: LakeNode, tmp_path: Path, ingest_file: Callable[..., None]
) -> tuple[LakeNode, str]:
    secret = tmp_path / "secret.csv"
    secret.write_text("k,v\n" + "".join(f"{i},secret{i}\n" for i in range(50)))
    public = tmp_path / "pub.csv"
    public.write_text("k,v\n" + "".join(f"{i},pub{i}\n" for i in range(20)))
    ingest_file(node, secret, "secret")
    ingest_file(node, public, "pub")
    path = str(node.engine.chunk_paths(node.catalog.get("secret"))[0])
    node.catalog.delete("secret")
    return node, path


ATTACKS = [
    # a CTE named like the path in one branch, the raw path read in another
    'SELECT * FROM (WITH "{p}" AS (SELECT 1 AS k) SELECT * FROM "{p}") '
    'UNION ALL SELECT k FROM "{p}"',
    'SELECT * FROM pub WHERE k IN (WITH "{p}" AS (SELECT 1 AS k) SELECT k FROM "{p}") '
    'OR v IN (SELECT v FROM "{p}")',
    'WITH a AS (WITH "{p}" AS (SELECT 1) SELECT * FROM "{p}") SELECT * FROM "{p}"',
    'SELECT (WITH "{p}" AS (SELECT 1 AS x) SELECT x FROM "{p}") AS one, v FROM "{p}"',
    'WITH b AS (SELECT * FROM "{p}"), "{p}" AS (SELECT 1) SELECT * FROM b',
    'SELECT * FROM pub, LATERAL (WITH "{p}" AS (SELECT 1 AS z) SELECT z FROM "{p}") l '
    'JOIN "{p}" s ON s.k = pub.k',
    # table functions and literals, in any spelling
    "SELECT * FROM read_parquet('{p}')",
    "SELECT * FROM READ_PARQUET('{p}')",
    "WITH x AS (SELECT * FROM read_parquet('{p}')) SELECT * FROM x",
    "SELECT * FROM '{p}'",
    "FROM '{p}'",
    "SELECT * FROM parquet_scan(['{p}'])",
    "SELECT * FROM glob('{p}')",
    "SELECT * FROM query_table('secret')",
    "SELECT * FROM pub WHERE k IN (SELECT k FROM read_csv_auto('{p}'))",
    "WITH RECURSIVE r AS (SELECT 1 AS k UNION ALL SELECT k + 1 FROM r WHERE k < 3) "
    "SELECT * FROM r, '{p}'",
    # the deleted dataset by name, and a CTE of its name in an unrelated scope
    "SELECT * FROM secret",
    "SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) UNION ALL SELECT k FROM secret",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_refused_before_any_file_is_read(
    deleted_chunk: tuple[LakeNode, str], attack: str
) -> None:
    node, path = deleted_chunk
    sql = attack.format(p=path)
    with pytest.raises(SQLError) as info:
        node.engine.run(sql)
    assert info.value.status == 400, info.value


SCOPED = [
    # a CTE visible where it is used is a CTE, wherever else it is named
    ("WITH t AS (SELECT k FROM pub WHERE k < 3) SELECT count(*) FROM t", [(3,)]),
    (
        "SELECT (WITH t AS (SELECT 5 AS x) SELECT x FROM t) AS a, "
        "(WITH t AS (SELECT 6 AS x) SELECT x FROM t) AS b",
        [(5, 6)],
    ),
    ("WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT y FROM b", [(2,)]),
    (
        "WITH RECURSIVE r AS (SELECT 1 AS k UNION ALL SELECT k + 1 FROM r WHERE k < 4) "
        "SELECT sum(k) FROM r",
        [(10,)],
    ),
    ("WITH pub AS (SELECT 42 AS k) SELECT k FROM pub", [(42,)]),  # shadows the dataset
    ("SELECT count(*) FROM (WITH t AS (SELECT * FROM pub) SELECT * FROM t)", [(20,)]),
]


@pytest.mark.parametrize(("sql", "rows"), SCOPED)
def test_ctes_in_scope_still_work(
    deleted_chunk: tuple[LakeNode, str], sql: str, rows: list[tuple[object, ...]]
) -> None:
    node, _ = deleted_chunk
    table = node.engine.run(sql).table
    assert [tuple(r.values()) for r in table.to_pylist()] == rows


def test_a_cte_used_before_its_with_is_refused(deleted_chunk: tuple[LakeNode, str]) -> None:
    node, _ = deleted_chunk
    with pytest.raises(SQLError, match=r"no dataset named"):
        node.engine.run("WITH b AS (SELECT * FROM a), a AS (SELECT 1 AS x) SELECT * FROM b")


NAMES = ["pub", "t", "u", "secret"]


@st.composite
def scoped_queries(draw: st.DrawFn, depth: int = 0) -> str:
    """SELECTs whose FROM names are drawn from datasets and CTE names, CTEs at any depth."""
    source = draw(st.sampled_from(NAMES))
    if depth < 2 and draw(st.booleans()):
        source = f"({draw(scoped_queries(depth + 1))})"
    with_ = ""
    if depth < 2 and draw(st.booleans()):
        # a CTE, always used by the query it belongs to (an unused one is never bound)
        source = draw(st.sampled_from(["t", "u", "pub"]))
        with_ = f"WITH {source} AS ({draw(scoped_queries(depth + 1))}) "
    body = f"{with_}SELECT count(*) AS n FROM {source} s"
    if draw(st.booleans()):
        body = f"{body} UNION ALL SELECT count(*) FROM {draw(st.sampled_from(NAMES))}"
    return body


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(sql=scoped_queries())
def test_generated_scopes_are_refused_or_answered_as_duckdb_answers(
    deleted_chunk: tuple[LakeNode, str], sql: str
) -> None:
    node, _ = deleted_chunk
    oracle = duckdb.connect()
    oracle.execute("CREATE TABLE pub AS SELECT range AS k FROM range(20)")
    try:
        want = sorted(oracle.execute(sql).fetchall())
    except duckdb.Error:
        want = None  # DuckDB cannot answer it over the live datasets only: we must refuse
    refused: SQLError | None = None
    try:
        got = sorted(tuple(r.values()) for r in node.engine.run(sql).table.to_pylist())
    except SQLError as exc:
        refused = exc
    if refused is not None:
        assert refused.status == 400
        assert want is None, f"refused what DuckDB answers over the datasets: {sql}"
        return
    assert want is not None, f"answered what only a missing table could answer: {sql}"
    assert got == want, sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT current_setting('allowed_directories')",
        "SELECT CURRENT_SETTING('temp_directory') FROM pub",
        "SELECT getvariable('x')",
        "SELECT * FROM pub WHERE v = getenv('HOME')",
    ],
)
def test_functions_that_show_the_node_configuration_are_refused(
    deleted_chunk: tuple[LakeNode, str], sql: str
) -> None:
    node, path = deleted_chunk
    with pytest.raises(SQLError, match="configuration") as info:
        node.engine.run(sql)
    assert str(Path(path).parent) not in info.value.message


@pytest.mark.parametrize(
    "sql",
    [
        # sqlglot takes ``(SHOW x)`` as an expression, DuckDB as a SHOW_REF naming table ``x``:
        # neither gate looked at that name, so any string reached DuckDB's catalog lookup.
        'SELECT * FROM ds WHERE a = (SHOW """/srv/lake/chunks/ab.parquet""")',
        'SELECT (SHOW "/srv/lake/chunks/ab.parquet")',
        "SELECT (SHOW other_dataset)",
        'SELECT (SHOW "information_schema"."tables")',
    ],
)
def test_show_subquery_names_are_checked(sql: str) -> None:
    with pytest.raises(SQLError):
        check_read_only(sql, {"ds"})


def test_show_subquery_of_a_dataset_still_answers() -> None:
    stmt = check_read_only("SELECT * FROM (DESCRIBE ds)", {"ds"})
    assert stmt.kind == "select"
    stmt = check_read_only("SELECT * FROM (SUMMARIZE ds)", {"ds"})
    assert stmt.kind == "select"
