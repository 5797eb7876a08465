"""The gateway router at ``/api/jobs``: submit a pipeline (its JSON form), list, get, cancel,
fetch the result (JSON, Arrow IPC stream or CSV).

Roles: any user submits and lists their own jobs; a job's owner or an admin reads, cancels
and fetches it; an admin lists everyone's. Bounds: the body (the gateway's limit), steps and
nesting (``spec``), running jobs per user, results kept in memory (oldest dropped first:
then 410), rows and bytes of a JSON answer.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from platform_core import (
    BadInputError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PlatformError,
    UnauthorizedError,
    json_rows,
    write_csv_bytes,
)
from platform_core.auth import Claims

from .driver import Driver
from .errors import ElytraError, ResultGoneError, TooManyJobsError
from .jobs import FINAL, Job
from .session import Session
from .spec import PipelineSpec, build
from .validate import make_validate_router

__all__ = ["JobRegistry", "make_router"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
JSON_ROWS = 100_000
"""Rows a JSON result may hold (Python objects per row); Arrow and CSV go up to 10 million."""


class SubmitRequest(BaseModel):
    pipeline: PipelineSpec
    timeout: float | None = Field(
        None,
        gt=0,
        le=24 * 3600,
        allow_inf_nan=False,
        strict=True,  # a JSON number: not true, not "2"
        description="Seconds; default 1 h.",
    )
    write: str | None = Field(
        None, description="A dataset to commit the rows to as a new version (yours, or new)."
    )


class JobModel(BaseModel):
    id: str
    owner: str | None
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    plan: str
    created: float
    tasks: dict[str, int]
    rows_in: int = Field(
        0, description="Rows of the job's sources (lake datasets, Parquet files) it read."
    )
    rows_out: int
    bytes_in: int
    bytes_out: int
    spilled_bytes: int
    started: float | None = None
    finished: float | None = None
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    stages: dict[str, Any] = Field(default_factory=dict)
    timeline: dict[str, Any] = Field(default_factory=dict)


class JobRegistry:
    """Jobs of this gateway, newest last; finished ones beyond ``keep`` are forgotten, results
    beyond ``result_bytes`` in total are dropped oldest first."""

    def __init__(self, keep: int = 1000, result_bytes: int = 256 << 20, per_user: int = 4) -> None:
        self.keep = keep
        self.result_bytes = result_bytes
        self.per_user = per_user
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._admitting: dict[str, int] = {}  # owner -> submits between admission and add
        self._lock = threading.Lock()

    def admit(self, owner: str) -> None:
        """Raise ``TooManyJobsError`` if ``owner`` holds the limit (see ``admitting``)."""
        with self._lock:
            self._check(owner)

    def _check(self, owner: str) -> None:
        running = sum(1 for j in self.jobs.values() if j.owner == owner and not j.done())
        running += self._admitting.get(owner, 0)
        if running >= self.per_user:
            raise TooManyJobsError(
                f"{owner!r} has {running} jobs running, the limit per user; wait for one to "
                "end or cancel one"
            )

    @contextmanager
    def admitting(self, owner: str) -> Iterator[Callable[[Job], None]]:
        """Hold one of ``owner``'s running slots while a job is planned and started; the
        context gives ``add(job)``, which turns the held slot into the job. Concurrent submits
        cannot all pass the check before any of them is added."""
        with self._lock:
            self._check(owner)
            self._admitting[owner] = self._admitting.get(owner, 0) + 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._admitting[owner] -= 1
                if not self._admitting[owner]:
                    del self._admitting[owner]

        def add(job: Job) -> None:
            with self._lock:
                release()
                self._add(job)

        try:
            yield add
        finally:
            with self._lock:
                release()

    def add(self, job: Job) -> None:
        with self._lock:
            self._add(job)

    def _add(self, job: Job) -> None:
        self.jobs[job.id] = job
        finished = [k for k, j in self.jobs.items() if j.done()]
        while len(self.jobs) > self.keep and finished:
            self.jobs.pop(finished.pop(0), None)
        self._trim()

    def _trim(self) -> None:
        total = sum(j.table.nbytes for j in self.jobs.values() if j.table is not None)
        for j in self.jobs.values():
            if total <= self.result_bytes:
                break
            if j.table is not None and j.done():
                total -= j.table.nbytes
                j.table = None
                j.record["result"] = {**(j.record.get("result") or {}), "dropped": True}

    def get(self, job_id: str, who: Claims) -> Job:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} on this platform (or it was forgotten)")
        if not who.admin and job.owner != who.sub:
            raise ForbiddenError(f"job {job_id} belongs to {job.owner!r}")
        return job

    def list(self, who: Claims) -> list[Job]:
        with self._lock:
            jobs = list(self.jobs.values())
        return [j for j in reversed(jobs) if who.admin or j.owner == who.sub]

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self.jobs.values())
        for j in jobs:
            j.cancel()


def _caller(request: Request) -> Claims:
    claims = getattr(request.state, "claims", None)
    if not isinstance(claims, Claims):
        raise UnauthorizedError("this route needs a token: send 'Authorization: Bearer <token>'")
    return claims


Who = Annotated[Claims, Depends(_caller)]


def _model(job: Job) -> JobModel:
    return JobModel.model_validate(job.status())


def make_router(session: Callable[[], Session], registry: JobRegistry) -> APIRouter:
    """The routes; ``session()`` gives the platform's elytra session (it may be starting)."""
    router = APIRouter(tags=["jobs"])
    router.include_router(make_validate_router(session))  # POST /validate (validate.py)

    @router.post("", status_code=202, response_model=JobModel, summary="Submit a pipeline")
    def submit(body: SubmitRequest, who: Who) -> JobModel:
        with registry.admitting(who.sub) as add:
            job = _submit(body, who)
            add(job)
        return _model(job)

    def _submit(body: SubmitRequest, who: Who) -> Job:
        """Plan and start the job (400/403 before anything runs)."""
        s = session()
        pipeline = build(body.pipeline, s, files=False)  # 400 before any task runs
        driver = s.driver
        assert isinstance(driver, Driver)  # the platform's session runs here, never remotely
        if body.write is not None:
            head = s.catalog.head(body.write)
            if head is not None and not head.deleted and not who.admin and head.owner != who.sub:
                raise ForbiddenError(
                    f"dataset {body.write!r} belongs to {head.owner!r}; write to a dataset of "
                    "yours or a new name"
                )
        job = driver.submit(
            pipeline,
            owner=who.sub,
            recorder=s.recorder,
            timeout=body.timeout,
            write=body.write,
            admin=who.admin,
        )
        return job

    @router.get("", response_model=list[JobModel], summary="Your jobs (an admin: all)")
    def list_jobs(who: Who, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[JobModel]:
        return [_model(j) for j in registry.list(who)[:limit]]

    @router.get("/{job_id}", response_model=JobModel, summary="A job's record")
    def get_job(job_id: str, who: Who) -> JobModel:
        return _model(registry.get(job_id, who))

    @router.post("/{job_id}/cancel", response_model=JobModel, summary="Cancel a job")
    def cancel(job_id: str, who: Who) -> JobModel:
        job = registry.get(job_id, who)
        job.cancel()
        job.wait(10)
        return _model(job)

    @router.get(
        "/{job_id}/result",
        summary="A finished job's rows (json, arrow or csv)",
        responses={200: {"content": {"application/json": {}, ARROW_STREAM: {}, "text/csv": {}}}},
    )
    def result(
        job_id: str,
        who: Who,
        format: Literal["json", "arrow", "csv"] = "json",
        limit: Annotated[int, Query(ge=0, le=10_000_000)] = 10_000,
    ) -> Response:
        if format == "json" and limit > JSON_ROWS:
            raise BadInputError(
                f"a JSON result holds at most {JSON_ROWS} rows; ask for format=arrow or csv"
            )
        job = registry.get(job_id, who)
        if job.state not in FINAL:
            raise ConflictError(f"job {job_id} is {job.state}; fetch the result once it ends")
        if job.error is not None:
            err = job.error
            if isinstance(err, PlatformError):
                raise err
            raise ElytraError(f"job {job_id} failed: {err}")
        if job.table is None:
            raise ResultGoneError(f"the result of job {job_id} is no longer kept; run it again")
        table = job.table.slice(0, limit)
        if format == "arrow":
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            return Response(sink.getvalue(), media_type=ARROW_STREAM)
        if format == "csv":
            text = write_csv_bytes(table, instead="ask for json or arrow")
            return Response(text, media_type="text/csv")
        body = {
            "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
            "rows": json_rows(table),
            "total_rows": job.table.num_rows,
            "truncated": job.table.num_rows > limit,
        }
        return Response(json.dumps(body, allow_nan=False), media_type="application/json")

    return router
