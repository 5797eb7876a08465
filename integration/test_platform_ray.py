"""`platform up --ray-address`: a Ray cluster started with Ray's own `ray start --head` runs
the platform's Elytra tasks; `platform status` and the pool route show Ray's nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from jobs_helpers import wait_job
from platform_cluster import FAST, SECRET, wait_for
from servers import command, launch

from lake import Client
from platform_core.auth import TokenSigner
from platform_gateway.testing import free_port

pytestmark = pytest.mark.timeout(600)

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
"""Ray's token auth, on both sides: the head makes a token (``~/.ray/auth_token``) if there
is none, and the platform's driver sends it."""


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[str]:
    """A one-node Ray cluster (`ray start --head --block`), stopped with its processes."""
    port = free_port()
    temp = Path("/tmp") / f"ray-{port}"  # Ray's socket paths must stay short
    # No drain on SIGTERM: Ray's default waits up to 30 s for a drain that, with the whole
    # group stopped at once, never ends (the teardown took 30.5 s, then SIGKILL anyway).
    env = {**os.environ, **RAY_ENV, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    proc = subprocess.Popen(
        [
            str(command("ray")),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        stdout=(tmp_path / "ray.log").open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its whole process group is stopped after
    )
    try:
        wait_for(
            lambda: (
                proc.poll() is None and "Ray runtime started" in (tmp_path / "ray.log").read_text()
            ),
            "ray start --head",
            120,
        )
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        time.sleep(0.5)


def test_a_platform_attached_to_ray_runs_its_jobs_there(ray_head: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    platform = launch(
        [
            str(command("platform")),
            "up",
            "--port",
            "0",
            "--home",
            str(home),
            "--ray-address",
            ray_head,
        ],
        tmp_path / "run",
        env={**FAST, **RAY_ENV},
    )
    try:
        signer = TokenSigner(SECRET)
        admin = {"authorization": f"Bearer {signer.issue('admin', admin=True)}"}
        user = {"authorization": f"Bearer {signer.issue('alice')}"}
        src = (
            duckdb.sql(
                "SELECT i AS id, i % 5 AS grp, (i * 37) % 1000 AS amount FROM range(60000) t(i)"
            )
            .arrow()
            .read_all()
        )
        pq.write_table(src, tmp_path / "r.parquet")
        with Client(platform.url, signer.issue("alice")) as client:
            client.upload(tmp_path / "r.parquet", "on_ray")
        with httpx.Client(base_url=platform.url, timeout=60) as http:
            pool = http.get("/api/jobs/pool", headers=user).json()
            assert pool["backend"] == "ray", pool
            assert pool["ray"]["attached"] is True, pool
            assert pool["ray"]["node_count"] == 1, pool
            status = http.get("/api/platform/status", headers=admin).json()
            assert status["self"]["plugins"]["elytra"]["ray"]["node_count"] == 1
            body = {
                "pipeline": {
                    "source": {"dataset": "on_ray"},
                    "steps": [{"group_by": ["grp"], "agg": ["sum(amount) AS s", "count(*) AS n"]}],
                }
            }
            r = http.post("/api/jobs", json=body, headers=user)
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            job = wait_job(http, job_id, user, 300)
            assert job["state"] == "succeeded", job
            rows = sorted(
                tuple(x)
                for x in http.get(f"/api/jobs/{job_id}/result", headers=user).json()["rows"]
            )
        want = sorted(
            duckdb.sql(
                "SELECT grp, sum(amount) AS s, count(*) AS n FROM src GROUP BY grp"
            ).fetchall()
        )
        assert rows == want
        # Ray's own view: its head started a Python worker for the platform's tasks
        logs = Path("/tmp") / f"ray-{ray_head.rsplit(':', 1)[1]}" / "session_latest" / "logs"
        assert list(logs.glob("python-core-worker-*.log")), sorted(p.name for p in logs.iterdir())
    finally:
        platform.stop()


def test_an_address_nobody_answers_on_fails_the_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    out = subprocess.run(
        [
            str(command("platform")),
            "up",
            "--port",
            "0",
            "--home",
            str(tmp_path / "home"),
            "--ray-address",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        env={**env, **FAST},
        timeout=180,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no Ray cluster answers at" in out.stderr, out.stderr
