"""GET /pool: the backend, its workers busy or idle, Ray's nodes and resources when attached.
Role: any signed-in user (a request without claims is refused)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

import elytra
from elytra.pool_routes import make_pool_router, pool_status
from platform_core.auth import Claims
from platform_core.http import install_error_handlers


def _app(backend: Any) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.middleware("http")
    async def claims(request: Request, call_next: Any) -> Any:
        # What the gateway's require_token leaves for the route (a user, not an admin).
        if request.headers.get("authorization"):
            request.state.claims = Claims(sub="ann", admin=False, exp=2**40)
        return await call_next(request)

    app.include_router(make_pool_router(lambda: backend), prefix="/api/jobs")
    return TestClient(app)


def test_a_user_sees_the_local_pool_with_idle_workers(one_worker_pool: elytra.LocalPool) -> None:
    client = _app(one_worker_pool)
    assert client.get("/api/jobs/pool").status_code == 401
    r = client.get("/api/jobs/pool", headers={"authorization": "Bearer x"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == "local"
    assert body["workers"] == 1
    assert (body["busy"], body["idle"]) == (0, 1)
    [worker] = body["worker_list"]
    assert worker["pid"] == one_worker_pool.worker_pids()[0]
    assert worker["state"] == "idle"
    assert body["ray"] == {
        "attached": False,
        "detail": "not attached",
        "nodes": [],
        "node_count": 0,
        "alive_count": 0,
        "resources": {},
        "available": {},
    }


def test_a_busy_worker_is_shown_with_its_task(
    one_worker_pool: elytra.LocalPool, parts_dir: Path, tmp_path: Path
) -> None:
    # A pipeline whose one task sleeps in a UDF: while it runs, the pool reports it busy.
    started, release = threading.Event(), threading.Event()
    seen: list[Any] = []

    def watch() -> None:
        started.wait(30)
        while not release.is_set():
            status = pool_status(one_worker_pool)
            if status.busy:
                seen.append(status)
                release.set()
            release.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()

    def slow(batch: pa.RecordBatch) -> pa.RecordBatch:
        import time

        if batch.num_rows:
            time.sleep(0.3)
        return batch

    try:
        with elytra.connect(home=tmp_path / "home", backend=one_worker_pool) as s:
            started.set()
            out = s.read_parquet(f"{parts_dir}/*.parquet").map_batches(slow).collect()
        assert out.num_rows == 5 * 2000
    finally:
        release.set()
        watcher.join(10)
    assert seen, "the worker was never reported busy"
    [w] = seen[0].worker_list
    assert w.state == "busy"
    assert w.task


def test_inline_has_no_workers_and_a_missing_pool_is_503() -> None:
    body = _app(elytra.InlineBackend()).get("/api/jobs/pool", headers={"authorization": "x"})
    assert body.json()["backend"] == "inline"
    assert body.json()["workers"] is None
    missing = _app(None).get("/api/jobs/pool", headers={"authorization": "x"})
    assert missing.status_code == 503
    assert "retry" in missing.json()["error"]


@pytest.mark.slow
def test_ray_reports_its_nodes_and_resources(ray_backend: elytra.RayBackend) -> None:
    body = _app(ray_backend).get("/api/jobs/pool", headers={"authorization": "x"}).json()
    assert body["backend"] == "ray"
    assert body["ray"]["attached"] is True
    assert body["ray"]["node_count"] >= body["ray"]["alive_count"] >= 1
    assert body["ray"]["nodes"][0]["alive"] is True
    assert body["ray"]["resources"]["CPU"] == 2
    assert body["workers"] == 2
