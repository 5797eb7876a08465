"""A job's record and spill after `platform up` is killed and restarted (break-tests of round 4):
`platform up` SIGKILLed while a job runs, then started again on the
same home. The job's record and its spill directory after the restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from jobs_helpers import FINAL, bearer, pool_workers

from lake import Client
from platform_core import PlatformSettings, auth, load_settings
from platform_gateway.testing import free_port, wait_healthy

PIPELINE = {"source": {"dataset": "nums"}, "steps": [{"sort": ["id"]}]}


def _killed_mid_job(
    start_platform: Any, platform_command: Path, tmp_path: Path
) -> tuple[str, str, str, Path, subprocess.Popen[bytes]]:
    """A platform killed (SIGKILL) while a job of alice's runs, and started again on its home:
    (url, alice's token, the job's id, its spill directory, the new process)."""
    p = start_platform(free_port(), env={"ELYTRA_WORKERS": "1"})
    signer = auth.signer(load_settings(PlatformSettings, home=p.home), create=False)
    alice = signer.issue("alice")
    csv = tmp_path / "nums.csv"
    csv.write_text("id,x\n1,1.5\n2,2.5\n")
    with Client(p.url, alice) as client:
        client.upload(csv, "nums")
    root = p.home / "spill" / "elytra"
    with httpx.Client(base_url=p.url, timeout=60) as http:
        warm = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=bearer(alice)).json()
        while (
            http.get(f"/api/jobs/{warm['id']}", headers=bearer(alice)).json()["state"] not in FINAL
        ):
            time.sleep(0.05)
        workers = pool_workers(p.proc.pid)
        for w in workers:
            os.kill(w, signal.SIGSTOP)  # the next job's task stays running
        try:
            job = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=bearer(alice)).json()
            deadline = time.monotonic() + 30
            while not (root / f".elytra-job-{job['id']}.lock").exists():
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
            while (
                http.get(f"/api/jobs/{job['id']}", headers=bearer(alice)).json()["state"]
                != "running"
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)  # its record is written (at most every 0.25 s)
            job_dir = root / job["id"]
            job_dir.mkdir(exist_ok=True)  # what its tasks would have spilled
            (job_dir / "run0.arrow").write_bytes(b"x" * 4096)
            p.proc.kill()
            p.proc.wait()
        finally:
            for w in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w, signal.SIGCONT)  # they see their driver gone and exit
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env.update({"ELYTRA_WORKERS": "1", "LAKE_FLIGHT_PORT": "0"})
    log = (tmp_path / "restart.log").open("wb")
    proc = subprocess.Popen(
        [str(platform_command), "up", "--port", str(port), "--home", str(p.home)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, timeout=30)
    return url, alice, job["id"], job_dir, proc


def test_a_reconciled_job_record_shows_no_running_tasks(
    start_platform: Any, platform_command: Path, tmp_path: Path
) -> None:
    """Restarted, the platform is a member of an election (of one) and waits for it before
    its database takes writes; the job its killed run drove is marked failed then (it stayed
    "running" for good when the election was slower than the platform's start: a CI run)."""
    url, alice, job_id, _, proc = _killed_mid_job(start_platform, platform_command, tmp_path)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            deadline = time.monotonic() + 30
            while True:
                record = http.get(f"/db/jobs/{job_id}.json", headers=bearer(alice)).json()
                if record["state"] != "running" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(30)
    assert record["state"] == "failed", record
    assert record["tasks"]["running"] == 0, record["tasks"]


def test_a_restarted_platform_sweeps_a_killed_runs_spill(
    start_platform: Any, platform_command: Path, tmp_path: Path
) -> None:
    _, _, _, job_dir, proc = _killed_mid_job(start_platform, platform_command, tmp_path)
    try:
        deadline = time.monotonic() + 5
        while job_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = job_dir.exists()
    finally:
        proc.terminate()
        proc.wait(30)
    assert not left
