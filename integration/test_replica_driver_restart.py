"""A platform that drives a job as a replica of its cluster, SIGKILLed mid-job and started
again on its home and port: the job's record at the primary says failed, and a result its
killed run committed is removed; a job it finished before the kill keeps its result.

Found from outside (issue 35's stops): the restarted platform's start-up work ran only on a
primary, so the job stayed "running" for good; now the restarted replica marks failed the
jobs its killed run drove, deciding by their state at the primary (its own copy may lag).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from jobs_helpers import pool_workers, wait_job
from platform_cluster import FAST, start_cluster, wait_for
from servers import command, launch

from lake import Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PIPELINE = {"source": {"dataset": "nums"}, "steps": [{"sort": ["id"]}]}


def test_a_replica_killed_mid_job_fails_its_job_and_drops_its_result(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 2, env={"ELYTRA_WORKERS": "1"})
    try:
        primary, replica = cluster.urls
        alice = cluster.user()
        csv = tmp_path / "nums.csv"
        csv.write_text("id,x\n1,1.5\n2,2.5\n")
        with Client(replica, alice["authorization"][7:]) as client:
            client.upload(csv, "nums")
        with httpx.Client(base_url=replica, timeout=60) as http:
            done = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=alice).json()
            assert wait_job(http, done["id"], alice)["state"] == "succeeded"
            workers = pool_workers(cluster.nodes[1].pid)
            try:
                job_id = _stalled_job(http, alice, workers)
                results = cluster.homes[1] / "results" / "elytra"
                (results / job_id).mkdir(parents=True)  # as if committed just before the kill
                (results / job_id / "result.arrow").write_bytes(b"x" * 4096)
                os.kill(cluster.nodes[1].pid, signal.SIGKILL)
                cluster.nodes[1].proc.wait(10)
            finally:
                _resume(workers)
        port = replica.rsplit(":", 1)[1]
        argv = [str(command("platform")), "up", "--port", port, "--home", str(cluster.homes[1])]
        cluster.nodes[1] = launch(
            [*argv, "--join", primary.split("//", 1)[1]],
            tmp_path / "p1-again",
            env={**FAST, "ELYTRA_WORKERS": "1"},
        )

        def failed() -> dict[str, object] | None:
            r = httpx.get(f"{primary}/db/jobs/{job_id}.json", headers=cluster.admin())
            record = r.json()
            return record if record.get("state") == "failed" else None

        record = wait_for(failed, "the killed run's job marked failed at the primary", 30)
        assert "died" in str(record.get("error")), record
        wait_for(lambda: not (results / job_id).exists(), "its committed result removed", 10)
        with httpx.Client(base_url=replica, timeout=60) as http:
            kept = http.get(f"/api/jobs/{done['id']}/result", headers=alice)
        assert kept.status_code == 200, kept.text  # finished before the kill: kept
    finally:
        cluster.stop()


def _stalled_job(http: httpx.Client, alice: dict[str, str], workers: list[int]) -> str:
    """A job submitted with the pool's ``workers`` stopped (SIGSTOP): its task stays running.
    Its id, once its record says running."""
    for w in workers:
        os.kill(w, signal.SIGSTOP)
    job = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=alice).json()
    deadline = time.monotonic() + 30
    while http.get(f"/api/jobs/{job['id']}", headers=alice).json()["state"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    time.sleep(0.5)  # its record is written (at most every 0.25 s)
    return str(job["id"])


def _resume(workers: list[int]) -> None:
    """SIGCONT each worker (after its driver's kill: they see it gone and exit)."""
    for w in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(w, signal.SIGCONT)
