"""Small helpers the job tests share: final job states, auth headers, the pool's workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from proc_rss import descendants

FINAL = ("succeeded", "failed", "cancelled")


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of ``token``."""
    return {"authorization": f"Bearer {token}"}


def pool_workers(pid: int) -> list[int]:
    """The platform's local pool workers: the processes below ``pid`` started by
    multiprocessing's spawn. One that ends while this reads /proc is skipped (CI once failed
    on a thread that ended between the listing of /proc/PID/task and the read of its
    children)."""
    out = []
    for child in descendants(pid)[1:]:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:
            continue
    return out


def wait_job(
    http: httpx.Client, job_id: str, headers: dict[str, str], timeout: float = 120.0
) -> dict[str, Any]:
    """The job's record once it reached a final state; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = http.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job.get("state") in FINAL:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish within {timeout:g} s: {job}")
