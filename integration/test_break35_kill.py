"""Distributed SQL on three joined platforms, attacked from outside (issue 35); DuckDB is the oracle.

Three `platform up` joined with `--join` (tiny lake chunks, no broadcast: every join and every
group-by goes through a hash exchange) answer `POST /api/lake/query` on Elytra's stages
(`ELYTRA_SQL_ROUTE=cluster`, the default). Seeded tables with NULL-heavy, skewed keys are
written to Parquet with DuckDB and uploaded through the lake client; DuckDB over the same files
is the oracle (names, types, rows).

The attacks: odd queries through the 3-platform route (a 10,000-literal IN list, LATERAL, a
window over a join, NULL-heavy and skewed keys, a filter that selects nothing), a timeout
shorter than the query (a clear timeout, the pools idle after), one pool worker of a joined
platform SIGKILLed while it runs a task of the query, a platform hung (SIGSTOP) while another
answers, and a whole joined platform SIGKILLed during a query on another, then started again
on its home. Without Ray a query runs on the pool of the platform that takes it, the chunks it
lacks read from their replicas. Each ends with DuckDB's
answer or a clear, retryable error, never a wrong answer, and no file left in a spill directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pytest
from jobs_helpers import pool_workers
from platform_cluster import Cluster, join, start_cluster, wait_for
from proc_rss import descendants

from lake import Client

from .conftest import rows_9g

pytestmark = pytest.mark.timeout(900)

ENV = {
    "LAKE_CHUNK_BYTES": str(16 * 1024),
    "ELYTRA_BROADCAST_BYTES": "0",
    "ELYTRA_EXCHANGE_MIN_BYTES": "1",
    "ELYTRA_EXCHANGE_PARTITIONS": "3",
    "ELYTRA_TASK_BYTES": "1",
    "LAKE_QUERY_TIMEOUT_SECONDS": "240",
}
"""Every platform holds chunks and runs tasks; every join and group-by is exchanged."""

_TABLES = {
    # 30 % NULL keys, about 40 % of the rest on key 7 (skewed), the others spread
    "t1": "CASE WHEN random() < 0.3 THEN NULL WHEN random() < 0.6 THEN 7 "
    "ELSE (random() * 50)::INTEGER END AS k, (random() * 5)::INTEGER AS g, "
    "round(random() * 100, 2)::DECIMAL(10, 2) AS d, CASE WHEN random() < 0.2 THEN NULL "
    "ELSE ['é', 'ß', '日本', 'a', 'Z'][(random() * 4)::INTEGER + 1] END AS s",
    "t2": "CASE WHEN random() < 0.3 THEN NULL WHEN random() < 0.5 THEN 7 "
    "ELSE (random() * 80)::BIGINT END AS k, round(random() * 10, 1) AS w, "
    "CASE WHEN random() < 0.2 THEN NULL "
    "ELSE ['é', 'ß', '日本', 'b'][(random() * 3)::INTEGER + 1] END AS s",
    "t3": "range::INTEGER AS k, (random() * 9)::INTEGER AS x",
}
_ROWS = {"t1": 12_000, "t2": 4_000, "t3": 300}

Ctx = tuple[Cluster, duckdb.DuckDBPyConnection, Path]


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    """Three joined platforms with the tables uploaded through the first (each chunk on two of
    them); yields the cluster, DuckDB over the same files and the cluster's base directory."""
    base = tmp_path_factory.mktemp("kill35")
    con = duckdb.connect()
    con.execute("SELECT setseed(0.35)")
    files = {}
    for t, cols in _TABLES.items():
        files[t] = base / f"{t}.parquet"
        con.execute(
            f"COPY (SELECT {cols} FROM range({_ROWS[t]})) TO '{files[t]}' "
            "(FORMAT parquet, ROW_GROUP_SIZE 1024)"
        )
    cluster = start_cluster(base, 3, ENV)
    try:
        with Client(cluster.urls[0], cluster.signer.issue("alice"), timeout=60) as client:
            for name, path in files.items():
                client.upload(path, name, timeout=300)
        wait_for(lambda: _nodes(cluster, 0)["under_replicated"] == 0, "replication", 120)
        oracle = duckdb.connect()
        for name, path in files.items():
            oracle.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        yield cluster, oracle, base
    finally:
        cluster.stop()


