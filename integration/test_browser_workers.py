"""Browser workers through the installed `platform up` with ELYTRA_BACKEND=browser.

An admin mints a worker token at POST /api/workers/tokens; two reference workers join at
/api/workers/ws; a job submitted at /api/jobs runs its tasks on them and equals DuckDB. The
worker routes refuse user tokens, and the user routes refuse the worker token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from worker_tabs import browser_backend_env

from elytra.browser.reference import ReferenceWorker
from lake import Client
from platform_core import PlatformSettings, auth, load_settings
from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]

PIPELINE = {
    "source": {"dataset": "sales"},
    "steps": [
        {"filter": "amount > 100"},
        {"group_by": ["grp"], "agg": ["count(*) AS n", "sum(id) AS total"]},
        {"sort": ["grp"]},
    ],
}


def _assert_job_equals_duckdb(
    http: httpx.Client, url: str, job: str, token: str, csv: Path, deadline: float
) -> None:
    """Wait for PIPELINE's job to succeed (by ``deadline``) and compare its rows with DuckDB's."""
    while (
        state := http.get(f"{url}/api/jobs/{job}", params={"auth": token}).json()["state"]
    ) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state == "succeeded"
    got = http.get(f"{url}/api/jobs/{job}/result", params={"auth": token}).json()
    want = duckdb.sql(
        f"SELECT grp, count(*) AS n, sum(id) AS total FROM read_csv('{csv}') "
        "WHERE amount > 100 GROUP BY grp ORDER BY grp"
    ).fetchall()
    assert [tuple(row) for row in got["rows"]] == [tuple(row) for row in want]


def _sales_platform(
    start_platform: StartPlatform, tmp_path: Path, **env: str
) -> tuple[Any, Path, str, str]:
    """A platform on the browser backend holding dataset `sales` (40,000 rows in chunks of
    64 KiB, uploaded from `sales.csv`); returns it, the CSV, alice's and an admin's token."""
    platform = start_platform(free_port(), env=browser_backend_env(64 * 1024, **env))
    signer = auth.signer(load_settings(PlatformSettings, home=platform.home), create=False)
    alice, admin = signer.issue("alice"), signer.issue("ops", admin=True)
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 5 AS grp, round(i * 0.37 % 1000, 2) AS amount "
        f"FROM range(40000) t(i)) TO '{csv}' (HEADER)"
    )
    with Client(platform.url, alice) as client:
        assert client.upload(csv, "sales", part_size=1 << 20)["chunks"] >= 4
    return platform, csv, alice, admin


def test_browser_workers_run_a_job_of_the_platform(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    platform, csv, alice, admin = _sales_platform(
        start_platform, tmp_path, ELYTRA_BROWSER_VERIFY_FRACTION="0.5"
    )
    base = f"{platform.url}/api/workers"
    with httpx.Client(timeout=60) as http:
        assert http.post(f"{base}/tokens", json={}, params={"auth": alice}).status_code == 403
        r = http.post(f"{base}/tokens", json={"sub": "tab"}, params={"auth": admin})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        # a worker token opens no user route; a user token no worker route
        assert http.get(f"{platform.url}/api/jobs", params={"auth": token}).status_code == 401
        assert http.get(f"{platform.url}/db/.json", params={"auth": token}).status_code == 401
        r = http.get(f"{base}/chunks/x", params={"auth": alice, "worker": "w1"})
        assert r.status_code == 401
        assert "/api/workers/tokens" in http.get(f"{platform.url}/openapi.json").json()["paths"]
        tabs = [ReferenceWorker(base, token, 2).start() for _ in range(2)]
        try:
            r = http.post(
                f"{platform.url}/api/jobs", json={"pipeline": PIPELINE}, params={"auth": alice}
            )
            assert r.status_code == 202, r.text
            job = r.json()["id"]
            deadline = time.monotonic() + 120
            _assert_job_equals_duckdb(http, platform.url, job, alice, csv, deadline)
            assert sum(len(t.accepted) for t in tabs) >= 4  # the tasks ran in the "browsers"
        finally:
            for t in tabs:
                t.stop()


def _jti(token: str) -> str:
    """The id claim of a JWT (read without verifying: the test minted it)."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def test_a_revoked_worker_token_closes_its_connection_and_its_tasks_run_elsewhere(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    """Issue 26: `POST /api/tokens/revoke {"id": ...}` of a worker token closes the worker's
    open WebSocket (1008) within the revocation delay; the tasks it held are offered again,
    taken by a worker with a fresh token, and the job equals DuckDB."""
    platform, csv, alice, admin = _sales_platform(start_platform, tmp_path)
    base = f"{platform.url}/api/workers"
    with httpx.Client(timeout=60) as http:

        def mint(sub: str) -> str:
            r = http.post(f"{base}/tokens", json={"sub": sub}, params={"auth": admin})
            assert r.status_code == 200, r.text
            return str(r.json()["token"])

        doomed_token = mint("doomed")
        # a slow worker: it holds its two tasks for a minute unless its connection ends
        doomed = ReferenceWorker(base, doomed_token, 2, delay=60).start()
        fresh: ReferenceWorker | None = None
        try:
            r = http.post(
                f"{platform.url}/api/jobs", json={"pipeline": PIPELINE}, params={"auth": alice}
            )
            assert r.status_code == 202, r.text
            job = r.json()["id"]
            deadline = time.monotonic() + 60
            while len(doomed.started) < 2:
                assert time.monotonic() < deadline, "the slow worker never got its tasks"
                time.sleep(0.1)
            held = list(doomed.started)
            r = http.post(
                f"{platform.url}/api/tokens/revoke",
                json={"id": _jti(doomed_token)},
                params={"auth": admin},
            )
            assert r.status_code == 200, r.text
            revoked_at = time.monotonic()
            assert doomed.closed.wait(10), "the revoked worker's connection stayed open"
            delay = time.monotonic() - revoked_at
            assert doomed.close_code == 1008, (doomed.close_code, doomed.close_reason)
            assert "revoked" in doomed.close_reason
            assert delay < 5, delay  # the documented worst case is 3 s
            # the revoked token opens nothing any more
            again = ReferenceWorker(base, doomed_token, 1)
            with pytest.raises(RuntimeError, match="HTTP 403"):
                again.start()
            fresh = ReferenceWorker(base, mint("fresh"), 2).start()
            deadline = time.monotonic() + 120
            _assert_job_equals_duckdb(http, platform.url, job, alice, csv, deadline)
            assert doomed.accepted == []
            assert set(held) <= set(fresh.accepted)  # its tasks were offered again and ran
        finally:
            doomed.kill()
            if fresh is not None:
                fresh.stop()
