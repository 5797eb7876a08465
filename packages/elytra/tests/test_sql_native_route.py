"""The SQL route's short path (``elytra.nativequery``): a query small enough to run as one
task runs as DuckDB's own text before it is planned.

DuckDB over the same files is the oracle. Every query of the SQL test lists runs through the
route (``PlatformSQL``) on the inline backend, a local pool and Ray over lake datasets, with
``Session.sql`` (the planner) made to fail: a query that qualifies must answer without it and
equal DuckDB. What must be planned first is: a function outside the allow list (one that
reads a file, a setting or the environment among them), a table that is not a dataset, a
query too big for one task. Where DuckDB declines in the task, the route plans the query and
answers from the plan.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import elytra
from elytra import NativeDeclinedError
from elytra.nativequery import allowed_functions
from elytra.session import Session
from elytra.settings import ElytraSettings
from elytra.sqlroute import PlatformSQL
from lake import LakeNode, lake_settings
from lake.interfaces import SQLDeclined
from lake.sql.routing import open_query
from lake.sql.tpch import QUERIES as TPCH
from lake.sql.tpch import generate
from platform_core import load_settings

from .test_break35_sql import QUERIES, _same, write_tables
from .test_sql_native import ODD, WHOLE
from .test_sql_semi import NOT_SEMI, SEMI

BREAK = QUERIES + SEMI + NOT_SEMI + ODD


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LakeNode, dict[str, Path]]]:
    """The break-it tables and TPC-H at SF 0.01 as datasets of one lake node, and the
    Parquet file of each, which the oracle reads."""
    root = tmp_path_factory.mktemp("nativeroute")
    con = duckdb.connect()
    files: dict[str, Path] = {}
    (root / "break").mkdir()
    for t, d in write_tables(root / "break").items():
        files[t] = root / f"{t}.parquet"
        con.execute(f"COPY (SELECT * FROM read_parquet('{d}/*.parquet')) TO '{files[t]}'")
    files |= {t: Path(f) for t, f in generate(0.01, root / "tpch").items()}
    node = LakeNode(lake_settings(None, home=root / "home", chunk_bytes=256 * 1024))
    try:
        for t, f in files.items():
            node.ingest(f, t, owner="alice")
        yield node, files
    finally:
        node.stop()


@pytest.fixture(scope="module")
def oracle(lake: tuple[LakeNode, dict[str, Path]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for t, f in lake[1].items():
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{f}')")
    return con


def _inline(node: LakeNode, home: Path, **settings: Any) -> PlatformSQL:
    es = load_settings(
        ElytraSettings, home=home, backend="inline", sql_route="always", **(WHOLE | settings)
    )
    backend = elytra.InlineBackend(es.max_attempts)
    return PlatformSQL(node, es, lambda: backend)


@pytest.fixture(scope="module", params=["inline", "local", "ray"])
def route(
    request: pytest.FixtureRequest,
    lake: tuple[LakeNode, dict[str, Path]],
    tmp_path_factory: pytest.TempPathFactory,
) -> PlatformSQL:
    """The route as a platform has it, every query of these tables small enough for one task."""
    node, _ = lake
    home = tmp_path_factory.mktemp("home")
    es = load_settings(
        ElytraSettings, home=home, backend=request.param, sql_route="always", **WHOLE
    )
    backend: Any = elytra.InlineBackend(es.max_attempts)
    if request.param != "inline":
        backend = request.getfixturevalue("pool" if request.param == "local" else "ray_backend")
    return PlatformSQL(node, es, lambda: backend)


def _run(route: PlatformSQL, sql: str) -> pa.Table:
    ran = route.run_sql(
        sql, mode="run", user="alice", timeout=120.0, query_id="q", cancelled=threading.Event()
    )
    assert ran.table is not None
    return ran.table if isinstance(ran.table, pa.Table) else ran.table.read_all()


def _unplanned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the planner fail; the list gets each text it was asked to plan."""
    asked: list[str] = []

    def refuse(self: Session, query: str, tables: Any = None) -> Any:
        asked.append(query)
        raise AssertionError("the short path planned the query")

    monkeypatch.setattr(Session, "sql", refuse)
    return asked


