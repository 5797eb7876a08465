"""The driver: cuts a pipeline into stages, hands the tasks to a backend, merges the results.

One job per action. Its spill directory is removed when it ends, however it ends; the merge
stage runs here under ``driver_mem_cap``, the tasks on the backend under ``worker_mem_cap``.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from emsqrt import CancelledError, CapTooSmallError, EngineConfig, run
from emsqrt import plan as lp
from emsqrt.planning import SchemaResolver, inner_joins
from platform_core import MemCap, PlatformError, Schema, new_id

from .backends import Backend
from .chunkcache import pin, trim
from .chunkrefs import chunk_ref, pin_or_fetch, repathed, sha_of
from .errors import (
    ExchangeLostError,
    JobCancelledError,
    JobTimeoutError,
    PipelineError,
    ResultTooLargeError,
    TaskFailedError,
)
from .exchange import (
    ExchangeWriter,
    aggregate_task_plan,
    join_key_types,
    join_leaf,
    join_parts,
)
from .explain import render
from .having import above_final, exchange_bytes
from .jobs import Job, JobRecorder
from .joinpush import push_reduced_joins
from .nativequery import NativeQuery
from .nativesql import native_task
from .outfile import write_table
from .planchunks import planner_copies, small_table
from .prerun import first_side, sides_first
from .progress import watch
from .rangesort import RangeRoute, RangeSorts
from .reread import KeyPartition
from .results import StageResults
from .resultstore import ResultStore, ResultWriter, StoredResult
from .semireduce import reduce_group_sides
from .settings import ElytraSettings
from .shuffle import Shuffle
from .sidesize import Broadcastable, plan_read_bytes, side_bytes
from .sources import (
    ArrowSource,
    FileSource,
    LakeSource,
    Part,
    Source,
    balance_parts,
    split_row_groups,
)
from .spilldirs import JobDir, sweep
from .stages import (
    Exchange,
    ExchangeSource,
    Stage,
    StagePlan,
    cut,
    group_exchange,
    input_names,
    one_part,
    replace_equal,
    replace_node,
    rereads,
    source_bytes,
    task_plan,
    whole_query,
    whole_scan,
)
from .task import Task, TaskResult
from .taskfile import read_mapped

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

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
    results_spilled_bytes: int = 0
    """Task results on disk to keep the driver under its cap: written by the driver, or the
    files large results were written to by their tasks, which the merge reads as they are
    (see ``results.py``)."""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    merge_seconds: float = 0.0
    rows_in: int = 0
    """Rows of the job's sources its stages read (those of its sides run first too)."""
    driver_rows_in: int = 0
    """Rows the tasks handed to the driver (held or in files its merge reads), not counting
    the rows they wrote into an exchange's partitions."""
    range_sort: dict[str, Any] = field(default_factory=dict)
    """Each range-partitioned sort's partitions and their rows (``rangesort.py``)."""
    native_tasks: int = 0
    """Tasks whose query DuckDB ran from its own text (``nativesql``), not from the plan."""
    reruns: int = 0
    """Runs again from the sources after an exchange's partitions were lost with a Ray node."""
    exchanged: dict[str, int] = field(
        default_factory=lambda: {"via_driver_bytes": 0, "by_tasks_bytes": 0}
    )
    """Bytes of rows that went into hash exchanges: partitioned by the driver (rows that came
    to it) or by the tasks themselves (on their own machine, never through the driver)."""

    def start_again(self, rerun: bool = True) -> None:
        """Zero every count for a run again from the sources, and count that run as a
        rerun (not a job that runs as stages after its one task ran out of its cap)."""
        fresh = JobStats(self.job_id, reruns=self.reruns + int(rerun))
        for f in fields(self):
            setattr(self, f.name, getattr(fresh, f.name))


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
        sweep(settings.resolved_spill_dir())  # job directories a killed process left

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
        shuffle: bool = False,
        whole: bool | None = None,
    ) -> tuple[StagePlan, list[Task]]:
        """Stages and their tasks; unknown columns and type errors raise before anything runs.
        With ``shuffle``, the tasks of a group-by stage partition big results themselves
        (``shuffle.py``); only where they write is where the next stage's tasks read.
        ``whole``: the job runs as one task (:meth:`whole`; None: decided here)."""
        _ = p.schema
        p = self._copied(p)
        footers = _footers(p)
        srcs = sources if sources is not None else dict(p.sources)
        whole = self.whole(p) if whole is None else whole
        plan = self._stages(p, srcs, footers, whole)
        finals = _final_aggregates(plan) if shuffle else {}
        sides = plan.exchange_sides() if shuffle else {}
        parts_n = self._exchange_parts(plan)
        min_bytes = int(self.settings.exchange_min_bytes)
        # one task in place of the machine's slots (``whole_cap``), DuckDB's own plan of a
        # query's text in it where there is one (``nativesql``)
        task_cap = MemCap(self.whole_cap()) if whole else self.settings.worker_mem_cap
        sql = _native_sql(p, srcs) if whole else ""
        tasks: list[Task] = []
        for i, stage in enumerate(plan.stages):
            small, small_bytes = stage.broadcast_files(), stage.broadcast_bytes()
            over = isinstance(stage.source, ExchangeSource)
            parts = self._stage_parts(stage, footers, whole)
            shuffled: Shuffle | None = None
            if i in sides:  # a large join's side: its tasks write their rows to partitions
                shuffled = _side_shuffle(plan, *sides[i], spill_dir, parts_n)
            elif stage.name in finals and (over or len(parts) > 1):
                keys = finals[stage.name].group_by
                cap = int(self.settings.worker_mem_cap)
                least = exchange_bytes(plan.merge, finals[stage.name], min_bytes)  # HAVING
                how = None if over else group_exchange(stage, parts, least, cap)
                n = 0 if over else self._reread_parts(stage, finals[stage.name], how)
                if n:  # every task reads the whole input, keeps its partition of the keys
                    where = (job_id, i, spill_dir)
                    plan.merge = self._reread(stage, finals[stage.name], n, where, plan.merge)
                    tasks += stage.tasks
                    continue
                if how == "rows":
                    stage.as_rows()
                eager = how is not None
                shuffled = Shuffle.make(
                    spill_dir / f"agg-{stage.name}-tasks",
                    parts_n,
                    keys,
                    [stage.schema.field(k).type for k in keys],
                    least // (parts_n if over else len(parts)),
                    eager=eager,
                )
            stage.shuffle = shuffled
            stage.parts = list(parts)
            exchange = shuffled.to_json() if shuffled is not None else ""
            for j, part in enumerate(parts):
                tasks.append(
                    Task(
                        id=f"{job_id}-s{i}-t{j}",
                        stage=i,
                        plan=task_plan(stage, part),
                        mem_cap=task_cap,
                        spill_dir=str(spill_dir / f"s{i}-t{j}"),
                        files=part.files + small,
                        shared_files=len(small),
                        bytes_in=part.bytes + small_bytes,
                        exchange=exchange,
                        sql=sql,
                    )
                )
            stage.tasks = [t for t in tasks if t.stage == i]
        return plan, tasks

    def _stages(
        self, p: Pipeline, srcs: dict[str, Source], footers: dict[str, str], whole: bool
    ) -> StagePlan:
        """``p`` cut into stages over ``srcs`` (the catalog's, or named by chunk hash), or
        one whole-query stage."""
        if whole and p.native is not None:  # the plan is the fallback of DuckDB's own
            return whole_query(p.node, srcs, native=True)
        node = _rewritten(p.node, srcs, self._weigh(footers))
        if whole:
            return whole_query(node, srcs)
        return cut(node, srcs, self._broadcast_bytes(), lambda f: footers.get(f, f))

    def _stage_parts(self, stage: Stage, footers: dict[str, str], whole: bool) -> list[Part]:
        """The parts of ``stage``'s source, one task each: all of it in one for a whole
        query; none yet for a stage over an exchange (one task per partition, made once its
        sides ran)."""
        if whole:
            return [one_part(stage.source)]
        if isinstance(stage.source, ExchangeSource):
            return []
        return self._parts(stage.source, footers)

    def whole(self, p: Pipeline) -> bool:
        """Whether job ``p`` runs as one task that reads every source whole and runs the
        whole plan (``stages.whole_query``): its sources are files or lake chunks (none held
        in this process) whose columns it reads hold at most ``whole_query_bytes`` together
        (``sidesize.plan_read_bytes``: a codec's bytes are not the rows'), and at most a quarter
        of a task's cap (every operator of the plan shares it: under a 32 MiB cap, one task
        of 66 MB spilled to twice the time of stages, found from outside); none was given
        its own count of parts (``repartition``). Where the backend's nodes are all one
        machine, the bound is a quarter of :meth:`whole_cap`, and ``whole_query_bytes`` only
        when it was set (0 still means never)."""
        limit = self._whole_limit()
        if limit <= 0:
            return False
        names = input_names(p.node)
        if not names or any(not isinstance(p.sources.get(n), Source) for n in names):
            return False
        used = [p.sources[n] for n in names]
        if any(isinstance(s, ArrowSource) or s.partitions for s in used):
            return False
        return self.read_bytes(p) <= limit

    @staticmethod
    def read_bytes(p: Pipeline) -> int:
        """The bytes of its sources' files that job ``p``'s columns take
        (``sidesize.plan_read_bytes``; a lake chunk held here is weighed by its footer)."""
        footers = _footers(p)
        sources = {n: p.sources[n] for n in input_names(p.node)}
        return plan_read_bytes(p.node, sources, lambda f: footers.get(f, f))

    def _whole_limit(self) -> int:
        """The most a job run as one task reads (:meth:`whole`); 0: never."""
        limit = min(int(self.settings.whole_query_bytes), int(self.settings.worker_mem_cap) // 4)
        if limit <= 0:
            return 0
        if self._machine_slots() is not None:  # a bound the user set still holds
            mine = "whole_query_bytes" in self.settings.model_fields_set
            quarter = self.whole_cap() // 4
            limit = min(int(self.settings.whole_query_bytes), quarter) if mine else quarter
        return limit

    def whole_native(self, q: NativeQuery) -> bool:
        """Whether ``q`` runs as one task before it is planned (``nativequery``): as
        :meth:`whole` decides for a pipeline, the columns its text names of each table
        weighed as a plan's projections are."""
        limit = self._whole_limit()
        return limit > 0 and self.native_read_bytes(q) <= limit

    @staticmethod
    def native_read_bytes(q: NativeQuery) -> int:
        """The bytes of its sources' files that the columns ``q``'s text names take, weighed
        as :meth:`read_bytes` weighs a plan's."""
        read = 0
        for src in q.sources.values():
            chain = lp.Project(src.leaf(), tuple((c, c) for c in q.columns[src.name]))
            footers = _footers_of([src])
            read += side_bytes(chain, src, lambda f, at=footers: at.get(f, f))  # type: ignore[misc]
        return read

    def _machine_slots(self) -> int | None:
        """The tasks the backend runs at once when its nodes are all one machine, else None
        (``machine_slots``: several platforms joined on one host; not the local pool's)."""
        slots = getattr(self.backend, "machine_slots", None)
        return slots if isinstance(slots, int) and slots > 0 else None

    def whole_cap(self) -> int:
        """The cap of a job run as one task: a task's, or on one machine one per thread it
        runs DuckDB on there (``machine_slots``: the tasks those cores would run). Stages on
        one machine get no more cores than one task that runs DuckDB on all of them, and pay
        for exchanges and a hash table built in every task: TPC-H q03, q07, q08 and q10 at
        SF 1 on three platforms on one machine took 1.5-2x longer as stages."""
        return int(self.settings.worker_mem_cap) * (self._machine_slots() or 1)

    def _reread_parts(self, stage: Stage, final: lp.Aggregate, how: str | None) -> int:
        """Partitions (one task each, one per worker) of a group-by exchanged by rereading
        (``reread.py``), or 0: not on the inline backend nor past ``reread_workers``
        workers (each task reads the whole input), nor for an input below ``split_bytes``."""
        n = int(self.settings.workers)
        if self.settings.backend == "inline" or not 2 <= n <= self.settings.reread_workers:
            return 0
        if source_bytes(stage.source) < int(self.settings.split_bytes):
            return 0
        if not rereads(final, how):
            return 0
        # a median holds its groups' values until the end: smaller partitions (measured, q6
        # under a 256 MiB task cap: 2 tasks 0.85 s of CPU each, 4 tasks 0.29 s each)
        return 2 * n if how != "rows" else n

    def _reread(
        self,
        stage: Stage,
        final: lp.Aggregate,
        n: int,
        where: tuple[str, int, Path],
        merge: lp.Node,
    ) -> lp.Node:
        """Stage ``i``'s ``n`` tasks, each the whole aggregate over every file of its source
        for one hash partition of the keys; the merge with ``final`` replaced by their rows.
        ``where``: the job's id, the stage's index and the job's spill directory."""
        job_id, i, spill = where
        keys = final.group_by
        assert isinstance(stage.plan, lp.Aggregate)  # the stage's partial aggregate
        chain = SchemaResolver().schema(stage.plan.input)
        types = [chain.field(k).type for k in keys]
        stage.as_whole(final)
        files = tuple(f for part in stage.source.parts(1 << 62) for f in part.files)
        whole = Part(files, source_bytes(stage.source))
        small, small_bytes = stage.broadcast_files(), stage.broadcast_bytes()
        text = task_plan(stage, whole)
        stage.tasks = [
            Task(
                id=f"{job_id}-s{i}-t{j}",
                stage=i,
                plan=text,
                mem_cap=self.settings.worker_mem_cap,
                spill_dir=str(spill / f"s{i}-t{j}"),
                files=files + small,
                shared_files=len(small),
                bytes_in=(whole.bytes + small_bytes) // n,
                partition=KeyPartition.make(keys, types, n, j).to_json(),
            )
            for j in range(n)
        ]
        return replace_node(merge, final, lp.Input(stage.name, Schema.from_arrow(stage.schema)))

    def explain(self, p: Pipeline) -> str:
        job_id = "explain"
        plan, _ = self.plan(p, job_id, Path(tempfile.gettempdir()))
        lines = [f"backend: {self.settings.backend}"]
        sides = plan.exchange_sides()
        for i, stage in enumerate(plan.stages):
            ex = plan.over(i)
            count = f"{len(stage.tasks)} task(s)"
            if ex is not None:
                count = f"one task per partition (round {plan.level(i) + 1})"
            feeds = f", rows into {sides[i][0].name}" if i in sides else ""
            lines.append(
                f"stage {i} ({stage.kind}{feeds}) over {stage.source.describe()}: "
                f"{count} on the {self.settings.backend} backend, "
                f"cap {int(self.settings.worker_mem_cap) >> 20} MiB each"
            )
            for t in stage.tasks[:5]:
                lines.append(f"  task {t.id}: {len(t.files)} file(s), {t.bytes_in} bytes")
            if len(stage.tasks) > 5:
                lines.append(f"  ... {len(stage.tasks) - 5} more")
        for ex in plan.exchanges:
            lines.append(
                f"{ex.name}: {ex.join.how} join of stages {ex.left} and {ex.right} on "
                f"{', '.join(ex.join.left_keys)}: rows hash-partitioned into "
                f"{self._exchange_parts(plan)} parts, joined in the tasks of stage {ex.reader}"
            )
        if self.settings.backend in ("local", "inline", "ray"):
            lines += RangeSorts.find(
                plan, self.settings, Path("."), self._exchange_parts(plan)
            ).describe(plan)
        lines.append("merge (in the driver):")
        lines += render(plan.merge, 1)
        for k, side in enumerate(self.sides_first(p)):
            lines.append(
                f"run first (side {k}), into a file that replaces it as a source before the "
                "stages above are planned (a small one is broadcast):"
            )
            lines += render(side, 1)
        return "\n".join(lines)

    def sides_first(self, p: Pipeline) -> list[lp.Node]:
        """The join sides of ``p`` a job runs first (``prerun.py``), outermost first; none
        for a job run as one task (:meth:`whole`)."""
        if self.whole(p):
            return []
        p = self._copied(p)
        sources, small = dict(p.sources), self._weigh(_footers(p))
        return sides_first(_rewritten(p.node, sources, small), sources, small)

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
        store: ResultStore | None = None,
    ) -> Job:
        """Start ``p`` as a job in the background; plan errors raise here, before it starts.
        With ``write``, its rows become a new version of that dataset (owned by ``owner``);
        with ``store``, they are written there (a stored result), else held as a table."""
        job = self._job(p, owner, recorder)
        # unknown columns, types, a plan no stage can hold: now (the job plans its tasks);
        # a query DuckDB runs whole has no stages to cut (its plan is the task's fallback)
        _ = p.schema
        if p.native is None or not self.whole(p):
            cut(p.node, dict(p.sources), self._broadcast_bytes())
        if write is not None:
            self._check_writable(write)
        return self._launch(job, p, timeout, write, admin, store)

    def _launch(
        self,
        job: Job,
        work: Pipeline | NativeQuery,
        timeout: float | None,
        write: str | None = None,
        admin: bool = False,
        store: ResultStore | None = None,
    ) -> Job:
        """``job`` running ``work`` (:meth:`_run`) on a thread of its own, under ``timeout``
        (the setting's when None)."""
        limit = timeout if timeout is not None else self.settings.job_timeout_seconds
        thread = threading.Thread(
            target=self._run,
            args=(job, work, limit, write, admin, store),
            name=f"elytra-job-{job.id}",
            daemon=True,
        )
        thread.start()
        return job

    def submit_native(
        self,
        q: NativeQuery,
        *,
        owner: str | None = None,
        recorder: JobRecorder | None = None,
        timeout: float | None = None,
        store: ResultStore | None = None,
    ) -> Job:
        """Start ``q`` (``nativequery``) as a job of one task that runs its text on DuckDB,
        with no plan: where DuckDB declines, the job fails with ``NativeDeclinedError`` and
        the caller plans the query (``session.sql``). Its rows go to ``store`` when given."""
        plan = f"the query's own text run by DuckDB: {q.native.text}"
        job = Job(new_id(), owner=owner, plan=plan, recorder=recorder)
        return self._launch(job, q, timeout, store=store)

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
        if job.error is not None:
            raise job.error
        return dict(job.record["result"])

    def _run(
        self,
        job: Job,
        p: Pipeline | NativeQuery,
        timeout: float,
        write: str | None = None,
        admin: bool = False,
        store: ResultStore | None = None,
    ) -> None:
        """The job from start to end; its outcome goes to ``job.finish``, never raised here.
        Its rows go to dataset ``write``, else to ``store`` (a stored result), else to a table
        (``collect``)."""
        job_dir = JobDir(self.settings.resolved_spill_dir(), job.id)
        spill = job_dir.acquire()  # locked while the job runs; a killed run's is swept
        stats = JobStats(job.id)
        timer = threading.Timer(timeout, self._time_out, (job,))
        timer.daemon = True
        timer.start()
        table: pa.Table | None = None
        error: BaseException | None = None
        written: dict[str, Any] | None = None
        writer: ResultWriter | None = None
        run = self._execute_native if isinstance(p, NativeQuery) else self._execute
        try:
            writer = store.writer(job.id, job.owner) if store is not None else None
            if write is not None:
                assert not isinstance(p, NativeQuery)  # a query run unplanned writes none
                # a dataset version; a copy stored for the result route while it fits
                written = self._write(job, p, spill, stats, write, admin, writer)
                if writer is not None and writer.alive:
                    written |= {"stored": True, **_stored(writer.commit(self._merge_schema(p)))}
            elif writer is not None:
                run(job, p, spill, stats, writer.write)  # type: ignore[arg-type]
                written = {"where": "stored", **_stored(writer.commit(self._merge_schema(p)))}
            else:
                table = run(job, p, spill, stats)  # type: ignore[arg-type]
            if written is not None and store is not None and store.holder is not None:
                written["node"] = store.holder  # the platform of the cluster that serves it
        except BaseException as exc:
            error = exc
            if writer is not None:
                writer.abort()  # nothing of a failed or cancelled job's result stays
            if isinstance(exc, TaskFailedError):  # a task failed its last attempt
                job.update(tasks=_tasks(stats, 1))
            if job.timed_out and isinstance(exc, JobCancelledError):
                error = JobTimeoutError(f"job {job.id} ran past its timeout of {timeout:g} s")
            elif isinstance(exc, CapTooSmallError) and "cap" not in exc.details:
                error = _cap_error(exc, "worker_mem_cap")  # raised by a task
        finally:
            timer.cancel()
            job_dir.release()
            self.last = stats
            job.finish(table, error, written)

    def _write(
        self,
        job: Job,
        p: Pipeline,
        spill: Path,
        stats: JobStats,
        name: str,
        admin: bool,
        copy: ResultWriter | None = None,
    ) -> dict[str, Any]:
        """Stream the job's rows into a Parquet file in its directory, then commit that file
        as a version of dataset ``name`` (no size limit but the disk's). ``copy`` also gets
        them while they fit its limit; past it, it is dropped and the write goes on."""
        assert self.ingest is not None
        spill.mkdir(parents=True, exist_ok=True)
        path = spill / f"{name}.parquet"
        out: list[pq.ParquetWriter] = []  # opened with the first batch's own schema

        def put(batch: pa.RecordBatch) -> None:
            if not out:
                out.append(pq.ParquetWriter(path, batch.schema))
            out[0].write_batch(batch)
            if copy is not None and copy.alive:
                try:
                    copy.write(batch)
                except ResultTooLargeError:
                    copy.abort()  # the dataset holds the rows; the route answers 409

        try:
            self._execute(job, p, spill, stats, put)
            if not out:  # no rows: the pipeline's schema
                out.append(pq.ParquetWriter(path, self._merge_schema(p)))
        finally:
            for w in out:
                w.close()
        version = self.ingest(path, name, job.owner, admin)
        return {"where": "dataset", "dataset": name, "version": version, "rows": stats.rows_out}

    @staticmethod
    def _merge_schema(p: Pipeline | NativeQuery) -> pa.Schema:
        """The schema of the job's rows (what an empty result is written with; a query run
        unplanned gives its writer a batch of DuckDB's schema even when it has no rows)."""
        return pa.schema([]) if isinstance(p, NativeQuery) else _arrow_schema(p.schema)

    def _execute_native(
        self,
        job: Job,
        q: NativeQuery,
        spill: Path,
        stats: JobStats,
        on_batch: Callable[[pa.RecordBatch], None] | None = None,
    ) -> pa.Table | None:
        """Run ``q`` as one task of no plan (:meth:`submit_native`, :meth:`_native_task`).
        Its rows (in DuckDB's schema) are returned, or handed to ``on_batch``, at least one
        batch (an empty result's gives its schema)."""
        task = self._native_task(job, q, spill)
        stats.tasks_total += 1
        job.plan_stage(0, 1, job.id)
        stats.rows_in += sum(n for n in (s.rows() for s in q.sources.values()) if n is not None)
        job.update(
            tasks=_tasks(stats, 0, started=False), rows_in=stats.rows_in, backend=self.backend.name
        )
        result = self._ran_alone(job, task, stats)
        t0 = time.perf_counter()
        file = result.stats.get("file")
        pieces = _read_groups(Path(file["path"])) if file is not None else iter(())
        out: list[pa.Table] = []
        for table in itertools.chain([result.table], pieces):
            if job.cancel_event.is_set():  # a cancel (or the timeout) stops a long write
                raise JobCancelledError(f"job {job.id} was cancelled")
            if on_batch is None:
                out.append(table)
                continue
            for batch in table.to_batches() or [pa.RecordBatch.from_pylist([], table.schema)]:
                on_batch(batch)
        stats.merge_seconds = time.perf_counter() - t0
        stats.rows_out = int(result.stats.get("rows_out", result.table.num_rows))
        job.update(
            rows_out=stats.rows_out,
            spilled_bytes=stats.spilled_bytes,
            native_tasks=stats.native_tasks,
            stages={
                "tasks": {"seconds": round(stats.stage_seconds["tasks"], 6)},
                "merge": {"seconds": round(stats.merge_seconds, 6)},
            },
        )
        return pa.concat_tables(out) if on_batch is None else None

    def _native_task(self, job: Job, q: NativeQuery, spill: Path) -> Task:
        """The one task of ``q``: its text over a scan of every file of each table, under
        the cap of a job run whole, placed by its big tables' chunks as any whole task (on
        Ray across platforms the small ones go with it), a large result to a file."""
        remote = bool(getattr(self.backend, "resolves_chunks", False))
        if remote:  # the platform that runs the task finds its chunks
            sources = _chunks_by_name(q.sources)
        else:
            sources = self._localize(q.sources, spill / "chunks", job.cancel_event)
        small = {
            n for n, src in sources.items() if isinstance(src, LakeSource) and small_table(src)
        }
        parts = {n: one_part(src) for n, src in sources.items()}
        own = tuple(f for n, part in parts.items() if n not in small for f in part.files)
        shared = tuple(f for n, part in parts.items() if n in small for f in part.files)
        task = Task(
            id=f"{job.id}-s0-t0",
            stage=0,
            plan="",
            mem_cap=MemCap(self.whole_cap()),
            spill_dir=str(spill / "s0-t0"),
            files=own + shared,
            shared_files=len(shared),
            bytes_in=sum(part.bytes for part in parts.values()),
            sql=native_task(q.native, lambda name: whole_scan(sources[name])),
        )
        if remote:  # this node's own copies pinned, the others' from the chunk cache
            (task,) = self._small_sides([task], q.sources, spill, job.cancel_event)
        if self.settings.backend in ("local", "inline", "ray"):  # the workers share this disk
            budget = int(self.settings.driver_mem_cap) // 2
            task = replace(
                task,
                result_file=str(spill / "task-results" / f"{task.id}.parquet"),
                result_file_bytes=max(budget // 4, 1),
            )
        return task

    def _ran_alone(self, job: Job, task: Task, stats: JobStats) -> TaskResult:
        """``task``, the job's only one, run and counted in the job's record."""
        started = time.perf_counter()
        result: TaskResult | None = None
        try:
            for result in self.backend.run(
                [task], job.cancel_event, lambda: self._started(job, stats)
            ):
                self._count(stats, result)
        finally:
            release = getattr(self.backend, "release", None)
            if release is not None:
                release(job.id)
        if job.cancel_event.is_set() or result is None:
            raise JobCancelledError(f"job {job.id} was cancelled")
        stats.stage_seconds["tasks"] = time.perf_counter() - started
        job.task_done(
            result.task_id,
            0,
            result.seconds + float(result.stats.get("transfer_seconds", 0.0)),
            int(result.stats.get("rows_out", result.table.num_rows)),
            result.stats.get("worker_pid"),
            int(result.stats.get("attempt", 1)),
            node=result.stats.get("node"),
            chunks=[c for f in task.files if (c := sha_of(f))],
            threads=int(result.stats.get("threads", 1)),
        )
        self._started(job, stats)
        return result

    @staticmethod
    def _time_out(job: Job) -> None:
        job.timed_out = True
        job.cancel_event.set()

    def _localize(
        self, sources: Mapping[str, Source], where: Path, cancel: threading.Event
    ) -> dict[str, Source]:
        """The pipeline's sources with every chunk on this node: the ones it lacks are fetched
        from a replica (checked) into the job's directory, which goes when the job ends. In a
        cluster this node's own copies are pinned there too (hard links): the lake may trim
        a copy it no longer needs while the job reads it (found when the peer route, which
        pinned them, was retired: a query right after an upload read a trimmed chunk).
        ``FETCHES`` at once; a cancel (or the job's timeout) ends the wait at once, also while
        a hung replica holds a fetch (found from outside: a SIGSTOPped platform held a job
        queued 20 s past its 5 s timeout, and its cancel)."""
        out: dict[str, Source] = {}
        for name, src in sources.items():
            if isinstance(src, LakeSource) and src.missing() and self.fetch is None:
                raise PipelineError(f"{src.describe()}: chunks are missing on this node")
            if isinstance(src, LakeSource) and self.fetch is not None:  # in a cluster
                where.mkdir(parents=True, exist_ok=True)
                chunks = [(sha, path) for sha, path, _ in src.chunks]
                got = _fetch_all(self.fetch, chunks, src.origin, where, cancel, self._cache())
                src = src.localized(got)
            out[name] = src
        if self.fetch is not None:  # the cache back within its bound, once per job
            trim(self._cache(), int(self.settings.chunk_cache_bytes))
        return out

    def _small_sides(
        self,
        tasks: list[Task],
        sources: Mapping[str, Source],
        spill: Path,
        cancel: threading.Event,
    ) -> list[Task]:
        """On Ray across platforms, ``tasks`` with each broadcast side of a small table
        (``planchunks.small_table``) read from a file in the job's directory (pinned, or
        fetched), which goes with the task as a Ray object (``rayobjects.ship_files``), so
        that placement weighs only the big tables' chunks: no platform held TPC-H's nation,
        region and supplier with lineitem, orders and customer, and all of q05's tasks ran
        on the coordinator's node."""
        small = {
            name: src
            for name, src in sources.items()
            if isinstance(src, LakeSource)
            and small_table(src)
            and (self.fetch is not None or not src.missing())
        }
        if not small or not any(t.shared_files for t in tasks):
            return tasks
        here = self._localize(small, spill / "chunks", cancel)
        paths = {
            chunk_ref(sha): path
            for src in here.values()
            if isinstance(src, LakeSource)
            for sha, path, _ in src.chunks
        }
        out = []
        for task in tasks:
            own = len(task.files) - task.shared_files
            names = {f: paths[f] for f in task.files[own:] if f in paths}
            if not names:
                out.append(task)
                continue
            files = task.files[:own] + tuple(names.get(f, f) for f in task.files[own:])
            out.append(repathed(task, names, files))
        return out

    def _sides_first(
        self, job: Job, p: Pipeline, spill: Path, stats: JobStats, tid: str
    ) -> Pipeline:
        """``p`` with each join side worth running first (``prerun.py``) run, as a job of its
        own, into a Parquet file in ``spill`` that replaces it as a source."""
        small = self._weigh(_footers(p))
        sources = dict(p.sources)
        node = _rewritten(p.node, sources, small)  # the sides it runs first reduced too
        for k in range(MAX_SIDES_FIRST):
            side = first_side(node, sources, small)
            if side is None:
                break
            sub = JobStats(job.id)
            src = self._run_side(job, replace(p, node=side, sources=sources), spill, k, sub, tid)
            node = replace_equal(node, side, src.leaf())  # each copy of it (``prerun``)
            sources[src.name] = src
            _add_stats(stats, sub, f"first{k}")
        return replace(p, node=node, sources=sources)

    def _run_side(
        self, job: Job, side: Pipeline, spill: Path, k: int, stats: JobStats, tid: str = ""
    ) -> Source:
        """Run ``side`` (the ``k``-th side run first) into ``spill/first<k>.parquet``, its
        tasks named apart from the job's and from those of the side it is in (``tid``: their
        prefix, ``<job id>-first1`` for a side within side 1); that file as a source."""
        tid = tid or job.id
        path = spill / f"first{k}.parquet"
        spill.mkdir(parents=True, exist_ok=True)  # made when first written: maybe not yet
        out: list[pq.ParquetWriter] = []  # opened with the first batch's own schema

        def put(batch: pa.RecordBatch) -> None:
            if not out:
                out.append(pq.ParquetWriter(path, batch.schema))
            out[0].write_batch(batch)

        try:
            self._execute(job, side, spill / f"first{k}", stats, put, prefix=f"{tid}-first{k}")
            if not out:  # no rows: the side's schema
                out.append(pq.ParquetWriter(path, _arrow_schema(side.schema)))
        finally:
            for w in out:
                w.close()
        schema = pq.read_schema(path)
        # named by the whole prefix: a side within a side counts its own from 0 too, and the
        # two names must differ (a copy of an outer side's file may stand in an inner one)
        return FileSource(f"{tid}-first{k}", schema, paths=(str(path),), run_first=True)

    def _execute(
        self,
        job: Job,
        p: Pipeline,
        spill: Path,
        stats: JobStats,
        on_batch: Callable[[pa.RecordBatch], None] | None = None,
        prefix: str | None = None,
    ) -> pa.Table | None:
        """Run the job; its rows are returned as a table, or with ``on_batch`` streamed there
        batch by batch as the merge makes them (never held: any size under the driver's cap).
        ``prefix`` names its tasks (the job's id; a side run first has its own). A run that
        lost an exchange's partitions with a Ray node runs again from its sources, up to
        ``EXCHANGE_RERUNS`` times (the partitions were lost before the merge: no row was
        handed on yet), on the nodes still alive. A job run as one task (:meth:`whole`) whose
        task ran out of its cap runs again as stages: its operators shared one task's cap."""
        if self.whole(p):
            try:
                return self._execute_once(job, p, spill / "whole", stats, on_batch, prefix, True)
            except CapTooSmallError as exc:
                if "cap" in exc.details or job.cancel_event.is_set():
                    raise  # the merge's (it only takes the task's rows), or cancelled
                log.info("job %s runs as stages: as one task, %s", job.id, exc)
                stats.start_again(rerun=False)  # no row was handed on: the task failed
                job.update(tasks=_tasks(stats, 0))
        for rerun in range(EXCHANGE_RERUNS + 1):
            try:
                where = spill / f"rerun{rerun}" if rerun else spill
                return self._execute_once(job, p, where, stats, on_batch, prefix, False)
            except ExchangeLostError as exc:
                if rerun == EXCHANGE_RERUNS or job.cancel_event.is_set():
                    raise
                log.warning("job %s runs again: %s", job.id, exc.message)
                stats.start_again()  # the record counts the run again, not the lost one
                job.update(reruns=stats.reruns, tasks=_tasks(stats, 0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _execute_once(
        self,
        job: Job,
        p: Pipeline,
        spill: Path,
        stats: JobStats,
        on_batch: Callable[[pa.RecordBatch], None] | None,
        prefix: str | None,
        whole: bool,
    ) -> pa.Table | None:
        """One run of :meth:`_execute`; ``whole``: as one task (no side is worth a round of
        its own there)."""
        tid = prefix or job.id
        given = set(p.sources)
        p = self._copied(p, job.cancel_event)
        if not whole:
            p = self._sides_first(job, p, spill, stats, tid)
        made = set(p.sources) - given  # the files of sides run first: not the job's sources
        remote = bool(getattr(self.backend, "resolves_chunks", False))  # Ray across platforms
        # with Ray across platforms the platform that runs a task finds its chunks
        if remote:
            sources = _chunks_by_name(p.sources)
        else:
            sources = self._localize(p.sources, spill / "chunks", job.cancel_event)
        # a worker-side exchange writes where the driver's next tasks read: this machine, or
        # on Ray across platforms Ray's object store (``backends.rayobjects``)
        local = self.settings.backend in ("local", "inline", "ray")
        shuffle = local and (not remote or self.settings.ray_exchange == "objects")
        plan, tasks = self.plan(p, tid, spill, sources, shuffle, whole)
        if remote:  # small broadcast sides go with the tasks (``_small_sides``)
            tasks = self._small_sides(tasks, p.sources, spill, job.cancel_event)
            for i, stage in enumerate(plan.stages):
                stage.tasks = [t for t in tasks if t.stage == i]
        stats.tasks_total += len(tasks)  # after those of the sides run first
        for i, stage in enumerate(plan.stages):
            job.plan_stage(i, len(stage.tasks), tid)
        read = [s.source for s in plan.stages] + [
            b.source for s in plan.stages for b in s.broadcast
        ]
        read += [w for s in plan.stages for w in s.wholes]
        stats.rows_in += sum(
            n for n in (src.rows() for src in read if src.name not in made) if n is not None
        )
        # queued until the backend starts it
        job.update(
            tasks=_tasks(stats, 0, started=False), rows_in=stats.rows_in, backend=self.backend.name
        )
        results = StageResults(spill / "results", int(self.settings.driver_mem_cap) // 2)
        if local:  # the workers share this disk: a large task result comes as a file
            # an Arrow IPC file, memory-mapped here, where the merge only concatenates
            mapped = _concatenation(plan.merge) is not None
            tasks = [_to_file(t, spill, results, mapped and bool(t.partition)) for t in tasks]
            for i, stage in enumerate(plan.stages):
                stage.tasks = [t for t in tasks if t.stage == i]
        started = time.perf_counter()
        parts = self._exchange_parts(plan)
        sides = plan.exchange_sides()
        # sorts of big inputs: by range partitioning on the workers (``rangesort.py``)
        # (its steps write range partitions to this machine's disk: not across platforms)
        ranged = (
            RangeSorts.find(plan, self.settings, spill, parts) if shuffle and not remote else None
        )
        # where each stage's results go: an exchange's files, or the merge's inputs
        routes: dict[int, tuple[ExchangeWriter | RangeRoute, int] | str] = {}
        writers: list[ExchangeWriter] = []
        for ex in plan.exchanges:
            ls, rs = plan.stages[ex.left].schema, plan.stages[ex.right].schema
            w = ExchangeWriter(
                (ex.join.left_keys, ex.join.right_keys),
                (ls, rs),
                join_key_types(ex.join, ls, rs),
                spill / ex.name,
                parts,
            )
            writers.append(w)
            routes[ex.left], routes[ex.right] = (w, 0), (w, 1)
        for i, stage in enumerate(plan.stages):
            if i not in sides and not (ranged and i in ranged.stages):
                results.expect(stage.name, stage.schema)
                routes[i] = stage.name
        merge = plan.merge
        finals = _final_aggregates(plan)
        watched = {i: s.name for i, s in enumerate(plan.stages) if s.name in finals}
        grouped: dict[int, ExchangeWriter] = {}

        def grow(index: int, name: str, done: dict[str, Any] | None, now: bool = False) -> None:
            """A group-by whose partial states pass the threshold, or one of whose tasks
            partitioned its states itself (``done``), moves to an exchange: its held states
            now, its later results as they come. ``now``: one whose tasks all partition
            from the start (an eager shuffle)."""
            if watched.get(index) != name:
                return
            if (
                not now
                and done is None
                and results.size(name)
                < exchange_bytes(merge, finals[name], int(self.settings.exchange_min_bytes))
            ):
                return
            del watched[index]
            schema, keys = plan.stages[index].schema, finals[name].group_by
            w = ExchangeWriter(
                (keys,),
                (schema,),
                [schema.field(k).type for k in keys],
                spill / f"agg-{name}",
                parts,
            )
            writers.append(w)
            grouped[index] = w
            for table in results.take(name):
                w.add(0, table)
            if done is not None:
                w.given(0, done)
            routes[index] = (w, 0)

        for i, stage in enumerate(plan.stages):
            if stage.shuffle is not None and stage.shuffle.eager and i in watched:
                grow(i, stage.name, None, now=True)

        try:
            index = len(plan.stages)
            if ranged:  # a round sampling the sort keys, then the tasks write range partitions
                sampling, more = ranged.sample_tasks(plan.stages, tid, index)
                index += len(ranged.ranges)
                routes.update(more)
                self._more_tasks(job, stats, sampling)
                self._round(job, sampling, stats, results, routes)
                tasks, more = ranged.partition_tasks(plan.stages, tasks)
                routes.update(more)
            self._round(job, tasks, stats, results, routes, grow)
            stats.stage_seconds["tasks"] = time.perf_counter() - started
            t0 = time.perf_counter()
            second: list[Task] = []
            if plan.exchanges:  # the stages over exchanges, round after round

                def next_round(more: list[Task]) -> None:
                    if local:
                        more = [_to_file(t, spill, results) for t in more]
                    self._more_tasks(job, stats, more)
                    self._round(job, more, stats, results, routes, grow)

                self._over_exchanges(tid, plan, writers, spill, next_round)
                stats.stage_seconds["exchanges"] = time.perf_counter() - t0
            for stage_index, w in grouped.items():
                w.close()
                name = plan.stages[stage_index].name
                final = finals[name]
                top = above_final(merge, final)  # its HAVING runs in the partitions' tasks
                target = f"{name}-final"
                schema = SchemaResolver().schema(top)
                results.expect(target, schema)
                routes[index] = target
                merge = replace_node(merge, top, lp.Input(target, Schema.from_arrow(schema)))
                raw = plan.stages[stage_index].raw
                second += [
                    self._task(
                        tid, index, part, aggregate_task_plan(w, final, part, raw, top), w, spill
                    )
                    for part in range(parts)
                    if w.rows[0][part]
                ]
                index += 1
            if local:
                second = [_to_file(t, spill, results) for t in second]
            if ranged:  # one task sorting each range partition
                sorting, more = ranged.sort_tasks(
                    tid, index, spill, self.settings.worker_mem_cap, results.group_bytes
                )
                routes.update(more)
                second += sorting
            if second:
                self._more_tasks(job, stats, second)
                self._round(job, second, stats, results, routes)
                stats.stage_seconds["exchange"] = time.perf_counter() - t0
            if ranged:
                merge, empty = ranged.merge(merge)
                for name, table in empty.items():
                    results.expect(name, table.schema)
                stats.range_sort = ranged.balance()
            merge, held = results.merge_inputs(merge)
        finally:
            for w in writers:
                w.close()
                stats.exchanged["via_driver_bytes"] += w.driver_bytes
                stats.exchanged["by_tasks_bytes"] += w.task_bytes
            results.close()
            release = getattr(self.backend, "release", None)
            if release is not None:  # exchange objects the job still holds (Ray's)
                release(tid)
        stats.spilled_bytes += results.spilled_bytes
        stats.results_spilled_bytes = results.spilled_bytes
        inputs: dict[str, pa.Table] = {**plan.driver_inputs, **held}
        t0 = time.perf_counter()
        # the merge runs when the job's tasks are done: the workers' cores are free for it;
        # a few rows held here merge faster in emsqrt's operators than in a DuckDB statement
        small = not _reads_files(merge) and sum(t.num_rows for t in inputs.values()) <= (
            SMALL_MERGE_ROWS
        )
        config = EngineConfig(
            mem_cap_bytes=self.settings.driver_mem_cap,
            spill_dir=str(spill / "merge"),
            kernel="off" if small else "auto",
            kernel_threads=max(1, int(self.settings.workers)),
        )
        self._started(job, stats)  # a job of no tasks starts with its merge

        def emit(batch: pa.RecordBatch) -> None:
            if job.cancel_event.is_set():  # a cancel (or the timeout) stops a long write
                raise JobCancelledError(f"job {job.id} was cancelled")
            assert on_batch is not None
            on_batch(batch)

        pieces = _concatenation(merge)
        if pieces is not None:  # nothing to compute: the tasks' rows are the result
            out, rows = _concatenate(merge, pieces, inputs, emit if on_batch else None)
        else:
            try:
                # the cancel event is checked per batch in every loop of the merge (a spilling
                # aggregate's partition flushes ran minutes past a 45 s timeout when only
                # ``emit`` checked it); a timeout's cancel becomes JobTimeoutError in ``_run``
                merged = run(
                    merge,
                    config,
                    inputs=inputs,
                    on_batch=emit if on_batch else None,
                    cancel=job.cancel_event,
                )
            except CapTooSmallError as exc:
                raise _cap_error(exc, "driver_mem_cap") from None
            except CancelledError:
                raise JobCancelledError(f"job {job.id} was cancelled") from None
            out = merged.table
            rows = out.num_rows if out is not None else merged.manifest.rows_out
            stats.spilled_bytes += int(merged.manifest.spill.get("bytes_written", 0))
        if job.cancel_event.is_set():  # a cancel (or the timeout) that came during the merge
            raise JobCancelledError(f"job {job.id} was cancelled")
        stats.merge_seconds = time.perf_counter() - t0
        stats.rows_out = rows
        job.update(
            rows_out=stats.rows_out,
            spilled_bytes=stats.spilled_bytes,
            native_tasks=stats.native_tasks,
            stages={
                **{k: {"seconds": round(v, 6)} for k, v in stats.stage_seconds.items()},
                "merge": {"seconds": round(stats.merge_seconds, 6)},
                **({"exchanged": dict(stats.exchanged)} if any(stats.exchanged.values()) else {}),
            },
        )
        return out

    def _round(
        self,
        job: Job,
        tasks: list[Task],
        stats: JobStats,
        results: StageResults,
        routes: dict[int, tuple[ExchangeWriter | RangeRoute, int] | str],
        added: Callable[[int, str, dict[str, Any] | None], None] | None = None,
    ) -> None:
        """Run ``tasks``; each result goes where its stage is routed (an exchange's side, or
        a merge input, after which ``added`` may reroute the stage)."""
        if tasks:
            # the record names the chunks each read (besides a side run first, an exchange's)
            chunks = {t.id: [s for f in t.files if (s := sha_of(f))] for t in tasks}
            for result in self.backend.run(
                tasks, job.cancel_event, lambda: self._started(job, stats)
            ):
                index = int(result.task_id.rsplit("-s", 1)[1].split("-t", 1)[0])
                route = routes[index]
                done = result.stats.get("exchange")  # the task partitioned its rows itself
                file = result.stats.get("file")  # a large result, written by the task
                if file is not None and file.get("format") == "arrow":
                    assert isinstance(route, str)  # only a concatenating merge asks for one
                    results.add_mapped(route, read_mapped(Path(file["path"])))
                elif file is not None:
                    if isinstance(route, str):  # the merge reads the task's file itself
                        results.add_file(route, Path(file["path"]), int(file["bytes"]))
                    else:
                        for table in _read_groups(Path(file["path"])):
                            route[0].add(route[1], table)
                if isinstance(route, str):
                    results.add(route, result.table)
                    if done is None:
                        stats.driver_rows_in += int(
                            result.stats.get("rows_out", result.table.num_rows)
                        )
                    if added is not None:
                        added(index, route, done)
                    elif done is not None:  # pragma: no cover - only shuffled stages shuffle
                        raise PipelineError(f"task {result.task_id} partitioned unasked")
                else:
                    if result.table.num_rows:  # rows a task could not partition itself
                        route[0].add(route[1], result.table)
                    if done is not None:
                        route[0].given(route[1], done)
                self._count(stats, result)
                job.task_done(
                    result.task_id,
                    index,
                    result.seconds + float(result.stats.get("transfer_seconds", 0.0)),
                    int(result.stats.get("rows_out", result.table.num_rows)),
                    result.stats.get("worker_pid"),
                    int(result.stats.get("attempt", 1)),
                    node=result.stats.get("node"),
                    chunks=chunks.get(result.task_id) or (),
                    threads=int(result.stats.get("threads", 1)),
                )
                job.update(
                    tasks=_tasks(stats, 0),
                    bytes_in=stats.bytes_in,
                    bytes_out=stats.bytes_out,
                    spilled_bytes=stats.spilled_bytes,
                )
        if job.cancel_event.is_set():
            raise JobCancelledError(f"job {job.id} was cancelled")

    def _over_exchanges(
        self,
        job_id: str,
        plan: StagePlan,
        writers: list[ExchangeWriter],
        spill: Path,
        run_round: Callable[[list[Task]], None],
    ) -> None:
        """The stages over exchanges, a round of tasks per level (a stage runs once both
        sides of its exchange ran): one task per partition that joins the partition's two
        files and runs the stage's chain (and its cut: a partial aggregate, a top-k, or the
        rows of a next exchange's side). ``writers``: the exchanges', in their order."""
        levels = [plan.level(i) for i in range(len(plan.stages))]
        for level in range(1, max(levels, default=0) + 1):
            tasks: list[Task] = []
            for i, stage in enumerate(plan.stages):
                ex = plan.over(i)
                if ex is None or levels[i] != level:
                    continue
                w = writers[plan.exchanges.index(ex)]
                small, small_bytes = stage.broadcast_files(), stage.broadcast_bytes()
                exchange = stage.shuffle.to_json() if stage.shuffle is not None else ""
                for part in join_parts(w, ex.join.how):
                    text = task_plan(stage, join_leaf(w, ex.join, part))
                    task = self._task(job_id, i, part, text, w, spill)
                    tasks.append(
                        replace(
                            task,
                            files=task.files + small,
                            bytes_in=task.bytes_in + small_bytes,
                            exchange=exchange,
                        )
                    )
                stage.tasks = [t for t in tasks if t.stage == i]
            run_round(tasks)

    @staticmethod
    def _more_tasks(job: Job, stats: JobStats, tasks: list[Task]) -> None:
        """A later round's tasks, counted in the job's record by stage."""
        stats.tasks_total += len(tasks)
        for stage_index in sorted({t.stage for t in tasks}):
            ids = [t.id for t in tasks if t.stage == stage_index]
            job.plan_stage(stage_index, len(ids), ids[0].rpartition("-s")[0])

    @staticmethod
    def _started(job: Job, stats: JobStats) -> None:
        """The backend began the job's tasks: it is running (once; later rounds too)."""
        if job.state == "queued":
            job.update(state="running", started=time.time(), tasks=_tasks(stats, 0))

    def _parts(self, source: Source, footers: dict[str, str]) -> list[Part]:
        """The parts of ``source``, one task each: its chunks or files grouped up to
        ``task_bytes``, then, when they are fewer than the workers and hold at least
        ``split_bytes``, cut by Parquet row groups so that every worker gets a task. On the
        local pool, parts that would leave one worker reading much more than another are
        cut again into the same share for each (``balance_parts``); on Ray a part stays
        whole chunks, which place its task where they are."""
        parts = source.parts(int(self.settings.task_bytes))
        workers = 1 if self.settings.backend == "inline" else int(self.settings.workers)

        def locate(f: str) -> str:
            return footers.get(f, f)

        if source.partitions or not source.splittable():
            return parts  # repartition(n) is the user's own count
        if len(parts) >= workers:
            most = self._most_task_bytes()
            if self.settings.backend != "local" or most is None:
                return parts
            return balance_parts(parts, workers, most, locate)
        return split_row_groups(parts, workers, int(self.settings.split_bytes), locate)

    def _most_task_bytes(self) -> int | None:
        """The most a balanced part reads on the local pool: twice ``task_bytes`` (fewer
        tasks, less fixed cost), where a task's cap holds that much; None (parts as grouped)
        under a smaller cap. Measured on G1's q3 under a 64 MiB cap (DuckDB's share 32 MiB):
        a task over 96 MB of Parquet peaked at 113 MiB above its worker's start, and over
        48 MB parts cut into row-group ranges DuckDB ran out in about a third of the tasks
        (the operators then took 106 MiB); whole chunks stayed within the bound each run."""
        task_bytes = int(self.settings.task_bytes)
        if int(self.settings.worker_mem_cap) < 2 * task_bytes:
            return None
        return 2 * task_bytes

    def _broadcast_bytes(self) -> int:
        """The largest side a join broadcasts: the setting, and at most an eighth of a task's
        cap (every task of the other side holds the whole side)."""
        return min(int(self.settings.broadcast_bytes), int(self.settings.worker_mem_cap) // 8)

    def _copied(self, p: Pipeline, cancel: threading.Event | None = None) -> Pipeline:
        """``p`` reading the small chunks a peer keeps from copies here, so that the planner
        can count on them (``planchunks.py``); ``p`` itself outside a cluster."""
        copies = planner_copies(
            p.sources.values(),
            self.fetch,
            self._cache(),
            int(self.settings.chunk_cache_bytes),
            cancel,
        )
        if not copies:
            return p
        sources = {
            name: src.localized(copies) if isinstance(src, LakeSource) else src
            for name, src in p.sources.items()
        }
        return replace(p, sources=sources)

    def _cache(self) -> Path:
        """The platform's chunk cache (``chunkcache.py``)."""
        return self.settings.chunk_cache_dir()

    def _weigh(self, footers: dict[str, str]) -> Broadcastable:
        """What a join broadcasts, chunks named by hash weighed by the files they are here."""
        return Broadcastable(self._broadcast_bytes(), lambda f: footers.get(f, f))

    def _exchange_parts(self, plan: StagePlan | None = None) -> int:
        """Partitions of the plan's hash exchanges: ``exchange_partitions`` when set, else
        twice the workers, or more when an exchange's stages read more than
        ``EXCHANGE_PART_BYTES`` a partition. A partition's task holds its rows from every
        task of the side before (on Ray as objects): at SF 10, q09's 8.9 GB through two
        partitions held 6.7 GB in one Ray worker under a 256 MiB cap."""
        if self.settings.exchange_partitions:
            return self.settings.exchange_partitions
        n = 2 * self.settings.workers
        if plan is None or not plan.exchanges:
            return n
        read = max(
            _size(plan.stages[ex.left].source) + _size(plan.stages[ex.right].source)
            for ex in plan.exchanges
        )
        return max(n, min(MAX_EXCHANGE_PARTS, -(-read // EXCHANGE_PART_BYTES)))

    def _task(
        self, job_id: str, stage: int, part: int, plan: str, w: ExchangeWriter, spill: Path
    ) -> Task:
        """A task over partition ``part`` of an exchange's files."""
        sides = range(len(w.schemas))
        return Task(
            id=f"{job_id}-s{stage}-t{part}",
            stage=stage,
            plan=plan,
            mem_cap=self.settings.worker_mem_cap,
            spill_dir=str(spill / f"s{stage}-t{part}"),
            files=tuple(f for side in sides for f in w.files(side, part)),
            bytes_in=sum(w.bytes[side][part] for side in sides),
        )

    @staticmethod
    def _count(stats: JobStats, result: TaskResult) -> None:
        stats.tasks_done += 1
        stats.bytes_in += int(result.stats.get("bytes_in", 0))
        stats.bytes_out += int(result.stats.get("bytes_out", 0))
        stats.spilled_bytes += int(result.stats.get("spilled_bytes", 0))
        stats.native_tasks += bool(result.stats.get("native"))

    def write_file(self, p: Pipeline, path: str, format: str | None) -> dict[str, Any]:
        return write_table(self.collect(p), path, format)


def _to_file(task: Task, spill: Path, results: StageResults, mapped: bool = False) -> Task:
    """``task`` writing a result past an eighth of the driver's cap to a file in the job's
    directory (``taskfile``), in row groups the merge reads under the cap; ``mapped``: an
    Arrow IPC file the driver memory-maps (the merge only concatenates the rows)."""
    return replace(
        task,
        result_file=str(spill / "task-results" / f"{task.id}.{'arrow' if mapped else 'parquet'}"),
        result_file_bytes=max(results.budget // 4, 1),
        result_group_bytes=results.group_bytes,
        result_format="arrow" if mapped else "parquet",
    )


MAX_SIDES_FIRST = 16
"""Join sides a job runs first at most (``prerun.py``); past that, the rest merge as before."""

EXCHANGE_PART_BYTES = 32 << 20
"""Source bytes (compressed Parquet, from the catalog) an exchange's partition takes at most
when ``exchange_partitions`` is not set: the rows of a partition grow to several times that
in Arrow, and its task holds them (an eighth of the default 256 MiB task cap)."""

MAX_EXCHANGE_PARTS = 1024
"""Partitions of an exchange at most (``exchange_partitions``' own bound)."""

SMALL_MERGE_ROWS = 16384
"""A merge over at most this many held rows runs in emsqrt's operators, not DuckDB: CPU of a
final aggregate measured 1.5 ms against 4.6 ms (100 states), 2.6 against 4.3 ms (5,000),
4.5 against 7.2 ms (25,000): DuckDB's bind and Arrow registration cost more than the rows."""


def _native_sql(p: Pipeline, srcs: dict[str, Source]) -> str:
    """The JSON of ``p``'s query for the task of a job run whole (``nativesql``): its text
    over a scan of every file of each table; empty when ``p`` is not a query's as it is."""
    if p.native is None or any(name not in srcs for _, name in p.native.tables):
        return ""
    return native_task(p.native, lambda name: whole_scan(srcs[name]))


def _reads_files(node: lp.Node) -> bool:
    """Whether the plan reads a file (a spilled or task-written result, a scanned source)."""
    return isinstance(node, lp.Scan) or any(_reads_files(k) for k in lp.children(node))


def _concatenation(merge: lp.Node) -> list[lp.Input | lp.Scan] | None:
    """The inputs of a merge that only concatenates them (the tasks' rows, held or in the
    files they were written to, are the result: a group-by finished on the workers), else
    None (the merge computes: ``emsqrt.run``)."""
    nodes = merge.inputs if isinstance(merge, lp.Union) else (merge,)
    out: list[lp.Input | lp.Scan] = []
    for node in nodes:
        plain = isinstance(node, lp.Scan) and node.format == "parquet"
        if plain and isinstance(node, lp.Scan):
            plain = node.row_groups is None and node.predicate is None and node.columns is None
        if not (plain or isinstance(node, lp.Input)):
            return None
        out.append(node)  # type: ignore[arg-type]
    return out


def _concatenate(
    merge: lp.Node,
    pieces: list[lp.Input | lp.Scan],
    inputs: dict[str, pa.Table],
    on_batch: Callable[[pa.RecordBatch], None] | None,
) -> tuple[pa.Table | None, int]:
    """The merge's rows without running it: held tables as they are, files read by pyarrow
    (with ``on_batch``, a row group at a time, so the driver's memory stays bounded)."""
    schema = SchemaResolver().schema(merge)

    def tables() -> Iterator[pa.Table]:
        for node in pieces:
            if isinstance(node, lp.Input):
                yield inputs[node.name]
            elif on_batch is None:
                yield pq.read_table(node.path)
            else:
                f = pq.ParquetFile(node.path)
                for i in range(f.num_row_groups):
                    yield f.read_row_group(i)

    def conformed(table: pa.Table) -> pa.Table:
        table = table.select(schema.names)
        return table if table.schema == schema else table.cast(schema)

    if on_batch is None:
        out = pa.concat_tables([conformed(t) for t in tables()]) if pieces else schema.empty_table()
        return out, out.num_rows
    rows = 0
    for table in tables():
        for batch in conformed(table).to_batches():
            if batch.num_rows:
                on_batch(batch)
                rows += batch.num_rows
    return None, rows


def _read_groups(path: Path) -> Iterator[pa.Table]:
    """A task's result file, one row group at a time; the file is removed once read."""
    try:
        f = pq.ParquetFile(path)
        for i in range(f.num_row_groups):
            yield f.read_row_group(i)
    finally:
        path.unlink(missing_ok=True)


def _rewritten(node: lp.Node, sources: dict[str, Source], small: Broadcastable) -> lp.Node:
    """``node`` with the left joins a filter makes inner (sqlglot's decorrelated ``IN`` and
    scalar subqueries), each group-by joined on its keys reduced to the keys the join can
    match (``semireduce.py``), then each join of a side that keeps few rows moved down to the
    input its keys come from (``joinpush.py``); all keep the answer, and applied twice change
    nothing. The reduction comes first: it finds its reducer among the joins above the
    group-by, and moved below them the group-by would read every key (5,000 groups for 100)."""
    reduced = reduce_group_sides(inner_joins(node), sources, small)
    return push_reduced_joins(reduced, sources, small)


EXCHANGE_RERUNS = 1
"""Runs again of a job whose exchange partitions were lost with a Ray node (after that, the
job fails as unavailable: submit it again)."""
FETCHES = 4
"""Chunks a driver fetches from replicas at once (each a Flight call to one member)."""


def _fetch_all(
    fetch: Callable[[str, str], bytes],
    chunks: list[tuple[str, str]],
    origin: str,
    where: Path,
    cancel: threading.Event,
    cache: Path | None = None,
) -> dict[str, str]:
    """Each chunk of ``chunks`` (sha, this node's copy or "") in ``where``: this node's copy
    pinned, else fetched (:func:`~elytra.chunkrefs.pin_or_fetch`), ``FETCHES`` at once: sha
    -> its file. With a ``cache``, a fetched chunk is kept there and pinned in ``where``
    (``chunkcache.py``). A set ``cancel`` raises :class:`JobCancelledError` at once; the
    fetches still running end on their own (the job's directory goes with it)."""
    here = dict(chunks)

    def one(sha: str) -> str:
        def get(sha: str) -> bytes:
            return fetch(sha, origin)

        copy = here[sha]
        if copy and not (cache is not None and Path(copy).parent == cache):
            return pin_or_fetch(sha, copy, get, where)  # this node's own (the lake's)
        if cache is None:
            return pin_or_fetch(sha, None, get, where)
        return pin(sha, get, cache, where)  # checked, kept for the next job

    pool = ThreadPoolExecutor(FETCHES, thread_name_prefix="elytra-fetch")
    try:
        futures = {sha: pool.submit(one, sha) for sha in here}
        pending = set(futures.values())
        while pending:
            _, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
            if cancel.is_set():
                raise JobCancelledError("the job was cancelled while it fetched chunks")
            failed = [f for f in futures.values() if f.done() and f.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
        return {sha: f.result() for sha, f in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _add_stats(stats: JobStats, sub: JobStats, name: str) -> None:
    """Count what a side run first (``name``) did in the job's stats."""
    stats.tasks_total += sub.tasks_total
    stats.tasks_done += sub.tasks_done
    stats.bytes_in += sub.bytes_in
    stats.bytes_out += sub.bytes_out
    stats.spilled_bytes += sub.spilled_bytes
    stats.driver_rows_in += sub.driver_rows_in
    stats.rows_in += sub.rows_in
    for key, n in sub.exchanged.items():
        stats.exchanged[key] += n
    for phase, seconds in sub.stage_seconds.items():
        stats.stage_seconds[f"{name} {phase}"] = seconds
    stats.stage_seconds[f"{name} merge"] = sub.merge_seconds


def _size(src: Source) -> int:
    """A stage source's bytes from the catalog (an exchange's: its sources' bytes)."""
    return src.size if isinstance(src, ExchangeSource) else source_bytes(src)


def _footers(p: Pipeline) -> dict[str, str]:
    """Where this node holds each lake chunk a task names by hash (``lake-chunk:``), so that
    a part can be cut by the row groups in its footer (a chunk not here is not cut)."""
    return _footers_of(p.sources.values())


def _footers_of(sources: Iterable[Source]) -> dict[str, str]:
    """:func:`_footers` of these sources."""
    return {
        chunk_ref(sha): path
        for src in sources
        if isinstance(src, LakeSource)
        for sha, path, _ in src.chunks
        if path
    }


def _chunks_by_name(sources: Mapping[str, Source]) -> dict[str, Source]:
    """The sources with each lake chunk named by its hash (``lake-chunk:``)."""
    return {
        name: replace(src, chunks=tuple((sha, chunk_ref(sha), n) for sha, _, n in src.chunks))
        if isinstance(src, LakeSource)
        else src
        for name, src in sources.items()
    }


def _side_shuffle(plan: StagePlan, ex: Exchange, side: int, spill: Path, parts: int) -> Shuffle:
    """How the tasks of side ``side`` (0 left, 1 right) of exchange ``ex`` write their rows
    into its ``parts`` hash partitions themselves."""
    ls, rs = plan.stages[ex.left].schema, plan.stages[ex.right].schema
    return Shuffle.make(
        spill / f"{ex.name}-tasks",
        parts,
        ex.join.right_keys if side else ex.join.left_keys,
        join_key_types(ex.join, ls, rs),
        0,
        eager=True,
    )


def _final_aggregates(plan: StagePlan) -> dict[str, lp.Aggregate]:
    """The merge's final aggregates with group keys over a stage's partial states, by stage."""
    names = {s.name for s in plan.stages}
    found: dict[str, lp.Aggregate] = {}

    def walk(node: lp.Node) -> None:
        if (
            isinstance(node, lp.Aggregate)
            and node.mode == "final"
            and node.group_by
            and isinstance(node.input, lp.Input)
            and node.input.name in names
        ):
            found[node.input.name] = node
        for k in lp.children(node):
            walk(k)

    walk(plan.merge)
    return found


_CAPS = {
    "worker_mem_cap": "each task's cap: connect(worker_mem_cap=...) or ELYTRA_WORKER_MEM_CAP",
    "driver_mem_cap": "the driver's cap, which the merge runs under: connect(driver_mem_cap=...) "
    "or ELYTRA_DRIVER_MEM_CAP",
}


def _cap_error(exc: CapTooSmallError, cap: str) -> CapTooSmallError:
    """emsqrt's error in elytra's terms: which of the job's caps to raise, and how."""
    message = exc.message.replace(" (--mem-cap / EMSQRT_MEM_CAP_BYTES)", "")
    if cap == "driver_mem_cap":  # the files it reads are the job's own: not the user's to write
        message = message.replace(" (or write that file with smaller row groups)", "")
    return CapTooSmallError(f"{message}; in elytra that is {_CAPS[cap]}", **exc.details, cap=cap)


def _stored(kept: StoredResult) -> dict[str, Any]:
    """A stored result in the job's record."""
    return {"rows": kept.num_rows, "bytes": kept.nbytes, "expires": kept.meta["expires"]}


def _arrow_schema(schema: Any) -> pa.Schema:
    """A pipeline's schema (platform or Arrow) as Arrow."""
    return schema if isinstance(schema, pa.Schema) else schema.to_arrow()


def _tasks(stats: JobStats, failed: int, started: bool = True) -> dict[str, int]:
    """The record's task counters; ``running``: handed to the backend, not yet done."""
    running = stats.tasks_total - stats.tasks_done if started else 0
    return {
        "total": stats.tasks_total,
        "done": stats.tasks_done,
        "running": running,
        "failed": failed,
    }
