"""The platform's SQL route runs on Elytra's stages (issue 35 items 1 and 4), seen from outside.

One `platform up` (as a user starts it) holds TPC-H at SF 0.01, uploaded from the Parquet files
DuckDB (the oracle) reads. Every TPC-H query answers through ``POST /api/lake/query`` with
DuckDB's rows and types, and the answer names Elytra as its engine (``x-query-engine``); a query
Elytra does not plan (a window function) falls back to the lake's planner and still equals
DuckDB; EXPLAIN says which engine ran and why; EXPLAIN ANALYZE names the stages, their tasks and
the bytes that moved; roles are the lake route's.
"""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pytest
from servers import command, launch

from lake import Client
from lake.sql.tpch import QUERIES, generate
from platform_core import PlatformSettings, auth, load_settings
from platform_core.testing import ServerProcess

from .conftest import SharedPlatform

pytestmark = pytest.mark.timeout(900)

WINDOW = (
    "SELECT n_regionkey, n_name, rank() OVER (PARTITION BY n_regionkey ORDER BY n_name) AS r "
    "FROM nation ORDER BY n_regionkey, r"
)
"""A window function: ``session.sql`` refuses it (SQLPlanError), the lake's planner runs it."""


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection]]:
    """`platform up` with TPC-H SF 0.01 uploaded by alice; yields it, the tokens (alice, bob)
    and DuckDB over the same files."""
    base = tmp_path_factory.mktemp("sqlroute")
    home = base / "home"
    files = generate(0.01, base / "sf")
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        base / "run",
        env={
            "ELYTRA_WORKERS": "2",
            "LAKE_CHUNK_BYTES": str(256 * 1024),
            "ELYTRA_SQL_ROUTE": "always",  # alone, the default (cluster) leaves SQL to the lake
        },
    )
    try:
        signer = auth.signer(load_settings(PlatformSettings, home=home), create=False)
        tokens = {"alice": signer.issue("alice"), "bob": signer.issue("bob")}
        with Client(server.url, tokens["alice"]) as client:
            for name, path in files.items():
                client.upload(Path(path), name)
        oracle = duckdb.connect()
        for name, path in files.items():
            oracle.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        yield server, tokens, oracle
    finally:
        server.stop()


def _post(url: str, token: str | None, body: dict[str, Any]) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/api/lake/query", json=body, headers=headers, timeout=300)


def _arrow(url: str, token: str, sql: str) -> tuple[pa.Table, str]:
    r = _post(url, token, {"sql": sql, "format": "arrow"})
    assert r.status_code == 200, r.text
    return pa.ipc.open_stream(r.content).read_all(), r.headers["x-query-engine"]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _same(got: pa.Table, want: pa.Table, ordered: bool, sql: str) -> None:
    assert got.column_names == want.column_names, sql
    assert got.schema.types == want.schema.types, (sql, got.schema, want.schema)
    a = [tuple(r.values()) for r in got.to_pylist()]
    b = [tuple(r.values()) for r in want.to_pylist()]
    if not ordered:
        a, b = sorted(a, key=repr), sorted(b, key=repr)
    assert len(a) == len(b), sql
    for x, y in zip(a, b, strict=True):
        assert all(_equal(u, v) for u, v in zip(x, y, strict=True)), (sql, x, y)


@pytest.mark.parametrize("number", sorted(QUERIES), ids=[f"q{n:02d}" for n in sorted(QUERIES)])
def test_tpch_through_the_route_runs_on_elytra_and_equals_duckdb(
    platform: tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection], number: int
) -> None:
    server, tokens, oracle = platform
    sql = QUERIES[number]
    got, engine = _arrow(server.url, tokens["alice"], sql)
    assert engine == "elytra", sql
    _same(got, oracle.sql(sql).to_arrow_table(), "ORDER BY" in sql.upper().split(")")[-1], sql)