def _qualifies(lake: tuple[LakeNode, dict[str, Path]], sql: str) -> bool:
    es = load_settings(ElytraSettings, home=lake[1]["t1"].parent / "probe", backend="inline")
    session = Session(es, elytra.InlineBackend(1), catalog=lake[0].catalog)
    return session.native_sql(sql) is not None


@pytest.mark.parametrize("number", sorted(TPCH))
def test_tpch_runs_before_it_is_planned_and_equals_duckdb(
    route: PlatformSQL,
    oracle: duckdb.DuckDBPyConnection,
    monkeypatch: pytest.MonkeyPatch,
    number: int,
) -> None:
    _unplanned(monkeypatch)
    _same(TPCH[number], _run(route, TPCH[number]), oracle)


@pytest.mark.parametrize("sql", BREAK)
def test_odd_sql_runs_before_it_is_planned_or_is_planned_and_equals_duckdb(
    route: PlatformSQL,
    lake: tuple[LakeNode, dict[str, Path]],
    oracle: duckdb.DuckDBPyConnection,
    monkeypatch: pytest.MonkeyPatch,
    sql: str,
) -> None:
    """A query that qualifies answers without the planner; one that does not is planned (and
    then answers as before, or is declined to the lake as before)."""
    if _qualifies(lake, sql):
        _unplanned(monkeypatch)
        _same(sql, _run(route, sql), oracle)
        return
    try:
        got = _run(route, sql)
    except SQLDeclined:
        return  # the planner refused it: the lake answers (test_sql_route)
    _same(sql, got, oracle)


def test_most_of_the_lists_qualify(lake: tuple[LakeNode, dict[str, Path]]) -> None:
    """The short path is the rule, not the exception: every TPC-H query and nearly every
    query of the break-it lists qualifies (the others call a function outside the list)."""
    assert all(_qualifies(lake, TPCH[n]) for n in TPCH)
    missed = [sql for sql in BREAK if not _qualifies(lake, sql)]
    assert len(missed) <= len(BREAK) // 10, missed


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT getenv('HOME') AS h FROM t1",
        "SELECT current_setting('temp_directory') AS d FROM t1",
        "SELECT k FROM t1 ORDER BY current_setting('temp_directory')",
        "SELECT * FROM read_parquet('/etc/hostname')",
        "SELECT * FROM 'nation.parquet'",
        "SELECT * FROM t1, read_csv('/etc/passwd')",
        "SELECT * FROM main.t1",
        "SELECT * FROM t1 TABLESAMPLE 10%",
        "WITH t1 AS (SELECT 1 AS k) SELECT * FROM t1",
        "SELECT k FROM t1; SELECT k FROM t2",
        "SELECT row_number() OVER () AS r FROM t1",
        # a CTE's name used out of its scope is DuckDB's file or catalog table (break-it F1)
        'SELECT * FROM "/etc/hostname", (WITH "/etc/hostname" AS (SELECT 1 AS z) '
        "SELECT count(*) AS n FROM t1) s",
        "SELECT * FROM pg_settings, (WITH pg_settings AS (SELECT 1) SELECT count(*) n FROM t1) s",
        "SELECT k FROM nosuch",
    ],
)
def test_what_must_be_planned_first_does_not_qualify(
    lake: tuple[LakeNode, dict[str, Path]], sql: str
) -> None:
    assert not _qualifies(lake, sql)


@pytest.mark.parametrize("sql", ["SELECT k, k FROM t1", "SELECT nosuch FROM t1"])
def test_what_duckdb_refuses_in_the_task_is_planned_and_declined_as_before(
    lake: tuple[LakeNode, dict[str, Path]], tmp_path: Path, sql: str
) -> None:
    """A query that qualifies but that DuckDB refuses (a column it lacks), or whose result
    names a column twice (which the planner refuses), is planned after its task declined,
    and the planner's error declines it to the lake as before."""
    assert _qualifies(lake, sql)
    with pytest.raises(SQLDeclined, match="SQLPlanError"):
        _run(_inline(lake[0], tmp_path), sql)


