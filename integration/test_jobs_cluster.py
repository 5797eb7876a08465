"""Elytra jobs on a 3-node lake: the gateway's node and two `lake node` processes joined to it.

The dataset is uploaded to another node, so the gateway holds only its share of the chunks: a
job reads the others from replicas (checked), also after a node holding some is SIGKILLed.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from jobs_helpers import wait_job

from lake import Client
from lake.testing import start_node, stop_node
from platform_core.auth import TokenSigner
from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]
SECRET = "c" * 40
CHUNK = 64 * 1024
FAST = {
    "LAKE_CHUNK_BYTES": str(CHUNK),
    "LAKE_GOSSIP_INTERVAL_SECONDS": "0.2",
    "LAKE_PING_TIMEOUT_SECONDS": "0.4",
    "LAKE_SUSPECT_TIMEOUT_SECONDS": "3",
    "LAKE_REPLICATE_INTERVAL_SECONDS": "0.5",
    "LAKE_FLIGHT_PORT": "0",
}
PIPELINE = {
    "source": {"dataset": "sales"},
    "steps": [
        {"filter": "amount > 10"},
        {"group_by": ["grp"], "agg": ["count(*) AS n", "max(amount) AS top", "min(id) AS first"]},
    ],
}
SQL = (
    "SELECT grp, count(*) AS n, max(amount) AS top, min(id) AS first FROM read_csv('{csv}') "
    "WHERE amount > 10 GROUP BY grp ORDER BY grp"
)


def _wait(check: Callable[[], Any], what: str, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _run(http: httpx.Client, token: str) -> list[tuple[Any, ...]]:
    h = {"authorization": f"Bearer {token}"}
    r = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=h)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    job = wait_job(http, job_id, h, 40)
    assert job["state"] == "succeeded", job
    rows = http.get(f"/api/jobs/{job_id}/result", headers=h).json()["rows"]
    return sorted(tuple(r) for r in rows)


def test_a_job_reads_chunks_this_node_lacks_from_replicas(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    port = free_port()
    platform = start_platform(port, env={"PLATFORM_SECRET": SECRET, **FAST})
    token = TokenSigner(SECRET).issue("alice")
    env = {"PLATFORM_SECRET": SECRET, **FAST}
    b = start_node(tmp_path / "b", "--join", f"127.0.0.1:{port}", env=env)
    c = start_node(tmp_path / "c", "--join", f"127.0.0.1:{port}", env=env)
    try:
        csv = tmp_path / "sales.csv"
        duckdb.sql(
            f"COPY (SELECT i AS id, i % 7 AS grp, round(i * 0.37 % 1000, 2) AS amount "
            f"FROM range(150000) t(i)) TO '{csv}' (HEADER)"
        )
        with httpx.Client(base_url=platform.url, timeout=60) as http:
            h = {"authorization": f"Bearer {token}"}
            _wait(
                lambda: len(http.get("/api/lake/nodes", headers=h).json()["members"]) == 3,
                "3 members",
            )
            with Client(b.url, token) as client:  # B ingests: the gateway is only a replica
                status = client.upload(csv, "sales", part_size=1 << 20)
            assert status["chunks"] >= 12
            _wait(
                lambda: (
                    http.get("/api/lake/nodes", headers=h).json()["under_replicated"] == 0
                    and any(
                        d["name"] == "sales"
                        for d in http.get("/api/lake/datasets", headers=h).json()
                    )
                ),
                "replication to settle",
            )
            everything = {
                ch["sha256"]
                for ch in http.get("/api/lake/datasets/sales", headers=h).json()["chunk_list"]
            }
            here = {p.stem for p in (platform.home / "lake").glob("*/chunks/*.parquet")}
            assert everything - here, "the gateway holds every chunk: nothing to read remotely"
            want = sorted(duckdb.sql(SQL.format(csv=csv)).fetchall())
            assert _run(http, token) == want
            # a node holding chunks dies: the job reads them from the other replica
            c.proc.send_signal(signal.SIGKILL)
            c.proc.wait()
            assert _run(http, token) == want
            # the fetched copies were the job's only: gone with it
            assert not list((platform.home / "spill").glob("elytra/*/chunks/*"))
    finally:
        stop_node(b)
        if c.proc.poll() is None:
            stop_node(c)