def test_json_and_csv_answers_equal_duckdb_through_elytra(
    platform: tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection],
) -> None:
    server, tokens, oracle = platform
    sql = QUERIES[3]
    want = oracle.sql(sql).fetchall()
    r = _post(server.url, tokens["alice"], {"sql": sql, "format": "json"})
    assert r.status_code == 200, r.text
    assert r.headers["x-query-engine"] == "elytra"
    body = r.json()
    assert body["kind"] == "select"
    assert body["row_count"] == len(want)
    assert [c["name"] for c in body["columns"]] == [d[0] for d in oracle.sql(sql).description]
    r = _post(server.url, tokens["alice"], {"sql": sql, "format": "csv"})
    assert r.status_code == 200
    assert r.headers["x-query-engine"] == "elytra"
    assert len(r.text.strip().splitlines()) == len(want) + 1  # the header and a line per row


def test_a_query_elytra_refuses_falls_back_to_the_lake_and_equals_duckdb(
    platform: tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection],
) -> None:
    server, tokens, oracle = platform
    got, engine = _arrow(server.url, tokens["alice"], WINDOW)
    assert engine == "lake"
    _same(got, oracle.sql(WINDOW).to_arrow_table(), True, WINDOW)
    r = _post(server.url, tokens["alice"], {"sql": f"EXPLAIN {WINDOW}"})
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    assert plan["engine"] == "lake"
    assert plan["declined_by"] == "elytra"
    assert "SQLPlanError" in plan["why"], plan["why"]
    assert "window" in plan["why"].lower(), plan["why"]
    # SHOW TABLES and DESCRIBE stay the lake's, named by the header too
    r = _post(server.url, tokens["alice"], {"sql": "SHOW TABLES"})
    assert r.headers["x-query-engine"] == "lake"
    assert sorted(row[0] for row in r.json()["rows"]) == sorted(
        row[0] for row in oracle.sql("SHOW TABLES").fetchall()
    )


def test_one_platform_by_default_answers_sql_on_the_lakes_planner(
    jobs_platform: SharedPlatform, tmp_path: Path
) -> None:
    """``ELYTRA_SQL_ROUTE``'s default is ``cluster``: alone, a platform answers SELECTs with the
    lake's one DuckDB (issue 35 holds one platform to its speed), equal to DuckDB, and EXPLAIN
    says Elytra declined and why."""
    signer = auth.signer(load_settings(PlatformSettings, home=jobs_platform.home), create=False)
    token = signer.issue("carol")
    path = tmp_path / "route_default.parquet"
    duckdb.sql(
        f"COPY (SELECT i % 7 AS k, i * 0.5 AS v FROM range(5000) t(i)) TO '{path}' (FORMAT parquet)"
    )
    with Client(jobs_platform.url, token) as client:
        client.upload(path, "route_default")
    sql = "SELECT k, sum(v) AS s, count(*) AS n FROM route_default GROUP BY k ORDER BY k"
    got, engine = _arrow(jobs_platform.url, token, sql)
    assert engine == "lake"
    want = duckdb.sql(sql.replace("route_default", f"read_parquet('{path}')")).to_arrow_table()
    _same(got, want, True, sql)
    r = _post(jobs_platform.url, token, {"sql": f"EXPLAIN {sql}"})
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    assert (plan["engine"], plan["declined_by"]) == ("lake", "elytra"), plan
    assert "ELYTRA_SQL_ROUTE=cluster" in plan["why"], plan
    assert "no live peers" in plan["why"], plan