def _nodes(cluster: Cluster, i: int) -> dict[str, Any]:
    r = httpx.get(f"{cluster.urls[i]}/api/lake/nodes", headers=cluster.admin(), timeout=10)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def _post(cluster: Cluster, sql: str, i: int = 0, timeout: float | None = None) -> httpx.Response:
    body: dict[str, Any] = {"sql": sql, "format": "arrow"}
    if timeout is not None:
        body["timeout"] = timeout
    return httpx.post(
        f"{cluster.urls[i]}/api/lake/query", json=body, headers=cluster.user(), timeout=300
    )


def _same(r: httpx.Response, oracle: duckdb.DuckDBPyConnection, sql: str) -> None:
    assert r.status_code == 200, (sql, r.status_code, r.text[:500])
    got = pa.ipc.open_stream(r.content).read_all()
    want = oracle.sql(sql).to_arrow_table()
    assert got.column_names == want.column_names, sql
    assert got.schema.types == want.schema.types, (sql, got.schema, want.schema)
    ordered = re.search(r"ORDER BY [^()]*$", sql) is not None  # not a window's ORDER BY
    assert rows_9g(got, ordered) == rows_9g(want, ordered), sql


def _spill_files(home: Path) -> list[Path]:
    """The files left in ``home``'s spill directory, but the whole chunks its chunk cache
    keeps on purpose (``elytra.chunkcache``: each named by the hash of its bytes)."""
    root = home / "spill" / "elytra"
    if not root.exists():
        return []
    cache = root / "chunk-cache"
    return [p for p in root.rglob("*") if p.is_file() and not _a_whole_chunk(p, cache)]


def _a_whole_chunk(path: Path, cache: Path) -> bool:
    if path.parent != cache or path.suffix != ".parquet":
        return False
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    except OSError:
        return False


def _no_spill_left(homes: list[Path]) -> None:
    """Every spill directory of ``homes`` empties within 30 s of the query's end."""
    wait_for(
        lambda: not any(_spill_files(h) for h in homes),
        f"no file left in the spill directories (left: {[_spill_files(h)[:3] for h in homes]})",
        30,
    )


def _idle(cluster: Cluster) -> None:
    """Every live platform's pool goes idle (no task left running for the query)."""

    def idle() -> bool:
        for url, node in zip(cluster.urls, cluster.nodes, strict=True):
            if node.proc.poll() is not None:
                continue
            pool = httpx.get(f"{url}/api/jobs/pool", headers=cluster.user(), timeout=10).json()
            if pool["busy"]:
                return False
        return True

    wait_for(idle, "every pool idle", 60)


# -- odd queries through the 3-platform route ------------------------------------------------

IN_LIST = ", ".join(str(i) for i in range(0, 20_000, 2))  # 10,000 literals

ON_ELYTRA = [
    # skewed, NULL-heavy keys through a hash exchange, then an exchanged group-by
    "SELECT t1.g, count(*) AS n, sum(t2.w) AS sw, count(DISTINCT t2.s) AS ds FROM t1 "
    "JOIN t2 ON t1.k = t2.k GROUP BY t1.g ORDER BY t1.g",
    "SELECT t1.s, count(t2.w) AS n FROM t1 LEFT JOIN t2 ON t1.k = t2.k AND t2.w > 5 "
    "GROUP BY 1 ORDER BY 1",
    "SELECT t2.s, count(*) AS n FROM t1 FULL JOIN t2 ON t1.k = t2.k GROUP BY 1 ORDER BY 1",
    "SELECT count(*) AS n FROM t1 WHERE k NOT IN (SELECT k FROM t2)",
    # a huge IN list, on a join's key
    f"SELECT t1.g, count(*) AS n, sum(t1.d) AS sd FROM t1 JOIN t3 ON t1.k = t3.k "
    f"WHERE t1.k IN ({IN_LIST}) GROUP BY 1 ORDER BY 1",
    f"SELECT count(*) AS n, sum(d) AS sd FROM t1 WHERE k NOT IN ({IN_LIST})",
    # a filter that selects nothing, through a join and a group-by
    "SELECT t1.g, count(*) AS n, sum(t2.w) AS sw FROM t1 JOIN t2 ON t1.k = t2.k "
    "WHERE t1.d < 0 GROUP BY t1.g ORDER BY t1.g",
    "SELECT count(*) AS n, sum(t2.w) AS sw, min(t1.s) AS s FROM t1 JOIN t2 ON t1.k = t2.k "
    "WHERE t2.w > 1000",
]


