"""The gateway router at ``/api/jobs``: submit a pipeline (its JSON form), list, get, cancel,
fetch the result in pages (JSON, Arrow IPC stream or CSV) and delete it.

Roles: any user submits and lists their own jobs; a job's owner or an admin reads, cancels,
fetches and deletes its result; an admin lists everyone's. Bounds: the body (the gateway's
limit), steps and nesting (``spec``), running jobs per user, a stored result's size and each
user's quota (``resultstore``; then 413), its age (then 410), rows of a JSON page. A job this
gateway no longer holds (it restarted) is read from its record in Elkyn, and its result from
disk (``resultstore``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from platform_core import (
    BadInputError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PlatformError,
    UnauthorizedError,
)
from platform_core.auth import Claims

from .driver import Driver
from .errors import ElytraError, ResultGoneError, TooManyJobsError
from .jobs import FINAL, Job
from .resultpages import arrow_stream, check_csv, csv_stream, json_page
from .resultproxy import FORWARDED
from .resultstore import ResultStore, StoredResult
from .session import Session
from .spec import PipelineSpec, build
from .validate import make_validate_router

__all__ = ["JobRegistry", "make_router"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
JSON_ROWS = 100_000
"""Rows a JSON page may hold (Python objects per row); Arrow and CSV stream any number."""
JSON_PAGE = 10_000
"""Rows of a JSON page when the caller names no ``limit``."""
_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # platform_core.new_id's form


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
    backend: str | None = Field(
        None, description="What ran its tasks: local, ray, inline, browser."
    )
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
    reruns: int = Field(
        0, description="Runs again from the sources after a Ray node died with an exchange."
    )
    timeline: dict[str, Any] = Field(default_factory=dict)


class JobRegistry:
    """Jobs of this gateway, newest last; finished ones beyond ``keep`` are forgotten here
    (their records stay in Elkyn, their results on disk: ``records`` reads them back)."""

    def __init__(
        self,
        keep: int = 1000,
        per_user: int = 4,
        records: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self.keep = keep
        self.per_user = per_user
        self.records = records
        """``records(job_id)``: a job's record in Elkyn (a job of an earlier run), or None."""
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

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Hold the finished jobs of an earlier run again (``records`` oldest first), before
        the jobs of this run: they are listed, read and their results fetched as before."""
        with self._lock:
            past = OrderedDict((str(r["id"]), Job.from_record(r)) for r in records[-self.keep :])
            past.update(self.jobs)
            self.jobs = past

    def get(self, job_id: str, who: Claims) -> Job:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None and self.records is not None and _ID.fullmatch(job_id):
            record = self.records(job_id)
            if isinstance(record, dict) and record.get("state") in FINAL:
                job = Job.from_record(record)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} on this platform")
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


Forwarder = Callable[[str, Request], "Response | None"]
"""``forward(node, request)``: the answer of platform ``node`` of the cluster to ``request``
(``resultproxy``), or None when ``node`` is this platform."""


def make_router(
    session: Callable[[], Session],
    registry: JobRegistry,
    results: Callable[[], ResultStore],
    forward: Forwarder | None = None,
) -> APIRouter:
    """The routes; ``session()`` gives the platform's elytra session (it may be starting),
    ``results()`` the store of finished jobs' results, ``forward`` reaches the platform of
    the cluster that holds one (none: results are all here)."""
    router = APIRouter(tags=["jobs"])
    router.include_router(make_validate_router(session))  # POST /validate (validate.py)
    _add_job_routes(router, session, registry, results)
    _add_result_routes(router, registry, results, forward)
    return router


def _add_job_routes(
    router: APIRouter,
    session: Callable[[], Session],
    registry: JobRegistry,
    results: Callable[[], ResultStore],
) -> None:
    """Submit, list, read and cancel jobs."""

    @router.post("", status_code=202, response_model=JobModel, summary="Submit a pipeline")
    def submit(body: SubmitRequest, who: Who) -> JobModel:
        with registry.admitting(who.sub) as add:
            job = _start_job(body, who, session(), results)
            add(job)
        return _model(job)

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


def _start_job(
    body: SubmitRequest, who: Claims, s: Session, results: Callable[[], ResultStore]
) -> Job:
    """Plan and start the job (400/403 before anything runs)."""
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
        store=results(),
    )
    return job


def _add_result_routes(
    router: APIRouter,
    registry: JobRegistry,
    results: Callable[[], ResultStore],
    forward: Forwarder | None,
) -> None:
    """Fetch a finished job's rows in pages, and delete them."""

    @router.get(
        "/{job_id}/result",
        summary="A finished job's rows, in pages (json, or streamed arrow or csv)",
        responses={200: {"content": {"application/json": {}, ARROW_STREAM: {}, "text/csv": {}}}},
    )
    def result(
        job_id: str,
        who: Who,
        request: Request,
        format: Literal["json", "arrow", "csv"] = "json",
        offset: Annotated[int, Query(ge=0, description="The first row to send.")] = 0,
        limit: Annotated[
            int | None,
            Query(
                ge=0,
                description=f"Rows at most (json: default 10000, at most {JSON_ROWS}; "
                "arrow and csv: default all).",
            ),
        ] = None,
    ) -> Response:
        _check_page(format, limit)
        job = _finished(registry, job_id, who)
        if (answer := _elsewhere(job, request, forward)) is not None:
            return answer
        return _result_page(results().open(job_id), format, offset, limit)

    @router.delete(
        "/{job_id}/result", status_code=204, summary="Delete a finished job's stored result"
    )
    def delete_result(job_id: str, who: Who, request: Request) -> Response:
        job = registry.get(job_id, who)
        if job.state not in FINAL:
            raise ConflictError(f"job {job_id} is {job.state}; cancel it, or delete once it ends")
        if (answer := _elsewhere(job, request, forward)) is not None:
            return answer
        if not results().delete(job_id):
            raise ResultGoneError(f"job {job_id} has no stored result (deleted, or it expired)")
        return Response(status_code=204)


