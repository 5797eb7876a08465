"""``elytra.sqlroute.PlatformSQL``, the lake's SQL executor, over a real lake node: what the
platform's query route gets from it. TPC-H (SF 0.01) answers equal DuckDB over the same files;
EXPLAIN names the stages and joins; EXPLAIN ANALYZE adds what each stage's tasks did, and its
totals add up; a construct ``session.sql`` refuses is declined (the lake then runs it); a
cancel ends the run as the lake's timeout error; ``cluster`` mode declines on a lone node.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from elytra import SQLRunFailedError
from elytra.backends import InlineBackend
from elytra.driver import Driver
from elytra.errors import BackendUnavailableError
from elytra.session import Session
from elytra.settings import ElytraSettings
from elytra.sqlroute import PlatformSQL
from emsqrt import CapTooSmallError
from lake import LakeNode, lake_settings
from lake.errors import QueryTimeoutError
from lake.interfaces import SQLDeclined
from lake.sql.tpch import QUERIES, generate
from platform_core import load_settings

from .conftest import norm

TABLES = ("customer", "orders", "lineitem", "nation", "region", "supplier")
USED = (3, 5, 10)
"""Queries over TABLES only: joins of several tables, with GROUP BY and ORDER BY."""


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LakeNode, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("sqlroute")
    files = generate(0.01, root / "sf")
    node = LakeNode(lake_settings(None, home=root / "home", chunk_bytes=128 * 1024))
    try:
        for t in TABLES:
            node.ingest(Path(files[t]), t, owner="alice")
        yield node, files
    finally:
        node.stop()


def _executor(node: LakeNode, home: Path, **kw: Any) -> PlatformSQL:
    """The route as a platform with ``ELYTRA_SQL_ROUTE=always`` has it (unless ``kw`` says)."""
    es = load_settings(ElytraSettings, home=home, backend="inline", **{"sql_route": "always", **kw})
    backend = InlineBackend(es.max_attempts)
    return PlatformSQL(node, es, lambda: backend)


def _no_backend() -> Any:
    raise AssertionError("a declined query must not reach a backend")


def _run(ex: PlatformSQL, sql: str, mode: str = "run", cancelled: Any = None) -> Any:
    return ex.run_sql(
        sql,
        mode=mode,  # type: ignore[arg-type]
        user="alice",
        timeout=120.0,
        query_id="q1",
        cancelled=cancelled or threading.Event(),
    )


def _oracle(files: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{files[t]}')")
    return con


@pytest.mark.parametrize("number", USED)
def test_tpch_through_the_executor_equals_duckdb(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path, number: int
) -> None:
    node, files = lake
    sql = QUERIES[number]
    got = _run(_executor(node, tmp_path), sql).table
    want = _oracle(files).execute(sql)
    assert got.column_names == [d[0] for d in want.description]
    rows = [tuple(norm(v) for v in r.values()) for r in got.to_pylist()]
    assert rows == [tuple(norm(v) for v in r) for r in want.fetchall()]


def test_explain_and_analyze_name_stages_joins_and_bytes(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path
) -> None:
    node, files = lake
    ex = _executor(node, tmp_path)
    sql = QUERIES[3]
    planned = _run(ex, sql, "explain")
    plan = planned.plan
    assert plan["engine"] == "elytra"
    assert "analyze" not in plan
    joins = [j["strategy"] for s in plan["stages"] for j in s["joins"]]
    joins += [e["strategy"] for e in plan["exchanges"]]
    assert len(joins) == 2, plan  # customer x orders x lineitem: two joins, each planned
    assert planned.table.num_rows == sum(s["task_count"] for s in plan["stages"])
    assert {r["dataset"] for r in planned.reads} == {"customer", "orders", "lineitem"}
    orders = _oracle(files).execute("SELECT count(*) FROM orders").fetchall()[0][0]
    assert sum(r["rows"] for r in planned.reads if r["dataset"] == "orders") == orders
    done = _run(ex, sql, "analyze").plan
    a = done["analyze"]
    assert a["rows_out"] == len(_oracle(files).sql(sql).fetchall())
    stages = [s["analyze"] for s in done["stages"]] + list(done["rounds"])
    assert sum(s["tasks"] for s in stages) == a["tasks"] > 0
    assert sum(s["bytes_to_driver"] for s in stages) == a["bytes_to_driver"] > 0
    assert sum(s["bytes_to_exchange"] for s in stages) == a["bytes_between_stages"]
    assert all(s["bytes_in"] > 0 for s in stages)
    assert "merge" in a["seconds"]
    assert "exchanged" not in a["seconds"]  # bytes, not a phase
    moved = a["exchanged_via_driver_bytes"] + a["exchanged_by_tasks_bytes"]
    assert (moved > 0) == (a["bytes_between_stages"] > 0), a
    exchanged = _run(_executor(node, tmp_path, broadcast_bytes=0), sql, "analyze").plan["analyze"]
    assert exchanged["bytes_between_stages"] > 0, exchanged
    assert exchanged["exchanged_via_driver_bytes"] + exchanged["exchanged_by_tasks_bytes"] > 0


def test_what_session_sql_refuses_is_declined_with_its_reason(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path
) -> None:
    node, _ = lake
    ex = _executor(node, tmp_path)
    with pytest.raises(SQLDeclined, match=r"SQLPlanError.*window"):
        _run(ex, "SELECT rank() OVER (ORDER BY o_orderkey) FROM orders")
    alone = PlatformSQL(
        node, load_settings(ElytraSettings, home=tmp_path, backend="inline"), _no_backend
    )
    assert alone.settings.sql_route == "cluster"  # the default: alone, the lake's planner answers
    with pytest.raises(SQLDeclined, match="no live peers"):
        _run(alone, QUERIES[6])


def test_a_cancel_ends_the_run_as_the_lakes_timeout_error(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path
) -> None:
    node, _ = lake
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(QueryTimeoutError, match="cancelled"):
        _run(_executor(node, tmp_path), QUERIES[3], cancelled=cancelled)


EMPTY_SIDES = (
    "SELECT count(*) FROM fact WHERE k NOT IN (SELECT k FROM empty)",
    "SELECT count(*) FROM fact WHERE k IN (SELECT k FROM empty)",
    "SELECT count(*) FROM fact f WHERE NOT EXISTS (SELECT 1 FROM empty e WHERE e.k = f.k)",
    "SELECT f.k, e.s FROM fact f LEFT JOIN empty e ON f.k = e.k ORDER BY f.k LIMIT 5",
    "SELECT count(*) FROM empty",
)


@pytest.mark.parametrize("sql", EMPTY_SIDES)
def test_a_dataset_of_no_chunks_as_a_side_is_planned_and_equals_duckdb(
    tmp_path: Path, sql: str
) -> None:
    """A lake dataset of no rows has no chunks, so its broadcast side had no file to scan:
    found from outside, ``NOT IN (SELECT k FROM empty)`` failed at run time ("union: needs at
    least one input") and went to the lake's planner."""
    empty = pa.table({"k": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    pq.write_table(empty, tmp_path / "empty.parquet")
    pq.write_table(
        pa.table({"k": list(range(300)), "v": [i % 7 for i in range(300)]}),
        tmp_path / "fact.parquet",
    )
    node = LakeNode(lake_settings(None, home=tmp_path / "home", chunk_bytes=128 * 1024))
    try:
        for name in ("empty", "fact"):
            node.ingest(tmp_path / f"{name}.parquet", name, owner="alice")
        got = _run(_executor(node, tmp_path / "es"), sql).table  # declined: SQLDeclined
    finally:
        node.stop()
    con = duckdb.connect()
    for name in ("empty", "fact"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM '{tmp_path / name}.parquet'")
    rows = [tuple(norm(v) for v in r.values()) for r in got.to_pylist()]
    assert rows == [tuple(norm(v) for v in r) for r in con.sql(sql).fetchall()]


class _Lost(InlineBackend):
    """A backend that is lost as the job's tasks start (a pool or Ray gone mid-query)."""

    def run(self, tasks: Any, cancel: Any, started: Any = None) -> Any:
        raise BackendUnavailableError("the backend went away")


def _failing(node: LakeNode, home: Path, **kw: Any) -> PlatformSQL:
    """The route on a lost backend, planning every query into stages unless ``kw`` lets
    one run as one task (``whole_query_bytes``)."""
    es = load_settings(
        ElytraSettings,
        home=home,
        backend="inline",
        **{"sql_route": "always", "whole_query_bytes": 0, **kw},
    )
    backend = _Lost(es.max_attempts)
    return PlatformSQL(node, es, lambda: backend)


def test_a_failed_run_is_declined_only_where_the_lakes_gather_is_small(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path
) -> None:
    """The lake's planner reruns a query whose run failed by gathering the columns it reads
    into the coordinator (SF 10's q09: gigabytes there and in its peers). So a failed run
    declines only when those columns take at most a quarter of the driver's cap; past it the
    query fails as unavailable (503: retry), naming the failure and the sizes."""
    node, _ = lake
    sql = QUERIES[3]
    es = load_settings(ElytraSettings, home=tmp_path / "s", backend="inline")
    with Session(es, catalog=node.catalog) as session:
        reads = Driver.read_bytes(session.sql(sql))
    assert reads > 64 << 10, reads  # SF 0.01's customer, orders and lineitem columns
    with pytest.raises(SQLDeclined, match="the run failed: BackendUnavailableError"):
        _run(_failing(node, tmp_path / "a"), sql)  # 128 MiB allowed: the lake reruns it
    small = (reads * 4) - (4 << 10)  # its quarter a little below what the query reads
    with pytest.raises(SQLRunFailedError) as caught:
        _run(_failing(node, tmp_path / "b", driver_mem_cap=small), sql)
    assert caught.value.status == 503
    message = caught.value.message
    assert "BackendUnavailableError: the backend went away" in message, message
    assert "ELYTRA_DRIVER_MEM_CAP" in message, message
    assert "retry" in message, message
    with pytest.raises(SQLDeclined):  # at the bound itself, still the lake's
        _run(_failing(node, tmp_path / "c", driver_mem_cap=reads * 4), sql)


def test_a_failed_one_task_run_is_weighed_as_a_planned_one(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path
) -> None:
    """A query run as one task before it is planned (the short path) that fails is bounded
    as a planned run's failure is: past a quarter of the driver's cap the lake's planner
    does not rerun it (found from outside: with workers killed, such a query went to the
    lake's gather whatever its size, 174 MiB into the coordinator)."""
    node, _ = lake
    sql = QUERIES[3]

    whole = {"whole_query_bytes": "1GiB", "worker_mem_cap": "256MiB"}  # one task: short path

    settings = load_settings(ElytraSettings, home=tmp_path / "s", backend="inline", **whole)
    with Session(settings, catalog=node.catalog) as s:
        q = s.native_sql(sql)
        assert q is not None
        assert isinstance(s.driver, Driver)
        assert s.driver.whole_native(q)
        reads = Driver.native_read_bytes(q)
    assert reads > 64 << 10, reads
    with pytest.raises(SQLDeclined, match="the run failed: BackendUnavailableError"):
        _run(_failing(node, tmp_path / "a", **whole), sql)  # 128 MiB allowed: the lake reruns it
    with pytest.raises(SQLRunFailedError) as caught:
        _run(_failing(node, tmp_path / "b", **whole, driver_mem_cap=reads * 4 - (4 << 10)), sql)
    message = caught.value.message
    assert "BackendUnavailableError" in message, message
    assert "ELYTRA_DRIVER_MEM_CAP" in message, message
    assert " KiB in their files" in message or " MiB in their files" in message, message
    assert " 0 MiB" not in message, message  # sizes below a MiB are not rounded to nothing


def test_a_declined_failed_run_bounds_the_lakes_rerun(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path
) -> None:
    """A failed run the lake reruns carries its bound (a quarter of the driver's cap) for
    the lake's gather to count the rows it pulls in against as they arrive: the columns'
    file bytes are only a first weighing (a repeated string is next to nothing in its file,
    found from outside: 0.04 MiB on disk gathered 226 MiB). Past it the rerun stops with
    the route's own error."""
    node, _ = lake
    cap = 64 << 20
    with pytest.raises(SQLDeclined) as caught:
        _run(_failing(node, tmp_path / "a", driver_mem_cap=cap), QUERIES[3])
    bound = caught.value.bound
    assert bound is not None
    assert bound.limit == cap // 4
    over = bound.exceeded(cap // 4 + 1)
    assert isinstance(over, SQLRunFailedError)
    assert over.status == 503
    assert "BackendUnavailableError: the backend went away" in over.message, over.message
    assert "held more than 16 MiB of rows in the coordinator" in over.message, over.message
    assert "ELYTRA_DRIVER_MEM_CAP" in over.message, over.message
    assert "retry the query" in over.message, over.message


class _TooSmall(InlineBackend):
    """A backend whose tasks fail as a cap too small fails them: the same every time."""

    def run(self, tasks: Any, cancel: Any, started: Any = None) -> Any:
        raise CapTooSmallError("the join needs 3 MiB; raise the cap to 4 MiB")


def test_a_failure_that_repeats_is_not_retried(
    lake: tuple[LakeNode, dict[str, Any]], tmp_path: Path
) -> None:
    """A run that failed for a cap too small (or bad input) fails the same way on a retry:
    the error says so instead of 'retry' (found from outside: a merge at a 1-byte cap)."""
    node, _ = lake
    sql = QUERIES[3]
    es = load_settings(ElytraSettings, home=tmp_path / "s", backend="inline")
    with Session(es, catalog=node.catalog) as session:
        reads = Driver.read_bytes(session.sql(sql))
    settings = load_settings(
        ElytraSettings,
        home=tmp_path / "b",
        backend="inline",
        sql_route="always",
        whole_query_bytes=0,
        driver_mem_cap=reads * 4 - (4 << 10),
    )
    backend = _TooSmall(settings.max_attempts)
    with pytest.raises(SQLRunFailedError) as caught:
        _run(PlatformSQL(node, settings, lambda: backend), sql)
    message = caught.value.message
    assert "CapTooSmallError: the join needs 3 MiB" in message, message
    assert "the same failure comes back on a retry" in message, message
    assert "retry the query" not in message, message