@pytest.mark.parametrize("sql", ON_ELYTRA, ids=[f"q{i}" for i in range(len(ON_ELYTRA))])
def test_odd_queries_on_three_platforms_equal_duckdb_on_elytra(three: Ctx, sql: str) -> None:
    cluster, oracle, _ = three
    r = _post(cluster, sql)
    _same(r, oracle, sql)
    assert r.headers["x-query-engine"] == "elytra", sql


FALLBACK = [
    "SELECT t3.k, l.n FROM t3, LATERAL (SELECT count(*) AS n FROM t2 WHERE t2.k = t3.k) l "
    "WHERE t3.k < 60 ORDER BY 1",
    "SELECT t1.g, t3.x, sum(t2.w) OVER (PARTITION BY t1.g ORDER BY t3.x, t2.w, t1.d "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run FROM t1 JOIN t2 ON t1.k = t2.k "
    "JOIN t3 ON t2.k = t3.k WHERE t1.k <> 7",
    "SELECT t1.g, rank() OVER (ORDER BY count(*) DESC) AS r, count(*) AS n FROM t1 "
    "JOIN t2 ON t1.k = t2.k GROUP BY t1.g ORDER BY 1",
]


@pytest.mark.parametrize("sql", FALLBACK, ids=["lateral", "window_join", "window_agg"])
def test_what_elytra_declines_falls_back_and_equals_duckdb(three: Ctx, sql: str) -> None:
    cluster, oracle, _ = three
    r = _post(cluster, sql)
    _same(r, oracle, sql)
    assert r.headers["x-query-engine"] == "lake", sql


SLOW = (
    "SELECT t1.s, t2.s AS s2, t3.x, count(*) AS n, sum(t2.w) AS sw FROM t1 "
    "JOIN t2 ON t1.k = t2.k JOIN t3 ON t2.k = t3.k WHERE t2.w < 1 GROUP BY 1, 2, 3 "
    "ORDER BY 1, 2, 3"
)
"""Two exchanged joins (key 7 on many rows: 700,000 pairs), then an exchanged group-by."""


def test_a_timeout_shorter_than_the_query_is_clear_and_leaves_no_work(three: Ctx) -> None:
    cluster, _, _ = three
    # 0.1 s: this stop's fixed costs made SLOW finish within 0.5 s in a CI run
    r = _post(cluster, SLOW, timeout=0.1)
    assert r.status_code == 408, r.text[:300]
    body = r.json()
    assert body["type"] == "timeout", body
    assert "ran past its timeout of 0.1 s" in body["error"], body
    _idle(cluster)
    _no_spill_left(cluster.homes)


def _pinned_task(
    cluster: Cluster, i: int, timeout: float | None = None
) -> tuple[list[int], threading.Thread, dict[str, httpx.Response]]:
    """Stop platform ``i``'s pool workers, post SLOW to platform ``i`` (without Ray a query
    runs on the pool of the platform that takes it) and return once a task of it is in
    flight there (its job directory locked): the stopped workers, the poster thread and
    where its answer lands."""
    workers = pool_workers(cluster.nodes[i].proc.pid)
    assert workers, f"platform {i} has no pool worker"
    for w in workers:
        os.kill(w, signal.SIGSTOP)
    answer: dict[str, httpx.Response] = {}
    poster = threading.Thread(
        target=lambda: answer.update(r=_post(cluster, SLOW, i, timeout=timeout))
    )
    poster.start()
    root = cluster.homes[i] / "spill" / "elytra"
    wait_for(
        lambda: list(root.glob(".elytra-job-*.lock")) or not poster.is_alive(),
        f"a task of the query on platform {i}",
        60,
    )
    assert poster.is_alive(), f"the query ended before platform {i} ran a task of it"
    return workers, poster, answer