# an unnamed select item with a subquery: DuckDB names it by its text, which in the task's
# text has the chunks' paths for the table (break-it F2); planned, named as the caller wrote
NAMED_BY_TEXT = [
    "SELECT (SELECT max(k) FROM t2) FROM t1 ORDER BY 1 LIMIT 3",
    "SELECT k, k IN (SELECT k FROM t2) FROM t1 ORDER BY 1, 2",
    "SELECT EXISTS (SELECT 1 FROM t2 WHERE t2.k = t1.k) FROM t1 ORDER BY 1",
    "SELECT * FROM (SELECT g, (SELECT count(*) FROM t3 WHERE t3.k = t1.k) FROM t1) s ORDER BY 1, 2",
    "SELECT g FROM t1 UNION ALL SELECT (SELECT min(x) FROM t3) FROM t4 ORDER BY 1",
    # sqlglot's rendering, which the task runs, names these otherwise (second break-it pass)
    "SELECT k::VARCHAR, CAST(k AS VARCHAR), k::BOOL FROM t1 ORDER BY 1, 2, 3",
    "SELECT k ** 2, len(s), ceiling(d), +k FROM t1 ORDER BY 1, 2, 3, 4",
    "SELECT substr(s, 1, 2), if(k > 1, 1, 0) FROM t1 ORDER BY 1, 2",
    "SELECT max_by(s, d), 1_000 FROM t1",
    "SELECT * FROM (SELECT len(s), g FROM t1) u ORDER BY 1, 2",
]
# types: DuckDB types .5 DECIMAL(1,1), sqlglot reads it as 0.5, a DECIMAL(2,1); these run
# before they are planned, or are planned, either way as DuckDB types them
TYPED_BY_TEXT = [
    "SELECT .5 AS x, d * .5 AS y FROM t1 ORDER BY 2",
    "SELECT 1e3 AS x, 1_000 AS y, .125 AS z FROM t1 WHERE d > .5 LIMIT 1",
]


@pytest.mark.parametrize("sql", NAMED_BY_TEXT + TYPED_BY_TEXT)
def test_a_result_column_named_or_typed_by_its_text_is_as_duckdb_makes_it(
    route: PlatformSQL,
    lake: tuple[LakeNode, dict[str, Path]],
    oracle: duckdb.DuckDBPyConnection,
    sql: str,
) -> None:
    assert sql in TYPED_BY_TEXT or not _qualifies(lake, sql)
    stream = open_query(lake[0].engine, route, sql, user="alice", timeout=120.0)
    got = stream.read_all()  # planned, or declined to the lake
    assert not any("parquet" in n or "__elytra" in n or "/" in n for n in got.column_names)
    _same(sql, got, oracle)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT t1 AS r FROM t1",  # the table's row, a struct of every column
        "SELECT max(t1) AS m FROM t1",
        "SELECT count(*) AS n FROM t1 a WHERE a IS NOT NULL",
        "SELECT #4 AS s FROM t1",  # the fourth column by place
        "SELECT count(*) AS n FROM t1 NATURAL JOIN t2",
        "SELECT k AS t1, t1 AS r FROM t1",
        "SELECT count(*) AS n FROM t1 WHERE s IS NOT NULL OR t1 IS NULL",
        # the table's columns renamed in its alias: ``b`` is then t1's ``g``
        "SELECT max(b) AS m FROM t1 AS t(a, b)",
        "SELECT max(k) AS m FROM t1 AS t(a, k)",
    ],
)
def test_a_query_that_reads_columns_it_does_not_name_weighs_them_all(
    lake: tuple[LakeNode, dict[str, Path]], sql: str
) -> None:
    """The one-task bound weighs the columns a query reads (break-it F3: these weighed none
    of t1's, and one too big for a task ran as one)."""
    es = load_settings(ElytraSettings, home=lake[1]["t1"].parent / "probe", backend="inline")
    native = Session(es, elytra.InlineBackend(1), catalog=lake[0].catalog).native_sql(sql)
    if native is None:
        return  # planned first: the planner's stages weigh what they read
    for source, columns in native.columns.items():
        assert columns == tuple(native.sources[source].schema.names), sql


