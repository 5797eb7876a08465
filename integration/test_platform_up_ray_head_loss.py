"""The Ray head of `platform up --ray` dies on its own (its gcs_server SIGKILLed): the
platform says so in one line, stops the rest of that Ray node (no orphan re-parented to
pid 1), shows Ray gone in its status, and keeps answering.

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
import pytest
from figures import long_mode
from jobs_helpers import bearer
from platform_cluster import SECRET, wait_for
from ray_platform import ray_processes, start_with_ray

from platform_core.auth import TokenSigner

pytestmark = pytest.mark.timeout(300)

WATCH_SECONDS = 75.0 if long_mode() else 10.0


def test_the_platform_outlives_its_ray_head(tmp_path: Path) -> None:
    platform, home, _ = start_with_ray(tmp_path)
    admin = bearer(TokenSigner(SECRET).issue("admin", admin=True))
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
        assert ray_processes(home, exclude={platform.pid}) == {}
        lines = [x for x in platform.stderr().splitlines() if "the Ray head at" in x]
        assert len(lines) == 1, lines
    finally:
        code = platform.stop(timeout=60)
    assert code == 0, platform.stderr()[-3000:]
    assert not ray_processes(home)
