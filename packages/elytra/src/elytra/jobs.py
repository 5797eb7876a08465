"""Jobs: one run of a pipeline, its handle, and its record in Elkyn at ``/jobs/{id}``.

The record holds the owner, the plan, the state (``queued -> running -> succeeded | failed |
cancelled``), task counts, rows and bytes, spilled bytes, per-stage timings, the error and
where the result is. The driver writes it at task boundaries, at most every
``FLUSH_SECONDS`` (and at once on a state change), never per row. The platform owns the rules
of ``/jobs`` (``JOBS_RULES``): a job is readable by its owner (and the admin), writable by
the platform only, whatever rules a user sets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from platform_core import PlatformError

from .errors import ElytraError

log = logging.getLogger(__name__)

__all__ = [
    "FLUSH_SECONDS",
    "JOBS_RULES",
    "TIMELINE_PER_STAGE",
    "HomeRecorder",
    "Job",
    "JobRecorder",
    "StoreRecorder",
]

FLUSH_SECONDS = 0.25


def _write_logged(recorder: JobRecorder, job_id: str, fields: Mapping[str, Any]) -> None:
    try:
        recorder.write(job_id, fields)
    except Exception as exc:  # a progress write: the next one (or the final) carries it on
        log.warning("job %s: writing its record failed: %s", job_id, exc)


TIMELINE_PER_STAGE = 100
"""Tasks of one stage whose times a record keeps (the first to end); the rest are counted, so
a job of ten thousand tasks keeps its record small."""
TIMELINE_CHUNKS = 16
"""Chunks a task's timeline entry names at most (a broadcast join's task reads its sides' too)."""
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")

JOBS_RULES: Mapping[str, Any] = {
    ".read": False,
    ".write": False,
    "$id": {".read": "auth != null && data.child('owner').val() === auth.uid"},
}
"""The rules the platform reserves for ``/jobs`` (see ``elkyn.Store.reserve``)."""


class JobRecorder(Protocol):
    """Where job records go: ``write(job_id, fields)`` merges ``fields`` into the record."""

    def write(self, job_id: str, fields: Mapping[str, Any]) -> None: ...


class StoreRecorder:
    """Records in Elkyn, as the admin: an ``elkyn.Store``, or the gateway's database writer
    (the service ``elkyn.services.DB_WRITER``, which forwards to the primary on a replica).
    ``driver``: the lake node id of the platform running the jobs' drivers, kept in each
    record (``driver``) so that the cluster can fail the jobs of a platform that died."""

    def __init__(self, store: Any, driver: str | None = None) -> None:
        self.store = store
        self.driver = driver

    def write(self, job_id: str, fields: Mapping[str, Any]) -> None:
        values = dict(fields)
        if self.driver is not None and "created" in values:  # the record's first write
            values["driver"] = self.driver
        self.store.update(f"/jobs/{job_id}", values)  # no caller: the admin


class HomeRecorder:
    """Records of an embedded session's jobs in its home's Elkyn database, where a platform
    started on that home later shows them (``/jobs/{id}``, the playground's Jobs page).

    The database is opened for each write and closed after it, and only while no platform
    serves the home (``platform_core.find_running``): a running platform owns its database,
    and an embedded job beside it is then not recorded (said once in the log).
    """

    def __init__(self, home: Any) -> None:
        from pathlib import Path

        self.home = Path(home)
        self._lock = threading.Lock()
        self._warned = False

    def write(self, job_id: str, fields: Mapping[str, Any]) -> None:
        from elkyn import Store
        from elkyn.settings import elkyn_settings
        from platform_core import PlatformSettings, find_running, load_settings

        with self._lock:
            if find_running(self.home) is not None:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "a platform serves %s: embedded jobs are not recorded there; "
                        "connect to it (elytra.connect(url)) to record them",
                        self.home,
                    )
                return
            try:
                es = elkyn_settings(load_settings(PlatformSettings, home=self.home), dev=False)
                store = Store(es.db_path(), map_size=es.map_size, log_size=es.log_size)
                try:
                    store.update(f"/jobs/{job_id}", dict(fields))  # no caller: the admin
                finally:
                    store.close()
            except Exception as exc:  # a record is a report: a job never fails for it
                if not self._warned:
                    self._warned = True
                    log.warning("could not record job %s in %s: %s", job_id, self.home, exc)


