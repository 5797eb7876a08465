"""/api/jobs under several users, bursts and bad plans (break-tests through a real
`platform up`): jobs of several users at once (the
shared pool used to fail all but one), the per-user running limit under concurrent submits (it
used to let most of a burst through), NaN and infinities in a JSON result (a 500), and plans
that must be refused with a 400 (a non-integer offset was a 500; a union of thousands of
pipelines planned for many seconds)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from jobs_helpers import FINAL, bearer, pool_workers

from lake import Client
from platform_core import PlatformSettings, auth, load_settings

from .conftest import SharedPlatform

PIPELINE = {"source": {"dataset": "nums"}, "steps": [{"sort": ["id"]}]}


@contextmanager
def _pool_stopped(pid: int) -> Iterator[None]:
    """SIGSTOP the pool's workers: every job dispatched meanwhile stays running."""
    workers = pool_workers(pid)
    assert workers
    for w in workers:
        os.kill(w, signal.SIGSTOP)
    try:
        yield
    finally:
        for w in workers:
            os.kill(w, signal.SIGCONT)


def _wait(http: httpx.Client, job_id: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = http.get(f"/api/jobs/{job_id}", headers=bearer(token)).json()
        if job["state"] in FINAL or time.monotonic() > deadline:
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)


@pytest.fixture(scope="module")
def platform(
    jobs_platform: SharedPlatform, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Any, Any]:
    # The burst counts only alice's jobs still running, and waits for them all to end: the
    # session's shared platform will do (it stops and resumes the pool's workers itself).
    p = jobs_platform
    signer = auth.signer(load_settings(PlatformSettings, home=p.home), create=False)
    csv = tmp_path_factory.mktemp("elytra-api") / "nums.csv"
    csv.write_text("id,x\n1,1.5\n2,nan\n3,inf\n4,-inf\n5,\n")
    with Client(p.url, signer.issue("alice")) as client:
        client.upload(csv, "nums")
    return p.url, signer, p.server.proc


def test_jobs_of_two_users_at_once_and_the_limit_under_a_burst(
    platform: tuple[str, Any, Any],
) -> None:
    url, signer, proc = platform
    alice, bob = signer.issue("alice"), signer.issue("bob")
    with httpx.Client(base_url=url, timeout=60) as http:
        ok = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=bearer(alice))
        assert _wait(http, ok.json()["id"], alice)["state"] == "succeeded"  # the pool is warm
        with _pool_stopped(proc.pid):
            first = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=bearer(bob))
            assert first.status_code == 202, first.text

            def post(_: int) -> int:
                with httpx.Client(base_url=url, timeout=60) as c:
                    r = c.post("/api/jobs", json={"pipeline": PIPELINE}, headers=bearer(alice))
                    return r.status_code

            with ThreadPoolExecutor(12) as ex:
                codes = sorted(ex.map(post, range(12)))
            assert codes == [202] * 4 + [429] * 8, codes
        jobs = http.get("/api/jobs", headers=bearer(alice)).json()
        running = [j["id"] for j in jobs if j["state"] not in FINAL]
        assert len(running) == 4
        states = [_wait(http, j, alice) for j in running] + [_wait(http, first.json()["id"], bob)]
        assert [j["state"] for j in states] == ["succeeded"] * 5, [j.get("error") for j in states]


def test_results_and_bad_plans(platform: tuple[str, Any, Any]) -> None:
    url, signer, _ = platform
    alice = signer.issue("alice")
    with httpx.Client(base_url=url, timeout=60) as http:
        job = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=bearer(alice)).json()
        assert _wait(http, job["id"], alice)["state"] == "succeeded"
        r = http.get(f"/api/jobs/{job['id']}/result", headers=bearer(alice))
        assert r.status_code == 200, r.text
        assert [row[1] for row in r.json()["rows"]] == [1.5, "NaN", "Infinity", "-Infinity", None]

        def bad(steps: list[dict[str, Any]], **source: Any) -> httpx.Response:
            pipeline = {"source": source or {"dataset": "nums"}, "steps": steps}
            return http.post("/api/jobs", json={"pipeline": pipeline}, headers=bearer(alice))

        r = bad([{"limit": 1, "offset": "x"}])
        assert r.status_code == 400, r.text
        assert "offset" in r.text
        r = bad([{"top_k": 10**30, "by": ["id"]}])
        assert r.status_code == 400, r.text
        assert "top_k" in r.text
        r = bad([{"join": {"source": {"dataset": 5}}, "on": "id"}])  # nested, wrong type
        assert r.status_code == 400, r.text
        assert "step 0 (join): not a pipeline: source.dataset: Input should be a valid" in r.text
        assert "pydantic.dev" not in r.text
        for timeout in (b"NaN", b"Infinity"):
            r = http.post(
                "/api/jobs",
                content=b'{"pipeline": {"source": {"dataset": "nums"}}, "timeout": '
                + timeout
                + b"}",
                headers={**bearer(alice), "content-type": "application/json"},
            )
            assert r.status_code == 400, r.text
            assert "finite number" in r.text, r.text
        started = time.monotonic()
        r = bad([{"union": [{"source": {"dataset": "nums"}}] * 5000}])
        assert r.status_code == 400, r.text
        assert "sources" in r.text
        assert time.monotonic() - started < 2
