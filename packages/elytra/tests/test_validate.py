"""``POST /api/jobs/validate`` and the task timeline a job record keeps."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

import elytra
from elytra import PipelineError
from elytra.jobs import TIMELINE_PER_STAGE, Job
from elytra.jobs_routes import JobRegistry, make_router
from elytra.spec import PipelineSpec
from elytra.validate import validate
from platform_core.auth import Claims
from platform_core.http.handlers import install_error_handlers


@pytest.fixture
def sales(session: elytra.Session, tmp_path: Path) -> elytra.Session:
    path = tmp_path / "sales.parquet"
    pq.write_table(
        pa.table({"uid": ["a", "b", "c", "a"] * 5, "amount": [1500.0, 20.0, 3000.0, 2500.0] * 5}),
        path,
    )
    session.read_parquet(str(path)).write("sales")
    return session


def _check(s: elytra.Session, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return validate(
        PipelineSpec.model_validate({"source": {"dataset": "sales"}, "steps": steps}), s
    )


def _error(s: elytra.Session, steps: list[dict[str, Any]]) -> dict[str, Any]:
    with pytest.raises(PipelineError) as info:
        _check(s, steps)
    return info.value.details


def test_a_good_pipeline_answers_its_forms_schema_and_plan(sales: elytra.Session) -> None:
    out = _check(
        sales,
        [
            {"filter": "amount > 100"},
            {"with_columns": {"big": "amount * 2"}},
            {"group_by": ["uid"], "agg": ["sum(big) AS total", "count(*) AS n"]},
            {"sort": ["total DESC"]},
        ],
    )
    assert [c["name"] for c in out["output_schema"]] == ["uid", "total", "n"]
    canonical = json.loads(out["text"])
    assert canonical["source"] == {"dataset": "sales", "version": 1}  # pinned
    assert canonical["steps"][2]["group_by"] == ["uid"]
    assert out["python"].startswith("(\n    s.dataset('sales', 1)")
    assert """.group_by('uid').agg('sum("big") AS "total"',""" in out["python"]
    assert "stage 0" in out["plan"]
    assert "task(s)" in out["plan"]
    assert """Aggregate by ['uid']: total=sum("big"), n=count(*)""" in out["logical"]
    assert """Filter ("amount" > 100)""" in out["logical"]  # text, not the node's repr
    assert """Map big = ("amount" * 2)""" in out["logical"]


def test_a_type_error_is_located_in_its_step_and_text(sales: elytra.Session) -> None:
    text = "uid = 'a' and amount > 'x'"
    d = _error(sales, [{"sort": ["amount"]}, {"filter": text}])
    assert d["step"] == 1
    assert d["field"] == "filter"
    assert text[d["start"] : d["end"]] == "amount > 'x'"
    assert "cannot compare" in d["reason"]


def test_a_parse_error_points_at_its_position(sales: elytra.Session) -> None:
    d = _error(sales, [{"with_columns": {"ok": "amount + 1", "bad": "amount >> 1"}}])
    assert d["step"] == 0
    assert d["field"] == "with_columns.bad"
    assert d["start"] == len("amount >")
    assert d["end"] == d["start"] + 1


def test_an_unknown_column_is_located_in_aggregates_and_keys(sales: elytra.Session) -> None:
    d = _error(sales, [{"group_by": ["uid"], "agg": ["count(*) AS n", "sum(amont) AS t"]}])
    assert d["field"] == "agg.1"
    assert "sum(amont) AS t"[d["start"] : d["end"]] == "amont"
    d = _error(sales, [{"group_by": ["user"], "agg": ["count(*) AS n"]}])
    assert d["field"] == "group_by.0"
    d = _error(sales, [{"filter": "amount > 1"}, {"sort": ["uid", "nope DESC"]}])
    assert d == {"step": 1, "field": "sort.1", "start": 0, "end": 4}


def test_top_k_keys_are_located(sales: elytra.Session) -> None:
    d = _error(sales, [{"top_k": 2, "by": ["amount DESC"], "per": ["usr"]}])
    assert d == {"step": 0, "field": "per.0", "start": 0, "end": 3}
    d = _error(sales, [{"top_k": 2, "by": ["amuont DESC"]}])
    assert d["field"] == "by.0"


def test_offsets_count_utf16_units_as_the_browser_does(sales: elytra.Session) -> None:
    text = "uid = '😀' and amount > 'x'"
    d = _error(sales, [{"filter": text}])
    assert text.encode("utf-16-le")[2 * d["start"] : 2 * d["end"]].decode("utf-16-le") == (
        "amount > 'x'"
    )


def test_a_missing_dataset_is_the_sources_fault(sales: elytra.Session) -> None:
    with pytest.raises(PipelineError) as info:
        validate(PipelineSpec.model_validate({"source": {"dataset": "sale"}, "steps": []}), sales)
    assert info.value.details == {"step": None, "field": "source"}
    assert "sales" in info.value.message  # the closest name


@pytest.fixture
def client(sales: elytra.Session, tmp_path: Path) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)

    @app.middleware("http")
    async def claims(request: Request, call_next: Any) -> Any:
        who = request.headers.get("x-test-user")
        if who:
            request.state.claims = Claims(sub=who, admin=False, exp=int(time.time()) + 60)
        return await call_next(request)

    store = elytra.ResultStore(
        tmp_path / "results", max_bytes=1 << 20, quota_bytes=1 << 20, ttl_seconds=60.0
    )
    app.include_router(make_router(lambda: sales, JobRegistry(), lambda: store), prefix="/api/jobs")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_the_route_needs_a_user_and_answers_400_with_the_location(client: TestClient) -> None:
    body = {"pipeline": {"source": {"dataset": "sales"}, "steps": [{"filter": "amount > 'x'"}]}}
    assert client.post("/api/jobs/validate", json=body).status_code == 401
    r = client.post("/api/jobs/validate", json=body, headers={"x-test-user": "ann"})
    assert r.status_code == 400, r.text
    assert r.json()["details"] == {
        "step": 0,
        "field": "filter",
        "start": 0,
        "end": len("amount > 'x'"),
        "reason": "cannot compare f64 with utf8 in \"amount > 'x'\"",
    }
    body["pipeline"]["steps"] = [{"filter": "amount > 1"}]
    r = client.post("/api/jobs/validate", json=body, headers={"x-test-user": "ann"})
    assert r.status_code == 200, r.text
    assert r.json()["schema"] == [
        {"name": "uid", "type": "string"},
        {"name": "amount", "type": "double"},
    ]
    too_many = {"pipeline": {"source": {"dataset": "sales"}, "steps": [{"distinct": True}] * 101}}
    r = client.post("/api/jobs/validate", json=too_many, headers={"x-test-user": "ann"})
    assert r.status_code == 400


def test_the_timeline_keeps_the_first_tasks_of_each_stage_and_counts_the_rest() -> None:
    job = Job("j1")
    job.plan_stage(0, TIMELINE_PER_STAGE + 5)
    job.plan_stage(1, 1)
    for t in range(TIMELINE_PER_STAGE + 5):
        job.task_done(f"j1-s0-t{t}", 0, 0.5, rows=3, worker=42)
    job.task_done("j1-s1-t0", 1, 0.1)
    tl = job.status()["timeline"]
    assert tl["stages"] == {
        "s0": {"total": TIMELINE_PER_STAGE + 5, "done": TIMELINE_PER_STAGE + 5},
        "s1": {"total": 1, "done": 1},
    }
    assert len(tl["tasks"]) == TIMELINE_PER_STAGE + 1
    assert tl["omitted"] == 5
    bar = tl["tasks"]["s0-t0"]
    assert bar["stage"] == 0
    assert bar["rows"] == 3
    assert bar["worker"] == 42
    assert bar["end"] - bar["start"] == pytest.approx(0.5, abs=1e-5)


def test_a_run_records_one_bar_per_task(sales: elytra.Session, tmp_path: Path) -> None:
    for i in range(3):
        pq.write_table(
            pa.table({"x": list(range(i * 10, i * 10 + 10))}), tmp_path / f"p{i}.parquet"
        )
    job = sales.read_parquet(str(tmp_path / "p*.parquet")).filter("x > 3").submit()
    assert job.wait(30) == "succeeded"
    tl = job.status()["timeline"]
    total = job.status()["tasks"]["total"]
    assert total >= 1
    assert len(tl["tasks"]) == total
    assert sum(s["done"] for s in tl["stages"].values()) == total
    for bar in tl["tasks"].values():
        assert bar["start"] <= bar["end"]
