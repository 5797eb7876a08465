"""Attacks on the SQL gate from the issue-11 review: names resolve per scope, no file is reached.

Each attack names a raw chunk file (here: of a deleted dataset) or a dataset the query does
not name. The gate must refuse it with a 4xx ``SQLError``, and the sandbox must hold even for
SQL the gate never saw. The property test mixes CTE names and dataset names across scopes
and checks every answer against DuckDB over the real datasets only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lake import LakeNode, SQLError


@pytest.fixture
def lake(
    node: LakeNode, tmp_path: Path, ingest_file: Callable[..., None], csv_maker: Callable[..., Path]
) -> tuple[LakeNode, str, duckdb.DuckDBPyConnection]:
    """Datasets ``sales`` and ``groups``; ``secret`` ingested then deleted (its chunks stay).

    Returns the node, the path of one of the deleted dataset's chunk files, and an oracle:
    a DuckDB holding the live datasets as in-memory tables, with no file access at all.
    """
    sales = csv_maker(tmp_path / "sales.csv", rows=3000, seed=3)
    groups = tmp_path / "groups.csv"
    groups.write_text("grp,label\n" + "".join(f"{g},label{g}\n" for g in range(13)))
    secret = tmp_path / "secret.csv"
    secret.write_text("password\n" + "".join(f"hunter{i}\n" for i in range(50)))
    ingest_file(node, sales, "sales")
    ingest_file(node, groups, "groups")
    ingest_file(node, secret, "secret")
    sha = node.catalog.get("secret").chunks[0].sha256
    node.catalog.delete("secret")
    raw = node.catalog.chunks.path(sha)
    assert raw.is_file()
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{raw}')").fetchall() == [(50,)]
    oracle = duckdb.connect()
    oracle.execute(f"CREATE TABLE sales AS SELECT * FROM read_csv('{sales}')")
    oracle.execute(f"CREATE TABLE groups AS SELECT * FROM read_csv('{groups}')")
    oracle.execute("SET enable_external_access = false")
    oracle.execute("SET python_enable_replacements = false")
    oracle.execute("SET lock_configuration = true")
    return node, str(raw), oracle


ATTACKS = [
    # A CTE in one branch hid the same name, a raw chunk path, in another.
    'SELECT * FROM (WITH "{raw}" AS (SELECT 1 AS password) SELECT * FROM "{raw}") '
    'UNION ALL SELECT * FROM "{raw}"',
    'SELECT * FROM (WITH "{raw}" AS (SELECT \'x\' AS password) SELECT * FROM "{raw}") '
    "UNION ALL SELECT * FROM '{raw}'",
    # Nested CTE shadowing: the inner WITH's name is not visible in the outer body.
    'WITH a AS (SELECT 1 AS password) SELECT * FROM (WITH "{raw}" AS (SELECT * FROM a) '
    'SELECT * FROM "{raw}") x, "{raw}" y',
    # A CTE named like a dataset in one scope; the dataset itself in another.
    "SELECT * FROM (WITH secret AS (SELECT 1 AS password) SELECT * FROM secret) "
    "UNION ALL SELECT * FROM secret",
    # Subquery in FROM, scalar subquery and IN-subquery.
    "SELECT * FROM (SELECT * FROM '{raw}')",
    "SELECT (SELECT count(*) FROM '{raw}') AS n",
    'SELECT * FROM sales WHERE who IN (SELECT password FROM "{raw}")',
    # UNION branches: a CTE attached to one branch's subquery.
    "SELECT who FROM sales UNION (WITH t AS (SELECT 1) SELECT password FROM '{raw}')",
    # Table functions in other cases, quoted, qualified, lateral, nested.
    "SELECT * FROM READ_PARQUET('{raw}')",
    "SELECT * FROM \"Read_Parquet\"('{raw}')",
    "SELECT * FROM main.read_parquet('{raw}')",
    "SELECT * FROM sales, LATERAL read_parquet('{raw}')",
    "SELECT * FROM parquet_scan(['{raw}'])",
    "SELECT * FROM glob('{dir}/*')",
    "SELECT * FROM query('SELECT * FROM ''{raw}''')",
    "SELECT * FROM query_table('secret')",
    "SELECT * FROM read_text('{raw}')",
    "SELECT * FROM read_blob('{raw}')",
    "SELECT * FROM parquet_metadata('{raw}')",
    "SELECT * FROM duckdb_settings()",
    "SELECT count(*) FROM range(5)",  # no table function at all, not even harmless ones
    # String literal (or quoted path) as a table, FROM-first syntax.
    "SELECT * FROM '{raw}'",
    "FROM '{raw}'",
    'SELECT * FROM "{raw}"',
    # read_parquet inside a CTE (used and unused).
    "WITH t AS (SELECT * FROM read_parquet('{raw}')) SELECT * FROM t",
    "WITH t AS (SELECT * FROM read_parquet('{raw}')) SELECT 1",
    # Recursive CTEs: the recursive name is visible only inside its own WITH.
    'WITH RECURSIVE "{raw}"(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM "{raw}" WHERE n < 3) '
    'SELECT * FROM (SELECT * FROM "{raw}") UNION ALL (SELECT 1 FROM "{raw}")',
    "SELECT * FROM (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r "
    "WHERE n < 3) SELECT * FROM r) UNION ALL SELECT count(*) FROM '{raw}'",
    # A CTE body referring to a later CTE: that is not visible in DuckDB.
    'WITH a AS (SELECT * FROM "{raw}"), "{raw}" AS (SELECT 1 AS password) SELECT * FROM a',
]


@pytest.mark.parametrize("template", ATTACKS)
def test_attack_is_refused(
    lake: tuple[LakeNode, str, duckdb.DuckDBPyConnection], template: str
) -> None:
    node, raw, _ = lake
    sql = template.format(raw=raw, dir=str(Path(raw).parent))
    with pytest.raises(SQLError) as refused:
        node.engine.run(sql)
    assert refused.value.status == 400


LEGIT = [
    ("WITH secret AS (SELECT 1 AS x) SELECT * FROM secret", [(1,)]),
    ("WITH sales AS (SELECT count(*) AS n FROM sales) SELECT * FROM sales", [(3000,)]),
    ("WITH g AS (SELECT * FROM groups) SELECT count(*) FROM (SELECT * FROM g) s", [(13,)]),
    ('WITH "A" AS (SELECT 3 AS x) SELECT * FROM a', [(3,)]),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) "
        "SELECT sum(n) FROM r",
        [(10,)],
    ),
    ("WITH a AS (SELECT 2 AS x), b AS (SELECT x + 1 AS x FROM a) SELECT * FROM b", [(3,)]),
    ("SELECT count(*) FROM groups WHERE grp IN (SELECT grp FROM sales)", [(13,)]),
]


@pytest.mark.parametrize(("sql", "expected"), LEGIT)
def test_scoped_ctes_still_answer(
    lake: tuple[LakeNode, str, duckdb.DuckDBPyConnection],
    sql: str,
    expected: list[tuple[object, ...]],
) -> None:
    node, _, oracle = lake
    assert oracle.execute(sql).fetchall() == expected
    got = node.engine.run(sql).table
    assert [tuple(r.values()) for r in got.to_pylist()] == expected


# -- property: mixed CTE names and dataset names across scopes ------------------------------

NAMES = ["sales", "sales", "groups", "c1", "c1", "c2", "c2", "secret", "RAW"]
"""Names a generated query reads (repeats weigh them); ``RAW`` becomes a raw chunk path."""


def _queries() -> st.SearchStrategy[str]:
    """One-column BIGINT queries: selects, WITH (plain/recursive), unions and subqueries."""
    name = st.sampled_from(NAMES)
    quoted = st.booleans()

    def ref(n: str, q: bool) -> str:
        return f'"{n}"' if q or n == "RAW" else n

    leaf = st.builds(lambda n, q: f"SELECT count(*)::BIGINT AS n FROM {ref(n, q)}", name, quoted)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.builds(
                lambda n, q, a, b: f"WITH {ref(n, q)} AS ({a}) {b}", name, quoted, inner, inner
            ),
            st.builds(
                lambda n, b: (
                    f"WITH RECURSIVE {n}(n) AS (SELECT 1::BIGINT UNION ALL "
                    f"SELECT n + 1 FROM {n} WHERE n < 3) {b}"
                ),
                st.sampled_from(["c1", "c2", "secret"]),
                inner,
            ),
            st.builds(lambda a, b: f"({a}) UNION ALL ({b})", inner, inner),
            st.builds(lambda a: f"SELECT count(*)::BIGINT AS n FROM ({a}) s", inner),
            st.builds(
                lambda a, n: (
                    f"SELECT count(*)::BIGINT AS n FROM {ref(n, False)} "
                    f"WHERE 0 < (SELECT max(n) FROM ({a}) s)"
                ),
                inner,
                name,
            ),
        )

    return st.recursive(leaf, extend, max_leaves=6)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=_queries())
def test_generated_scopes_answer_like_duckdb_or_are_refused(
    lake: tuple[LakeNode, str, duckdb.DuckDBPyConnection], query: str
) -> None:
    node, raw, oracle = lake
    sql = query.replace("RAW", raw)
    try:
        theirs: list[tuple[object, ...]] | None = sorted(oracle.execute(sql).fetchall())
    except duckdb.Error:
        theirs = None
    refusal: SQLError | None = None
    try:
        got = node.engine.run(sql).table
    except SQLError as exc:
        refusal = exc
    event(f"{'refused' if refusal else 'answered'}; DuckDB {'answers' if theirs else 'refuses'}")
    if refusal is not None:
        assert refusal.status == 400
        assert refusal.message
        return
    ours = sorted(tuple(r.values()) for r in got.to_pylist())
    assert theirs is not None, f"answered {ours[:3]} where DuckDB over the datasets refuses"
    assert ours == theirs
