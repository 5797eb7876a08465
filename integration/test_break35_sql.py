"""The platform's SQL route on Elytra's stages, attacked from outside (issue 35); DuckDB is the oracle.

One `platform up` (ELYTRA_SQL_ROUTE=always, so it answers on Elytra's stages alone) with tiny
lake chunks, no broadcast (every join exchanged), every group-by exchanged and two workers.
Seeded tables with NULL-heavy, skewed keys and unicode strings are uploaded from the Parquet
files DuckDB reads. Odd queries answer with DuckDB's rows and types and name Elytra as their
engine; one Elytra declines falls back cleanly; a pool worker SIGKILLed while a query's job
runs leaves either DuckDB's answer or a clear error, never a wrong answer, and no partition
file behind in the job's spill directory.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pytest
from jobs_helpers import pool_workers
from servers import command, launch

from lake import Client
from platform_core import PlatformSettings, auth, load_settings
from platform_core.testing import ServerProcess

from .conftest import rows_9g

pytestmark = pytest.mark.timeout(600)

_TABLES = {
    "t1": "CASE WHEN random() < 0.3 THEN NULL WHEN random() < 0.9 THEN 7 "
    "ELSE (random() * 50)::INTEGER END AS k, (random() * 5)::INTEGER AS g, "
    "round(random() * 100, 2)::DECIMAL(10, 2) AS d, CASE WHEN random() < 0.2 THEN NULL "
    "ELSE ['é', 'ß', '日本', 'a', 'Z'][(random() * 4)::INTEGER + 1] END AS s",
    "t2": "CASE WHEN random() < 0.3 THEN NULL WHEN random() < 0.5 THEN 7 "
    "ELSE (random() * 80)::BIGINT END AS k, round(random() * 10, 1) AS w, "
    "CASE WHEN random() < 0.2 THEN NULL "
    "ELSE ['é', 'ß', '日本', 'b'][(random() * 3)::INTEGER + 1] END AS s",
    "t3": "(random() * 40)::INTEGER AS k, (random() * 9)::INTEGER AS x",
}
_ROWS = {"t1": 20_000, "t2": 8_000, "t3": 300}


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, str, duckdb.DuckDBPyConnection, Path]]:
    """`platform up` forced onto the distributed paths, the tables uploaded by alice; yields it,
    alice's token, DuckDB over the same files and the platform's home."""
    base = tmp_path_factory.mktemp("break35")
    home = base / "home"
    con = duckdb.connect()
    con.execute("SELECT setseed(0.35)")
    files = {}
    for t, cols in _TABLES.items():
        files[t] = base / f"{t}.parquet"
        con.execute(
            f"COPY (SELECT {cols} FROM range({_ROWS[t]})) TO '{files[t]}' "
            "(FORMAT parquet, ROW_GROUP_SIZE 1024)"
        )
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        base / "run",
        env={
            "ELYTRA_WORKERS": "2",
            "LAKE_CHUNK_BYTES": str(16 * 1024),
            "ELYTRA_SQL_ROUTE": "always",
            "ELYTRA_BROADCAST_BYTES": "0",
            "ELYTRA_EXCHANGE_MIN_BYTES": "1",
            "ELYTRA_EXCHANGE_PARTITIONS": "3",
            "ELYTRA_TASK_BYTES": "1",
            # the skewed join (sql5) makes ~35M intermediate rows on these forced paths:
            # 25 s on a quiet machine, past the default 60 s at load 13 (seen twice)
            "LAKE_QUERY_TIMEOUT_SECONDS": "240",
        },
    )
    try:
        token = auth.signer(load_settings(PlatformSettings, home=home), create=False).issue("alice")
        with Client(server.url, token) as client:
            for name, path in files.items():
                client.upload(path, name)
        oracle = duckdb.connect()
        for name, path in files.items():
            oracle.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        yield server, token, oracle, home
    finally:
        server.stop()


def _post(url: str, token: str, sql: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/lake/query",
        json={"sql": sql, "format": "arrow"},
        headers={"authorization": f"Bearer {token}"},
        timeout=300,
    )


def _same(got: pa.Table, want: pa.Table, sql: str) -> None:
    assert got.column_names == want.column_names, sql
    assert got.schema.types == want.schema.types, (sql, got.schema, want.schema)
    ordered = "ORDER BY" in sql
    assert rows_9g(got, ordered) == rows_9g(want, ordered), sql


QUERIES = [
    # a RIGHT JOIN on string keys: the preserved side's unmatched keys (fixed in this branch)
    "SELECT t2.s, count(*) AS n FROM t1 RIGHT JOIN t2 ON t1.s = t2.s GROUP BY 1 ORDER BY 1",
    "SELECT t1.g, count(DISTINCT t2.s) AS n, sum(t1.d) AS sd FROM t1 JOIN t2 ON t1.k = t2.k "
    "GROUP BY t1.g ORDER BY t1.g",
    "SELECT count(*) AS n FROM t1 WHERE k NOT IN (SELECT k FROM t2)",
    "SELECT count(*) AS n FROM t1 WHERE k NOT IN (SELECT k FROM t3 WHERE x > 6)",
    "SELECT t1.s, count(t2.w) AS n FROM t1 LEFT JOIN t2 ON t1.k = t2.k AND t2.w > 5 "
    "GROUP BY 1 ORDER BY 1",
    "SELECT DISTINCT t1.g, t3.x FROM t1 JOIN t2 ON t1.k = t2.k JOIN t3 ON t2.k = t3.k "
    "ORDER BY 1, 2 LIMIT 7",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_odd_queries_through_the_route_equal_duckdb_on_elytra(
    platform: tuple[ServerProcess, str, duckdb.DuckDBPyConnection, Path], sql: str
) -> None:
    server, token, oracle, _ = platform
    r = _post(server.url, token, sql)
    assert r.status_code == 200, r.text
    assert r.headers["x-query-engine"] == "elytra", sql
    _same(pa.ipc.open_stream(r.content).read_all(), oracle.sql(sql).to_arrow_table(), sql)


def test_a_window_over_a_join_falls_back_to_the_lake_and_equals_duckdb(
    platform: tuple[ServerProcess, str, duckdb.DuckDBPyConnection, Path],
) -> None:
    server, token, oracle, _ = platform
    sql = (
        "SELECT t3.k, t3.x, count(*) OVER (PARTITION BY t3.x) AS n FROM t3 JOIN t2 "
        "ON t3.k = t2.k ORDER BY 1, 2, 3"
    )
    r = _post(server.url, token, sql)
    assert r.status_code == 200, r.text
    assert r.headers["x-query-engine"] == "lake"
    _same(pa.ipc.open_stream(r.content).read_all(), oracle.sql(sql).to_arrow_table(), sql)


KILLED = (
    "SELECT t1.s, t2.s AS s2, count(*) AS n, sum(t2.w) AS sw FROM t1 JOIN t2 ON t1.k = t2.k "
    "GROUP BY 1, 2 ORDER BY 1, 2"
)
"""A skewed exchanged join (key 7 on most rows: about 10^8 pairs to count) that runs a while."""


def test_a_worker_killed_mid_query_gives_duckdbs_answer_or_a_clear_error(
    platform: tuple[ServerProcess, str, duckdb.DuckDBPyConnection, Path],
) -> None:
    server, token, oracle, home = platform
    spill = home / "spill" / "elytra"
    answer: dict[str, httpx.Response] = {}
    poster = threading.Thread(target=lambda: answer.update(r=_post(server.url, token, KILLED)))
    poster.start()
    deadline = time.monotonic() + 60
    while not list(spill.glob(".elytra-job-*.lock")):
        assert time.monotonic() < deadline, "the query's job never started"
        assert poster.is_alive(), "the query ended before its job was seen"
        time.sleep(0.02)
    time.sleep(0.3)  # its tasks are running
    workers = pool_workers(server.proc.pid)
    assert workers, "no pool worker to kill"
    os.kill(workers[0], signal.SIGKILL)
    assert poster.is_alive(), "the query ended before the kill: it tests nothing"
    poster.join(300)
    r = answer["r"]
    if r.status_code == 200:
        assert r.headers["x-query-engine"] in ("elytra", "lake")
        _same(pa.ipc.open_stream(r.content).read_all(), oracle.sql(KILLED).to_arrow_table(), KILLED)
    else:
        assert 500 <= r.status_code < 600, r.text
        assert r.json().get("error"), r.text
    deadline = time.monotonic() + 30
    left = [p for p in spill.rglob("*") if p.is_file()]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in spill.rglob("*") if p.is_file()]
    assert left == [], f"files left behind in the spill directory: {left[:5]}"


def test_an_answer_cut_off_by_its_client_leaves_nothing_in_the_answers_store(
    platform: tuple[ServerProcess, str, duckdb.DuckDBPyConnection, Path],
) -> None:
    """A SELECT's rows are streamed from a file (``elytra.sqlanswers``); a client that reads a
    little of a ~40 MB answer and hangs up leaves no file of it behind."""
    server, token, _, home = platform
    answers = home / "spill" / "elytra" / "sql-answers"
    sql = "SELECT t1.k, t1.d, t1.s, t3.x FROM t1 JOIN t3 ON t1.g = t3.x % 5"
    with httpx.stream(
        "POST",
        f"{server.url}/api/lake/query",
        json={"sql": sql, "format": "arrow"},
        headers={"authorization": f"Bearer {token}"},
        timeout=300,
    ) as r:
        assert r.status_code == 200
        assert r.headers["x-query-engine"] == "elytra"
        assert [p for p in answers.rglob("*") if p.is_file()], "the answer is not on disk"
        got = 0
        for piece in r.iter_bytes():
            got += len(piece)
            if got > 1 << 20:
                break
    deadline = time.monotonic() + 30
    while [p for p in answers.rglob("*") if p.is_file()]:
        assert time.monotonic() < deadline, "the cut-off answer's file stayed"
        time.sleep(0.1)