def test_explain_names_the_stages_and_analyze_the_bytes_they_moved(
    platform: tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection],
) -> None:
    server, tokens, oracle = platform
    sql = QUERIES[3]
    r = _post(server.url, tokens["alice"], {"sql": f"EXPLAIN {sql}"})
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    assert plan["engine"] == "elytra"
    assert "analyze" not in plan
    reads = " ".join(
        [s["reads"] for s in plan["stages"]]
        + [j["small_side"] for s in plan["stages"] for j in s["joins"]]
    )
    assert all(f"'{t}'" in reads for t in ("lineitem", "orders", "customer")), reads
    strategies = {j["strategy"] for s in plan["stages"] for j in s["joins"]}
    strategies |= {e["strategy"] for e in plan["exchanges"]}
    assert strategies & {"broadcast", "hash exchange"}, plan
    assert plan["merge"]["strategy"] == "gather"
    planned = sum(s["task_count"] for s in plan["stages"])
    assert r.json()["row_count"] >= min(planned, 1)

    r = _post(server.url, tokens["alice"], {"sql": f"EXPLAIN ANALYZE {sql}"})
    assert r.status_code == 200, r.text
    body = r.json()
    done = body["plan"]
    assert done["engine"] == "elytra"
    # the query ran: its rows are DuckDB's count, and every stage reports its tasks
    assert done["analyze"]["rows_out"] == len(oracle.sql(sql).fetchall())
    for stage in done["stages"]:
        assert stage["analyze"]["tasks"] >= 1, stage
        assert stage["analyze"]["bytes_in"] > 0, stage
    a = done["analyze"]
    assert a["bytes_read"] > 0
    assert a["bytes_to_driver"] > 0
    assert a["bytes_to_driver"] + a["bytes_between_stages"] == sum(
        row[body_col(body, "bytes_out")] for row in body["rows"]
    )
    assert "merge" in a["seconds"]
    assert a["tasks"] == body["row_count"]
    assert {row[body_col(body, "node")] for row in body["rows"]} != {None}


def test_lake_query_prints_the_engine_and_the_stages(
    platform: tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection],
) -> None:
    """`lake query "EXPLAIN ANALYZE ..."` (the real CLI against the platform): after the task
    rows, the engine and a line per stage with what it ran and moved."""
    server, tokens, _ = platform
    sql = " ".join(QUERIES[3].split())
    out = subprocess.run(
        [str(command("lake")), "query", f"EXPLAIN ANALYZE {sql}", "--node", server.url],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PLATFORM_TOKEN": tokens["alice"]},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "engine: elytra (session.sql planned it into stages" in out.stdout, out.stdout
    assert "stage 0 (" in out.stdout
    assert "to the driver" in out.stdout


def body_col(body: dict[str, Any], name: str) -> int:
    return [c["name"] for c in body["columns"]].index(name)


def test_roles_are_the_lake_routes(
    platform: tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection],
) -> None:
    """No token: 401 before anything plans; another user (bob) reads alice's datasets."""
    server, tokens, oracle = platform
    r = _post(server.url, None, {"sql": QUERIES[6]})
    assert r.status_code == 401, r.text
    got, engine = _arrow(server.url, tokens["bob"], QUERIES[6])
    assert engine == "elytra"
    _same(got, oracle.sql(QUERIES[6]).to_arrow_table(), False, QUERIES[6])


def test_a_cancel_by_query_id_and_a_timeout_end_an_elytra_run(
    platform: tuple[ServerProcess, dict[str, str], duckdb.DuckDBPyConnection],
) -> None:
    """A join of about 4e12 rows, which Elytra plans (equalities) and would run for hours:
    DELETE /query/{id} ends it as the lake's cancel does (408), and so does its timeout. (A
    join of two, 5e8 rows, came to end within the 1.5 s before the cancel once the chunks
    were in snappy.)"""
    server, tokens, _ = platform
    url, token = server.url, tokens["alice"]
    sql = (
        "SELECT count(*) AS n FROM lineitem a JOIN lineitem b ON a.l_linenumber = b.l_linenumber"
        " JOIN lineitem c ON b.l_linenumber = c.l_linenumber"
    )
    r = _post(url, token, {"sql": f"EXPLAIN {sql}"})
    assert r.json()["plan"]["engine"] == "elytra", r.text
    answer: dict[str, httpx.Response] = {}
    runner = threading.Thread(
        target=lambda: answer.update(r=_post(url, token, {"sql": sql, "query_id": "big-join"}))
    )
    runner.start()
    time.sleep(1.5)
    headers = {"authorization": f"Bearer {token}"}
    gone = httpx.delete(f"{url}/api/lake/query/big-join", headers=headers, timeout=30)
    assert gone.json()["cancelled"] is True, gone.text
    runner.join(120)  # a bound, not a speed test: uncancelled, the join runs for minutes
    assert not runner.is_alive(), "the cancelled query did not end"
    assert answer["r"].status_code == 408, answer["r"].text
    assert "cancelled" in answer["r"].text
    r = _post(url, token, {"sql": sql, "timeout": 1.0})
    assert r.status_code == 408, r.text
    assert "timeout" in r.text