def _check_page(format: str, limit: int | None) -> None:
    """A JSON page holds 1 to ``JSON_ROWS`` rows (BadInputError otherwise)."""
    if format == "json" and limit == 0:
        raise BadInputError("a JSON page holds at least one row: give limit >= 1")
    if format == "json" and limit is not None and limit > JSON_ROWS:
        raise BadInputError(
            f"a JSON page holds at most {JSON_ROWS} rows; page with offset, or ask for "
            "format=arrow or csv (streamed)"
        )


def _finished(registry: JobRegistry, job_id: str, who: Claims) -> Job:
    """The job (owner or admin) if it stored a result, or the error saying why not."""
    job = registry.get(job_id, who)
    if job.state not in FINAL:
        raise ConflictError(f"job {job_id} is {job.state}; fetch the result once it ends")
    if job.error is not None:
        err = job.error
        if isinstance(err, PlatformError):
            raise err
        raise ElytraError(f"job {job_id} failed: {err}")
    done = job.record.get("result") or {}
    if done.get("where") == "dataset" and not done.get("stored"):
        raise ConflictError(
            f"job {job_id} wrote its rows to dataset {done.get('dataset')!r} (version "
            f"{done.get('version')}), too many to keep a copy here too; read them from "
            "the dataset (/api/lake)"
        )
    return job


def _elsewhere(job: Job, request: Request, forward: Forwarder | None) -> Response | None:
    """The holder's answer when another platform of the cluster holds the result."""
    node = (job.record.get("result") or {}).get("node")
    if forward is None or not node or request.headers.get(FORWARDED):
        return None
    return forward(str(node), request)


def _result_page(stored: StoredResult, format: str, offset: int, limit: int | None) -> Response:
    """Rows ``offset`` on of a stored result: a JSON page, or an Arrow or CSV stream."""
    headers = {"x-total-rows": str(stored.num_rows)}
    if format == "json":
        body = json_page(stored, offset, JSON_PAGE if limit is None else limit)
        return Response(body, media_type="application/json", headers=headers)
    if format == "csv":
        check_csv(stored)
        return StreamingResponse(
            csv_stream(stored, offset, limit), media_type="text/csv", headers=headers
        )
    return StreamingResponse(
        arrow_stream(stored, offset, limit), media_type=ARROW_STREAM, headers=headers
    )