def _duckdb_or_clear_error(r: httpx.Response, oracle: duckdb.DuckDBPyConnection) -> None:
    if r.status_code == 200:
        assert r.headers["x-query-engine"] in ("elytra", "lake")
        _same(r, oracle, SLOW)
        return
    assert r.status_code == 503, r.text
    assert "retry" in r.json()["error"], r.text


def test_a_joined_platforms_worker_killed_mid_query(three: Ctx) -> None:
    cluster, oracle, _ = three
    workers, poster, answer = _pinned_task(cluster, 2)
    os.kill(workers[0], signal.SIGKILL)
    for w in workers[1:]:
        os.kill(w, signal.SIGCONT)
    poster.join(300)
    assert not poster.is_alive(), "the query hangs after a worker was killed"
    _duckdb_or_clear_error(answer["r"], oracle)
    _idle(cluster)
    _no_spill_left(cluster.homes)
    again = _post(cluster, SLOW, 2)
    _same(again, oracle, SLOW)
    assert again.headers["x-query-engine"] == "elytra"


def test_a_query_on_a_cluster_with_a_hung_platform_reads_the_other_replicas(
    three: Ctx,
) -> None:
    """A platform stopped (SIGSTOP, as a hung machine or a partition): a query posted to
    another platform reads the chunks it lacks from the live replicas and ends with DuckDB's
    answer within its 60 s timeout (the lake's gossip counts the hung one dead in seconds)."""
    cluster, oracle, _ = three
    tree = descendants(cluster.nodes[2].proc.pid)
    for p in tree:
        os.kill(p, signal.SIGSTOP)
    try:
        r = _post(cluster, SLOW, 0, timeout=60)
        _duckdb_or_clear_error(r, oracle)
        r = _post(cluster, SLOW, 0, timeout=60)
        _same(r, oracle, SLOW)
        assert r.headers["x-query-engine"] == "elytra"
    finally:
        for p in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)
    for i in range(3):
        wait_for(
            lambda i=i: sum(m["state"] == "alive" for m in _nodes(cluster, i)["members"]) == 3,
            f"3 members at platform {i} once platform 2 runs again",
            60,
        )
    _idle(cluster)
    _no_spill_left(cluster.homes)


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process under it (its gateway, pool workers, Raft helpers)."""
    tree = descendants(pid)
    for p in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def test_a_joined_platform_killed_mid_query_then_restarted(three: Ctx) -> None:
    cluster, oracle, base = three
    victim = cluster.nodes[1]
    workers, poster, answer = _pinned_task(cluster, 0)
    _kill_tree(victim.proc.pid)
    victim.proc.wait(30)
    for w in workers:
        os.kill(w, signal.SIGCONT)
    poster.join(300)
    assert not poster.is_alive(), "the query hangs after a platform was killed"
    _duckdb_or_clear_error(answer["r"], oracle)
    survivors = [cluster.homes[0], cluster.homes[2]]
    _idle(cluster)
    _no_spill_left(survivors)
    # a retry on the survivors: every chunk has a replica there
    again = _post(cluster, SLOW)
    _same(again, oracle, SLOW)
    assert again.headers["x-query-engine"] == "elytra"
    # the killed platform, started again on its home, rejoins and answers the query too
    cluster.nodes[1] = join(base, "p1", cluster.urls[0], ENV)
    for i in range(3):
        wait_for(
            lambda i=i: sum(m["state"] == "alive" for m in _nodes(cluster, i)["members"]) == 3,
            f"3 members at platform {i}",
            90,
        )
    for i in (0, 1):
        r = _post(cluster, SLOW, i)
        _same(r, oracle, SLOW)
        assert r.headers["x-query-engine"] == "elytra"
    _no_spill_left(cluster.homes)
