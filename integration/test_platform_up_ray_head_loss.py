"""The Ray head of `platform up --ray` dies on its own (its gcs_server SIGKILLed): the
platform says so in one line, stops the rest of that Ray node (no orphan re-parented to
pid 1), shows Ray gone in its status, keeps answering, and fails a job submitted meanwhile
naming Ray (503, submit again); `platform up --ray` again on the same home starts a new head
and its jobs run on Ray again (issue 34's fault list).

Ray's driver inside the gateway ends its process about 60 s after its GCS is lost unless
told otherwise (``RAY_gcs_rpc_server_reconnect_timeout_s``): the default session watches
/health for 10 s after the kill; PLATFORM_TESTS_LONG=1 (`nox -s chaos`) watches 75 s, past
Ray's minute.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from figures import long_mode
from jobs_helpers import bearer, wait_job
from platform_cluster import SECRET, pipeline, wait_for
from ray_platform import ray_processes, start_with_ray

from lake import Client
from platform_core.auth import TokenSigner

pytestmark = pytest.mark.timeout(300)

WATCH_SECONDS = 75.0 if long_mode() else 10.0


def test_the_platform_outlives_its_ray_head(tmp_path: Path) -> None:
    platform, home, _ = start_with_ray(tmp_path)
    admin = bearer(TokenSigner(SECRET).issue("admin", admin=True))
    user = bearer(TokenSigner(SECRET).issue("alice"))
    data = tmp_path / "facts.parquet"
    rows = range(2000)
    table = {"id": list(rows), "grp": [i % 5 for i in rows], "amount": [i * 0.1 for i in rows]}
    pq.write_table(pa.table(table), data)
    with Client(platform.url, TokenSigner(SECRET).issue("alice")) as client:
        client.upload(data, "facts")
    try:
        ours = ray_processes(home, exclude={platform.pid})
        gcs = [pid for pid, cmd in ours.items() if "gcs_server" in cmd]
        assert len(gcs) == 1, ours
        os.kill(gcs[0], signal.SIGKILL)
        wait_for(
            lambda: "died" in platform.stderr(), "the platform to notice its Ray head died", 30
        )
        wait_for(
            lambda: not ray_processes(home, exclude={platform.pid}),
            "the rest of the Ray node to be stopped",
            20,
        )
        killed_at = time.monotonic()
        with httpx.Client(base_url=platform.url, timeout=5) as http:
            ray = http.get("/api/platform/status", headers=admin).json()["self"]["ray"]
            assert ray["state"] == "gone", ray
            while time.monotonic() - killed_at < WATCH_SECONDS:
                assert http.get("/health").json() == {"status": "ok"}
                assert platform.proc.poll() is None, platform.stderr()[-3000:]
                time.sleep(1)
            r = http.post("/api/jobs", json={"pipeline": pipeline("facts")}, headers=user)
            assert r.status_code == 202, r.text
            failed = wait_job(http, r.json()["id"], user, timeout=90)
        assert failed["state"] == "failed", failed
        assert failed["error"]["type"] == "unavailable", failed["error"]
        assert "Ray" in failed["error"]["message"], failed["error"]
        assert ray_processes(home, exclude={platform.pid}) == {}
        lines = [x for x in platform.stderr().splitlines() if "the Ray head at" in x]
        assert len(lines) == 1, lines
    finally:
        code = platform.stop(timeout=60)
    assert code == 0, platform.stderr()[-3000:]
    assert not ray_processes(home)
    again, _, _ = start_with_ray(tmp_path, run="again")  # the same home: a new Ray head
    try:
        with httpx.Client(base_url=again.url, timeout=30) as http:
            r = http.post("/api/jobs", json={"pipeline": pipeline("facts")}, headers=user)
            assert r.status_code == 202, r.text
            job = wait_job(http, r.json()["id"], user, timeout=120)
        assert job["state"] == "succeeded", job
        assert job["backend"] == "ray", job
    finally:
        assert again.stop(timeout=60) == 0, again.stderr()[-3000:]
    assert not ray_processes(home)