def test_a_query_weighs_only_the_columns_it_names(lake: tuple[LakeNode, dict[str, Path]]) -> None:
    es = load_settings(ElytraSettings, home=lake[1]["t1"].parent / "probe", backend="inline")
    session = Session(es, elytra.InlineBackend(1), catalog=lake[0].catalog)
    native = session.native_sql(
        "SELECT g, count(*) AS n FROM t1 JOIN t2 USING (k) WHERE EXISTS "
        "(SELECT * FROM t3 WHERE t3.x = t1.g) GROUP BY g"
    )
    assert native is not None
    assert sorted(sorted(c) for c in native.columns.values()) == [
        ["g", "k"],
        ["k"],
        ["k", "x"],
    ]  # a name, of every table


def test_the_allow_list_reads_nothing() -> None:
    allowed = allowed_functions()
    assert {"Sum:", "Count:", "Cast:", "Case:", "Extract:", "Substring:"} <= allowed
    assert not any(k.startswith(("Anonymous:", "Read")) for k in allowed), allowed


def test_a_query_too_big_for_one_task_is_planned(
    lake: tuple[LakeNode, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _unplanned(monkeypatch)
    route = _inline(lake[0], tmp_path, whole_query_bytes=1024)
    with pytest.raises(SQLDeclined, match="short path planned"):
        _run(route, TPCH[6])
    assert asked == [TPCH[6]]


def test_where_duckdb_declines_in_the_task_the_query_is_planned(
    lake: tuple[LakeNode, dict[str, Path]],
    oracle: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DuckDB declining in the task (told to here, on the inline backend, in this process)
    fails the job with NativeDeclinedError, never retried; the route then plans the query,
    whose job runs the plan (its own text declines again there) and equals DuckDB."""
    import elytra.nativesql

    calls: list[int] = []

    def decline(*args: Any, **kwargs: Any) -> None:
        calls.append(1)

    monkeypatch.setattr(elytra.nativesql, "run_native", decline)
    planned: list[str] = []
    real = Session.sql

    def spy(self: Session, query: str, tables: Any = None) -> Any:
        planned.append(query)
        return real(self, query, tables)

    monkeypatch.setattr(Session, "sql", spy)
    _same(TPCH[3], _run(_inline(lake[0], tmp_path), TPCH[3]), oracle)
    assert planned == [TPCH[3]]
    assert len(calls) == 2  # once before it was planned, once as the planned job's text


def test_the_declined_error_is_never_retried() -> None:
    from elytra.retry import retryable

    assert not retryable(NativeDeclinedError("declined"))


def test_on_ray_across_platforms_the_small_tables_are_this_nodes_own_copies(
    lake: tuple[LakeNode, dict[str, Path]], tmp_path: Path
) -> None:
    """Where the platform that runs the task finds its chunks (Ray across platforms), the
    small tables' chunks go with the task from this node's own copies, never fetched from a
    peer (the first version handed the chunks' names to the pinning, so every query fetched
    nation and region again over the network)."""
    from elytra.jobs import Job

    fetched: list[str] = []

    def fetch(sha: str, origin: str) -> bytes:
        fetched.append(sha)
        raise AssertionError("fetched a chunk this node holds")

    es = load_settings(ElytraSettings, home=tmp_path, backend="inline", **WHOLE)
    backend = elytra.InlineBackend(1)
    backend.resolves_chunks = True  # type: ignore[attr-defined]
    session = Session(es, backend, catalog=lake[0].catalog, fetch=fetch)
    q = session.native_sql(TPCH[5])
    assert q is not None
    task = session.driver._native_task(Job("j1", owner=None, plan=""), q, tmp_path / "spill")  # type: ignore[union-attr]
    shared = task.files[len(task.files) - task.shared_files :]
    assert shared, task.files  # nation and region: small tables
    assert all(Path(f).is_file() for f in shared), shared
    assert fetched == []
