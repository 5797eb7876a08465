"""What the chaos and soak suites do to a cluster: seeded tables, uploads, SQL, jobs, replicas.

Every answer is compared with DuckDB over the same rows by the callers; these helpers only
make the calls (with timeouts) and hand back what the platform said.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from platform_cluster import Cluster, wait_for

from lake import Client

__all__ = [
    "JOB_TIMEOUT",
    "ORACLE",
    "PIPELINE",
    "member_state",
    "nodes",
    "oracle",
    "query",
    "run_job",
    "seeded_table",
    "submit_job",
    "upload",
    "wait_job",
    "write_parquet",
]

JOB_TIMEOUT = 180.0
PIPELINE_STEPS = [
    {"filter": "amount > 100"},
    {"group_by": ["grp"], "agg": ["count(*) AS n", "max(amount) AS top", "min(id) AS first"]},
]
ORACLE = (
    "SELECT grp, count(*) AS n, max(amount) AS top, min(id) AS first FROM {t} "
    "WHERE amount > 100 GROUP BY grp"
)
"""The job's pipeline (PIPELINE) as SQL: what DuckDB answers and what the lake is asked."""


def PIPELINE(dataset: str) -> dict[str, Any]:
    return {"source": {"dataset": dataset}, "steps": PIPELINE_STEPS}


def seeded_table(rows: int, seed: int) -> pa.Table:
    """``rows`` rows of (id, grp, amount), the same for the same seed."""
    sql = (
        f"SELECT i AS id, (i * 7919 + {seed}) % 13 AS grp, "
        f"round(((i * 104729 + {seed}) % 100000) / 100.0, 2) AS amount FROM range({rows}) t(i)"
    )
    rel = duckdb.connect().sql(sql)
    assert rel is not None
    return rel.to_arrow_table()


def oracle(table: pa.Table, sql: str = ORACLE) -> list[tuple[Any, ...]]:
    """DuckDB's sorted answer to ``sql`` ({t} is the table)."""
    con = duckdb.connect()
    con.register("t", table)
    return sorted(con.sql(sql.format(t="t")).fetchall())


def write_parquet(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def upload(cluster: Cluster, url: str, path: Path, name: str) -> dict[str, Any]:
    """Upload ``path`` as ``name`` through ``url`` and wait for the commit (raises if refused)."""
    with Client(url, cluster.signer.issue("alice"), timeout=60) as client:
        return client.upload(path, name, part_size=256 * 1024, parallel=2, timeout=300)


def query(cluster: Cluster, url: str, sql: str, timeout: float = 120) -> httpx.Response:
    return httpx.post(
        f"{url}/api/lake/query", json={"sql": sql}, headers=cluster.user(), timeout=timeout
    )


def nodes(cluster: Cluster, url: str) -> dict[str, Any]:
    """``GET /api/lake/nodes``: members, their states, under-replicated chunks."""
    r = httpx.get(f"{url}/api/lake/nodes", headers=cluster.admin(), timeout=10)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def member_state(cluster: Cluster, url: str, node_id: str) -> str | None:
    """The state ``url`` holds for member ``node_id`` (None: not a member there)."""
    for m in nodes(cluster, url)["members"]:
        if m["id"] == node_id:
            return str(m["state"])
    return None


def submit_job(cluster: Cluster, url: str, body: dict[str, Any]) -> str:
    r = httpx.post(f"{url}/api/jobs", json=body, headers=cluster.user(), timeout=30)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def wait_job(cluster: Cluster, url: str, job_id: str) -> dict[str, Any]:
    """The job once it ended (succeeded, failed or cancelled)."""
    h = cluster.user()
    with httpx.Client(base_url=url, timeout=30) as http:
        return wait_for(  # type: ignore[no-any-return]
            lambda: (
                (j := http.get(f"/api/jobs/{job_id}", headers=h).json())["state"]
                in ("succeeded", "failed", "cancelled")
                and j
            ),
            f"job {job_id}",
            JOB_TIMEOUT,
        )


def job_rows(cluster: Cluster, url: str, job_id: str) -> list[tuple[Any, ...]]:
    r = httpx.get(f"{url}/api/jobs/{job_id}/result", headers=cluster.user(), timeout=30)
    assert r.status_code == 200, r.text
    return sorted(tuple(row) for row in r.json()["rows"])


def run_job(cluster: Cluster, url: str, dataset: str) -> tuple[dict[str, Any], list[Any]]:
    """Run PIPELINE over ``dataset`` on ``url``: the ended job and (if it succeeded) its rows."""
    job = wait_job(cluster, url, submit_job(cluster, url, {"pipeline": PIPELINE(dataset)}))
    rows = job_rows(cluster, url, job["id"]) if job["state"] == "succeeded" else []
    return job, rows


def settled(cluster: Cluster, url: str, timeout: float = 120) -> float:
    """Seconds until ``url`` reports no under-replicated chunk (every chunk has R copies)."""
    t0 = time.monotonic()
    wait_for(lambda: nodes(cluster, url)["under_replicated"] == 0, "replication", timeout)
    return time.monotonic() - t0
