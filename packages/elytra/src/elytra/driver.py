"""The driver: cuts a pipeline into stages, hands the tasks to a backend, merges the results.

One job per action. Its spill directory is removed when it ends, however it ends; the merge
stage runs here under ``driver_mem_cap``, the tasks on the backend under ``worker_mem_cap``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from emsqrt import EngineConfig, run
from emsqrt.errors import CapTooSmallError
from platform_core import PlatformError, new_id

from .backends import Backend
from .errors import JobCancelledError, JobTimeoutError, PipelineError
from .explain import render
from .jobs import Job, JobRecorder
from .progress import watch
from .settings import ElytraSettings
from .sources import LakeSource, Source
from .stages import StagePlan, cut, task_plan
from .task import Task, TaskResult

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["Driver", "Ingest", "JobStats", "write_table"]

Ingest = Callable[[Path, str, "str | None", bool], int]
"""``ingest(parquet_path, dataset, owner, admin) -> version``: commit a file as a version."""


@dataclass
class JobStats:
    """What a job did: its tasks, rows and bytes, and how long each stage took."""

    job_id: str
    tasks_total: int = 0
    tasks_done: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    spilled_bytes: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    merge_seconds: float = 0.0


class Driver:
    """Plans and runs the actions of one session's pipelines."""

    def __init__(
        self,
        settings: ElytraSettings,
        backend: Callable[[], Backend],
        *,
        owns: bool = True,
        fetch: Callable[[str, str], bytes] | None = None,
        ingest: Ingest | None = None,
    ) -> None:
        self.settings = settings
        self.fetch = fetch
        self.ingest = ingest
        """``ingest(path, name, owner, admin)``: a Parquet file as a new dataset version."""
        self.owns = owns
        """Whether ``close()`` closes the backend (not one the caller handed in)."""
        self._backend_factory = backend
        self._backend: Backend | None = None
        self._lock = threading.Lock()
        self.last: JobStats | None = None

    @property
    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None:
                self._backend = self._backend_factory()
            return self._backend

    def close(self) -> None:
        with self._lock:
            backend, self._backend = self._backend, None
        if backend is not None and self.owns:
            backend.close()

    # --- planning ---------------------------------------------------------------------------

    def plan(
        self,
        p: Pipeline,
        job_id: str,
        spill_dir: Path,
        sources: dict[str, Source] | None = None,
    ) -> tuple[StagePlan, list[Task]]:
        """Stages and their tasks; unknown columns and type errors raise before anything runs."""
        _ = p.schema
        plan = cut(p.node, sources if sources is not None else dict(p.sources))
        tasks: list[Task] = []
        for i, stage in enumerate(plan.stages):
            for j, part in enumerate(stage.source.parts(int(self.settings.task_bytes))):
                tasks.append(
                    Task(
                        id=f"{job_id}-s{i}-t{j}",
                        stage=i,
                        plan=task_plan(stage, part.files),
                        mem_cap=int(self.settings.worker_mem_cap),
                        spill_dir=str(spill_dir / f"s{i}-t{j}"),
                        files=part.files,
                        bytes_in=part.bytes,
                    )
                )
            stage.tasks = [t for t in tasks if t.stage == i]
        return plan, tasks

    def explain(self, p: Pipeline) -> str:
        job_id = "explain"
        plan, _ = self.plan(p, job_id, Path(tempfile.gettempdir()))
        lines = [f"backend: {self.settings.backend}"]
        for i, stage in enumerate(plan.stages):
            lines.append(
                f"stage {i} ({stage.kind}) over {stage.source.describe()}: "
                f"{len(stage.tasks)} task(s) on the {self.settings.backend} backend, "
                f"cap {int(self.settings.worker_mem_cap) >> 20} MiB each"
            )
            for t in stage.tasks[:5]:
                lines.append(f"  task {t.id}: {len(t.files)} file(s), {t.bytes_in} bytes")
            if len(stage.tasks) > 5:
                lines.append(f"  ... {len(stage.tasks) - 5} more")
        lines.append("merge (in the driver):")
        lines += render(plan.merge, 1)
        return "\n".join(lines)

    # --- running ----------------------------------------------------------------------------

    def collect(self, p: Pipeline) -> pa.Table:
        """Run ``p`` now and return its rows (a job run to the end in this thread)."""
        job = self._job(p, None, None)
        shown = watch(job) if self.settings.progress else None
        self._run(job, p, self.settings.job_timeout_seconds)
        if shown is not None and shown.ident is not None:
            shown.join(5)
        return job.result()

    def submit(
        self,
        p: Pipeline,
        *,
        owner: str | None = None,
        recorder: JobRecorder | None = None,
        timeout: float | None = None,
        write: str | None = None,
        admin: bool = False,
    ) -> Job:
        """Start ``p`` as a job in the background; plan errors raise here, before it starts.
        With ``write``, its rows become a new version of that dataset (owned by ``owner``)."""
        job = self._job(p, owner, recorder)
        self.plan(p, job.id, Path(tempfile.gettempdir()))  # unknown columns, types: now
        if write is not None:
            self._check_writable(write)
        limit = timeout if timeout is not None else self.settings.job_timeout_seconds
        thread = threading.Thread(
            target=self._run,
            args=(job, p, limit, write, admin),
            name=f"elytra-job-{job.id}",
            daemon=True,
        )
        thread.start()
        return job

    def _job(self, p: Pipeline, owner: str | None, recorder: JobRecorder | None) -> Job:
        from .explain import describe

        return Job(new_id(), owner=owner, plan=describe(p.node), recorder=recorder)

    def _check_writable(self, name: str) -> None:
        from lake.names import check_dataset_name

        if self.ingest is None:
            raise PipelineError("this session cannot write datasets (no lake here)")
        try:
            check_dataset_name(name)
        except PlatformError as exc:
            raise PipelineError(f"write: {exc.message}") from None

    def write_dataset(
        self, p: Pipeline, name: str, owner: str | None = None, admin: bool = False
    ) -> dict[str, Any]:
        """Run ``p`` and commit its rows as a new version of dataset ``name`` (atomically:
        the lake's upload protocol; nothing is visible until the version commits)."""
        self._check_writable(name)
        job = self._job(p, owner, None)
        self._run(job, p, self.settings.job_timeout_seconds, name, admin)
        job.result()
        return dict(job.record["result"])

    def _run(
        self,
        job: Job,
        p: Pipeline,
        timeout: float,
        write: str | None = None,
        admin: bool = False,
    ) -> None:
        """The job from start to end; its outcome goes to ``job.finish``, never raised here."""
        spill = self.settings.resolved_spill_dir() / job.id
        stats = JobStats(job.id)
        timer = threading.Timer(timeout, self._time_out, (job,))
        timer.daemon = True
        timer.start()
        table: pa.Table | None = None
        error: BaseException | None = None
        written: dict[str, Any] | None = None
        try:
            table = self._execute(job, p, spill, stats)
            if write is not None:
                written = self._write(table, write, spill, job.owner, admin)
        except BaseException as exc:
            error = exc
            if job.timed_out and isinstance(exc, JobCancelledError):
                error = JobTimeoutError(f"job {job.id} ran past its timeout of {timeout:g} s")
            elif isinstance(exc, CapTooSmallError):
                error = CapTooSmallError(
                    f"{exc.message}; in elytra the caps are ELYTRA_WORKER_MEM_CAP (each task) "
                    "and ELYTRA_DRIVER_MEM_CAP (the merge), or connect(worker_mem_cap=...)"
                )
        finally:
            timer.cancel()
            shutil.rmtree(spill, ignore_errors=True)
            self.last = stats
            job.finish(table, error, written)

    def _write(
        self, table: pa.Table, name: str, spill: Path, owner: str | None, admin: bool
    ) -> dict[str, Any]:
        assert self.ingest is not None
        spill.mkdir(parents=True, exist_ok=True)
        path = spill / f"{name}.parquet"
        pq.write_table(table, path)
        version = self.ingest(path, name, owner, admin)
        return {"dataset": name, "version": version, "rows": table.num_rows}

    @staticmethod
    def _time_out(job: Job) -> None:
        job.timed_out = True
        job.cancel_event.set()

    def _localize(self, p: Pipeline, where: Path) -> dict[str, Source]:
        """The pipeline's sources with every chunk on this node: the ones it lacks are fetched
        from a replica (checked) into the job's directory, which goes when the job ends."""
        out: dict[str, Source] = {}
        for name, src in p.sources.items():
            if isinstance(src, LakeSource) and src.missing():
                if self.fetch is None:
                    raise PipelineError(f"{src.describe()}: chunks are missing on this node")
                where.mkdir(parents=True, exist_ok=True)
                paths = {}
                for sha in src.missing():
                    target = where / f"{sha}.parquet"
                    if not target.exists():
                        tmp = target.with_suffix(".tmp")
                        tmp.write_bytes(self.fetch(sha, src.origin))
                        os.replace(tmp, target)
                    paths[sha] = str(target)
                src = src.localized(paths)
            out[name] = src
        return out

    def _execute(self, job: Job, p: Pipeline, spill: Path, stats: JobStats) -> pa.Table:
        sources = self._localize(p, spill / "chunks")
        plan, tasks = self.plan(p, job.id, spill, sources)
        stats.tasks_total = len(tasks)
        job.update(state="running", started=time.time(), tasks=_tasks(stats, 0))
        by_stage: dict[int, list[pa.Table]] = defaultdict(list)
        started = time.perf_counter()
        if tasks:
            for result in self.backend.run(tasks, job.cancel_event):
                index = int(result.task_id.rsplit("-s", 1)[1].split("-t", 1)[0])
                by_stage[index].append(result.table)
                self._count(stats, result)
                job.update(
                    tasks=_tasks(stats, 0),
                    bytes_in=stats.bytes_in,
                    bytes_out=stats.bytes_out,
                    spilled_bytes=stats.spilled_bytes,
                )
        if job.cancel_event.is_set():
            raise JobCancelledError(f"job {job.id} was cancelled")
        stats.stage_seconds["tasks"] = time.perf_counter() - started
        inputs: dict[str, pa.Table] = dict(plan.driver_inputs)
        for i, stage in enumerate(plan.stages):
            inputs[stage.name] = _concat(by_stage.get(i, []), stage.schema)
        t0 = time.perf_counter()
        config = EngineConfig(
            mem_cap_bytes=int(self.settings.driver_mem_cap), spill_dir=str(spill / "merge")
        )
        merged = run(plan.merge, config, inputs=inputs)
        out = merged.table
        stats.merge_seconds = time.perf_counter() - t0
        stats.spilled_bytes += int(merged.manifest.spill.get("bytes_written", 0))
        assert out is not None
        stats.rows_out = out.num_rows
        job.update(
            rows_out=out.num_rows,
            spilled_bytes=stats.spilled_bytes,
            stages={
                "tasks": {"seconds": round(stats.stage_seconds["tasks"], 6)},
                "merge": {"seconds": round(stats.merge_seconds, 6)},
            },
        )
        return out

    @staticmethod
    def _count(stats: JobStats, result: TaskResult) -> None:
        stats.tasks_done += 1
        stats.bytes_in += int(result.stats.get("bytes_in", 0))
        stats.bytes_out += int(result.stats.get("bytes_out", 0))
        stats.spilled_bytes += int(result.stats.get("spilled_bytes", 0))

    def write_file(self, p: Pipeline, path: str, format: str | None) -> dict[str, Any]:
        return write_table(self.collect(p), path, format)


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not tables:
        return schema.empty_table()
    out = pa.concat_tables(tables, promote_options="permissive")
    return out if out.schema.equals(schema) else out.cast(schema)


def _tasks(stats: JobStats, failed: int) -> dict[str, int]:
    running = stats.tasks_total - stats.tasks_done
    return {
        "total": stats.tasks_total,
        "done": stats.tasks_done,
        "running": running,
        "failed": failed,
    }


def write_table(table: pa.Table, path: str, format: str | None) -> dict[str, Any]:
    """Write ``table`` to a Parquet or CSV file atomically (a temporary file, then rename)."""
    fmt = (format or Path(path).suffix.lstrip(".") or "parquet").lower()
    if fmt not in ("parquet", "csv"):
        raise PipelineError(f"write: format is parquet or csv, not {fmt!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            pcsv.write_csv(table, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(target), "format": fmt, "rows": table.num_rows}