@dataclass
class Job:
    """A submitted pipeline: ``status()``, ``wait()``, ``cancel()``, ``result()``."""

    id: str
    owner: str | None = None
    plan: str = ""
    recorder: JobRecorder | None = None
    state: str = "queued"
    record: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    table: pa.Table | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    timed_out: bool = False
    _done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _flushed: float = 0.0
    _kept: dict[str, int] = field(default_factory=dict)
    _writer: ThreadPoolExecutor | None = None
    """The thread that writes this job's record behind it (a record write is a durable store
    commit, about 9 ms on this machine's disk: a one-chunk job cannot wait for three). One
    thread, so the job's writes land in the order they were made; stopped after the last."""
    _writer_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.record = {
            "id": self.id,
            "owner": self.owner,
            "plan": self.plan,
            "state": self.state,
            "created": time.time(),
            "tasks": {"total": 0, "done": 0, "running": 0, "failed": 0},
            "rows_in": 0,
            "rows_out": 0,
            "bytes_in": 0,
            "bytes_out": 0,
            "spilled_bytes": 0,
            "stages": {},
            "timeline": {"stages": {}, "tasks": {}, "omitted": 0},
        }
        self._flush(force=True, wait=True)  # the job exists once its handle does

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Job:
        """A finished job of an earlier run of the platform, from its record (read only)."""
        job = cls(str(record["id"]), owner=record.get("owner"), plan=str(record.get("plan", "")))
        job.record = dict(record)
        job.state = str(record["state"])
        failed = record.get("error")
        if job.state != "succeeded":
            from . import errors as e

            known: dict[str, type[ElytraError]] = {
                c.kind: c
                for c in (
                    e.PipelineError,
                    e.JobCancelledError,
                    e.JobTimeoutError,
                    e.ResultTooLargeError,
                    e.BackendUnavailableError,
                )
            }
            kind = failed.get("type") if isinstance(failed, dict) else None
            message = failed.get("message") if isinstance(failed, dict) else None
            error = known.get(str(kind), ElytraError)  # the status its kind had
            job.error = error(f"job {job.id} {job.state}: {message or 'no reason kept'}")
        job._done.set()
        return job

    # --- the driver's side ------------------------------------------------------------------

    def update(self, force: bool = False, **fields: Any) -> None:
        """Merge ``fields`` into the record; written out at most every ``FLUSH_SECONDS``, at
        once on a state change. Progress is written behind the job (it does not wait for the
        store's commit); a final state is written before the job is done, after every
        earlier write of its record."""
        with self._lock:
            self.record.update(fields)
            if "state" in fields:
                self.state = fields["state"]
                force = True
        self._flush(force, wait=self.state in FINAL)

    def plan_stage(self, stage: int, tasks: int, prefix: str | None = None) -> None:
        """Stage ``stage`` has ``tasks`` tasks (its counters start at 0 done); ``prefix``: its
        tasks' ids before ``-s<stage>``, when not the job's id (a join side run first,
        ``<id>-first0``: its stages are ``first0-s0``, ...)."""
        with self._lock:
            timeline = self.record["timeline"]
            timeline["stages"] = {
                **timeline["stages"],
                f"{self._label(prefix)}s{stage}": {"total": tasks, "done": 0},
            }

    def _label(self, prefix: str | None) -> str:
        """What names a stage's tasks apart from the job's own: ``first0-`` for a side run
        first (tasks ``<id>-first0-s0-t0``), nothing for the job's (``<id>-s0-t0``)."""
        if prefix and prefix.startswith(f"{self.id}-"):
            return f"{prefix[len(self.id) + 1 :]}-"
        return ""

    def task_done(
        self,
        task_id: str,
        stage: int,
        seconds: float,
        rows: int = 0,
        worker: int | None = None,
        attempt: int = 1,
        *,
        node: str | None = None,
        chunks: Sequence[str] = (),
        threads: int = 1,
    ) -> None:
        """A task of ``stage`` ended now after ``seconds`` (as its worker measured it, plus
        the transfer of its rows): one more done in its stage, and its bar on the timeline
        while the stage holds fewer than ``TIMELINE_PER_STAGE``. Written with the next update.
        """
        end = time.time()
        label = self._label(task_id.rpartition("-s")[0])
        key = f"{label}s{stage}"
        with self._lock:
            timeline = self.record["timeline"]
            counts = timeline["stages"].get(key, {"total": 0, "done": 0})
            timeline["stages"] = {**timeline["stages"], key: {**counts, "done": counts["done"] + 1}}
            if self._kept.get(key, 0) >= TIMELINE_PER_STAGE:
                timeline["omitted"] += 1
                return
            self._kept[key] = self._kept.get(key, 0) + 1
            name = task_id.rsplit("-s", 1)[-1]
            entry: dict[str, Any] = {
                "stage": stage,
                "start": round(end - max(0.0, seconds), 6),
                "end": round(end, 6),
                "rows": rows,
                "attempt": attempt,
            }
            if worker is not None:
                entry["worker"] = worker
            if node:  # the lake node it ran on (a cluster's), and the chunks it read there
                entry["node"] = node
            if chunks:
                entry["chunks"] = list(chunks[:TIMELINE_CHUNKS])
            if threads > 1:  # a task alone, given its node's cores
                entry["threads"] = threads
            timeline["tasks"][f"{label}s{name}"] = entry

    def _flush(self, force: bool = False, wait: bool = False) -> None:
        if self.recorder is None:
            return
        now = time.monotonic()
        with self._lock:
            if not force and now - self._flushed < FLUSH_SECONDS:
                return
            self._flushed = now
            snapshot = dict(self.record)
            timeline = snapshot["timeline"]  # its task map grows in place: write a copy
            snapshot["timeline"] = {**timeline, "tasks": dict(timeline["tasks"])}
        fields = {k: v for k, v in snapshot.items() if v is not None}
        with self._writer_lock:
            if wait:
                if self._writer is not None:  # the job's earlier writes first
                    self._writer.shutdown(wait=True)
                    self._writer = None
                self.recorder.write(self.id, fields)
                return
            if self._writer is None:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="elytra-job-record")
            self._writer.submit(_write_logged, self.recorder, self.id, fields)

    def finish(
        self,
        table: pa.Table | None,
        error: BaseException | None,
        written: dict[str, Any] | None = None,
    ) -> None:
        from .errors import JobCancelledError, JobTimeoutError

        self.table, self.error = table, error
        if error is None:
            state = "succeeded"
        elif isinstance(error, JobCancelledError | JobTimeoutError):
            state = "cancelled"
        else:
            state = "failed"
        fields: dict[str, Any] = {"state": state, "finished": time.time()}
        if state != "succeeded":  # its tasks were stopped with it
            fields["tasks"] = {**self.record.get("tasks", {}), "running": 0}
        if error is not None:
            message = error.message if isinstance(error, PlatformError) else str(error)
            kind = error.kind if isinstance(error, PlatformError) else type(error).__name__
            fields["error"] = {"message": message, "type": kind}
            tb = getattr(error, "remote_traceback", "")
            if tb:
                fields["error"]["traceback"] = tb[-8000:]
        if error is None and written is not None:  # a dataset version, or a stored result
            fields["result"] = dict(written)
        elif error is None and table is not None:
            fields["result"] = {"rows": table.num_rows, "bytes": table.nbytes, "where": "driver"}
        self.update(**fields)
        self._done.set()

    # --- the user's side --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.record)

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the job ends (or ``timeout``); returns its state."""
        self._done.wait(timeout)
        return self.state

    def cancel(self) -> None:
        """Stop the job: running tasks are stopped, nothing it wrote stays behind."""
        self.cancel_event.set()

    def result(self, timeout: float | None = None) -> pa.Table:
        """The job's rows; raises the job's error if it failed or was cancelled. A job whose
        rows went to a dataset or a result store returns no table (read them from there)."""
        if not self._done.wait(timeout):
            raise ElytraError(f"job {self.id} is still {self.state} after {timeout} s")
        if self.error is not None:
            raise self.error
        if self.table is None:
            where = (self.record.get("result") or {}).get("where")
            raise ElytraError(
                f"job {self.id} wrote its rows to {where!r}, not to this process: read them "
                "from there (GET /api/jobs/{id}/result, or the dataset)"
            )
        return self.table


def reconcile(store: Any) -> list[str]:
    """Mark the records of jobs a previous run of the platform left unfinished (it stopped or
    was killed while they ran) as failed, saying so; returns their ids (a result such a job
    committed just before the kill is the caller's to remove). Run at start, before any job
    of this run exists."""
    from elkyn import ADMIN

    jobs = store.get("/jobs", caller=ADMIN) or {}
    updates: dict[str, Any] = {}
    for job_id, record in jobs.items() if isinstance(jobs, dict) else ():
        if isinstance(record, dict) and record.get("state") not in FINAL:
            updates[f"{job_id}/state"] = "failed"
            updates[f"{job_id}/finished"] = time.time()
            updates[f"{job_id}/tasks/running"] = 0
            updates[f"{job_id}/error"] = {
                "message": "the platform stopped while this job ran; submit it again",
                "type": "unavailable",
            }
    if updates:
        store.update("/jobs", updates, caller=ADMIN)
    return sorted({key.split("/", 1)[0] for key in updates})


def fail_orphans(
    store: Any, writer: Any, dead: set[str], only: set[str] | None = None
) -> list[str]:
    """Mark failed the unfinished jobs whose driver ran on a platform of the cluster now
    ``dead`` (its lake node id): nobody will finish them (``only``: of these jobs alone). Read
    from ``store``, written through ``writer`` (the primary's); returns their ids."""
    from elkyn import ADMIN

    return fail_driven(store.get("/jobs", caller=ADMIN) or {}, writer, dead, only)


def fail_driven(jobs: Any, writer: Any, dead: set[str], only: set[str] | None = None) -> list[str]:
    """:func:`fail_orphans` over the records ``jobs`` (job id -> record) already read, from
    a replica's copy or from the primary itself."""
    updates: dict[str, Any] = {}
    for job_id, record in jobs.items() if isinstance(jobs, dict) else ():
        if not isinstance(record, dict) or record.get("state") in FINAL:
            continue
        if only is not None and job_id not in only:
            continue
        driver = record.get("driver")
        if driver in dead:
            updates[f"{job_id}/state"] = "failed"
            updates[f"{job_id}/finished"] = time.time()
            updates[f"{job_id}/tasks/running"] = 0
            updates[f"{job_id}/error"] = {
                "message": f"the platform running this job's driver (node {driver}) died; "
                "submit it again",
                "type": "unavailable",
            }
    if updates:
        writer.update("/jobs", updates)
    return sorted({key.split("/", 1)[0] for key in updates})


def finished(store: Any, keep: int) -> list[dict[str, Any]]:
    """The newest ``keep`` finished job records in ``store`` (oldest first): what an earlier
    run of the platform ran, listed again after a restart."""
    from elkyn import ADMIN

    jobs = store.get("/jobs", caller=ADMIN) or {}
    done = [
        r
        for r in (jobs.values() if isinstance(jobs, dict) else ())
        if isinstance(r, dict) and r.get("state") in FINAL and isinstance(r.get("id"), str)
    ]
    done.sort(key=lambda r: float(r.get("created") or 0))
    return done[-keep:] if keep else []
