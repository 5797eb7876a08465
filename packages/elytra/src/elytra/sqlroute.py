"""The platform's SQL route on Elytra's engine: a :class:`lake.interfaces.SQLExecutor`.

The ``elytra`` plugin hands one to the lake node while it runs, so ``POST /api/lake/query``
plans a SELECT with ``session.sql`` into stages and runs them on the platform's own pool (on
Ray across the cluster's platforms, when started with ``--ray``) under the platform's caps, as a job of the caller. What
``session.sql`` does not plan, or a run that fails, is declined: the lake's own planner then
answers, as on a bare ``lake node``. The lake imports none of this.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from lake.errors import TIMEOUT_ADVICE, QueryTimeoutError, TooLargeError
from lake.interfaces import SQLDeclined, SQLRun
from platform_core import BadInputError, OverBudgetError, format_size

from .errors import (
    JobCancelledError,
    JobTimeoutError,
    NativeDeclinedError,
    ResultTooLargeError,
    SQLRunFailedError,
)
from .sqlanswers import StoredAnswer
from .sqlexplain import TaskRecord, analyze_json, explain_table, plan_json

if TYPE_CHECKING:
    from lake.node import LakeNode

    from .backends import Backend
    from .jobs import Job
    from .pipeline import Pipeline
    from .resultstore import ResultStore
    from .session import Session
    from .settings import ElytraSettings
    from .task import Task, TaskResult

__all__ = ["PlatformSQL", "RecordingBackend"]

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
"""How often a running query looks at its cancel flag."""


class RecordingBackend:
    """A backend that runs tasks on another one and notes what each did (for ANALYZE)."""

    def __init__(self, inner: Backend, node: str) -> None:
        self.inner = inner
        self.node = node
        self.records: list[TaskRecord] = []

    def __getattr__(self, name: str) -> Any:  # name, resolves_chunks, stats: the inner one's
        return getattr(self.inner, name)

    def run(
        self,
        tasks: Sequence[Task],
        cancel: threading.Event,
        started: Callable[[], None] | None = None,
    ) -> Iterator[TaskResult]:
        for result in self.inner.run(tasks, cancel, started):
            self.records.append(self._record(result))
            yield result

    def _record(self, result: TaskResult) -> TaskRecord:
        st = result.stats
        stage = int(result.task_id.rsplit("-s", 1)[1].split("-t", 1)[0])
        pid = st.get("worker_pid")
        return TaskRecord(
            task_id=result.task_id,
            stage=stage,
            seconds=float(result.seconds) + float(st.get("transfer_seconds", 0.0)),
            rows_out=int(st.get("rows_out", result.table.num_rows)),
            bytes_in=int(st.get("bytes_in", 0)),
            bytes_out=int(st.get("bytes_out", result.table.nbytes)),
            partitioned="exchange" in st,
            worker=int(pid) if isinstance(pid, int) else None,
            node=str(st.get("node") or self.node),
            attempt=int(st.get("attempt", 1)),
            threads=int(st.get("threads", 1)),
        )

    def close(self) -> None:
        """The platform's pool outlives the query: nothing to close."""


class PlatformSQL:
    """Runs the query route's statements with ``session.sql`` on the platform's pool.

    ``backend`` gives the platform's backend (its pool, Ray's when attached), ``settings`` its
    caps; each query gets a session of its own over them, so what its
    tasks did is its own to report."""

    name = "elytra"

    def __init__(
        self,
        node: LakeNode,
        settings: ElytraSettings,
        backend: Callable[[], Backend],
        answers: ResultStore | None = None,
    ) -> None:
        self.node = node
        self.settings = settings
        self.backend = backend
        self.answers = answers
        """Where a SELECT's rows go to be streamed from (:mod:`.sqlanswers`); None: held in
        memory (under the driver's cap) as a table."""

    def _clustered(self) -> bool:
        coordinator = self.node.engine.coordinator
        return coordinator is not None and coordinator.has_peers()

    def _session(self) -> tuple[Session, RecordingBackend]:
        from .session import Session

        node = self.node
        recording = RecordingBackend(self.backend(), node.node_id)
        session = Session(
            self.settings,
            recording,  # a Backend by its methods
            catalog=node.catalog,
            fetch=node.cluster.read_chunk if node.cluster is not None else None,
        )
        return session, recording

    def run_sql(
        self,
        sql: str,
        *,
        mode: Literal["run", "explain", "analyze"],
        user: str,
        timeout: float,
        query_id: str,
        cancelled: threading.Event,
    ) -> SQLRun:
        """Plan ``sql`` into stages and run them (or, for ``explain``, only plan them)."""
        if self.settings.sql_route == "cluster" and not self._clustered():
            raise SQLDeclined(
                "ELYTRA_SQL_ROUTE=cluster and this lake node has no live peers: its own "
                "planner runs the query in one DuckDB"
            )
        session, recording = self._session()
        try:
            if mode == "run":  # a decline is planned under the same timeout, which the
                # caller's error names as given (CI: a 0.1 s timeout named as 0.093 s)
                ran = self._run_native(session, sql, user, timeout, query_id, cancelled)
                if ran is not None:
                    return ran
            p = self._plan(session, sql)
            reads = self._reads(p.sources.values())
            plan = self._explained(session, p) if mode != "run" else None
            if mode == "explain":
                assert plan is not None
                return SQLRun(explain_table(plan, None), plan, reads)
            # a SELECT's rows go to a file it is streamed from; ANALYZE's stay here
            store = self.answers if plan is None else None
            job = self._finished(session, p, user, timeout, query_id, cancelled, store)
            if store is not None:
                return SQLRun(None, reads=reads, answer=StoredAnswer(store, job.id))
            table = job.result()
            if plan is None:
                return SQLRun(table, reads=reads)
            done = analyze_json(plan, recording.records, job.status(), table)
            return SQLRun(explain_table(done, recording.records), done, reads)
        finally:
            session.close()

    @staticmethod
    def _plan(session: Session, sql: str) -> Pipeline:
        """The query as a pipeline, its columns and types checked; declined if not planned."""
        try:
            p = session.sql(sql)
            _ = p.schema
        except Exception as exc:  # whatever stops planning, the lake answers
            raise SQLDeclined(f"{type(exc).__name__}: {_message(exc)}") from None
        return p

    def _run_native(
        self,
        session: Session,
        sql: str,
        user: str,
        timeout: float,
        query_id: str,
        cancelled: threading.Event,
    ) -> SQLRun | None:
        """The query run as DuckDB's own text before it is planned (``nativequery``), or None
        when it is to be planned: it does not qualify, is not small enough to run as one
        task, or DuckDB declined it in its task."""
        from .driver import Driver

        driver = session.driver
        assert isinstance(driver, Driver), "the route's sessions drive their own jobs"
        q = session.native_sql(sql)
        if q is None or not driver.whole_native(q):
            return None
        reads = self._reads(q.sources.values())
        job = driver.submit_native(
            q, owner=user, recorder=session.recorder, timeout=timeout, store=self.answers
        )
        gather = _Gather(
            lambda: driver.native_read_bytes(q), int(self.settings.driver_mem_cap) // 4
        )
        try:
            self._waited(job, timeout, query_id, cancelled, gather)
        except SQLDeclined:
            if isinstance(job.error, NativeDeclinedError):
                log.info("query %s is planned: %s", query_id, job.error.message)
                return None
            raise
        if self.answers is not None:
            return SQLRun(None, reads=reads, answer=StoredAnswer(self.answers, job.id))
        return SQLRun(job.result(), reads=reads)

    def _reads(self, sources: Iterable[object]) -> list[dict[str, Any]]:
        """The chunks of the dataset versions the query reads, as the lake's route lists them
        (``node``: this node when it holds the chunk, else ``replica``: the cluster fetches it)."""
        from .sources import LakeSource

        out: list[dict[str, Any]] = []
        seen: set[tuple[str, int]] = set()
        for src in sources:
            if not isinstance(src, LakeSource) or (src.dataset, src.version) in seen:
                continue
            seen.add((src.dataset, src.version))
            manifest = self.node.catalog.get(src.dataset, src.version)
            chunks = self.node.catalog.chunks
            out += [
                {
                    "node": self.node.node_id if chunks.has(c.sha256) else "replica",
                    "dataset": src.dataset,
                    "chunk": c.sha256,
                    "bytes": c.bytes,
                    "rows": c.rows,
                }
                for c in manifest.chunks
            ]
        return out

    def _explained(self, session: Session, p: Pipeline) -> dict[str, Any]:
        parts = self.settings.exchange_partitions or 2 * self.settings.workers
        why = f"session.sql planned it into stages (ELYTRA_SQL_ROUTE={self.settings.sql_route})"
        try:
            plan = plan_json(session.driver, p, self.settings.backend, parts)  # type: ignore[arg-type]
            return {"engine": plan.pop("engine"), "why": why, **plan}
        except Exception as exc:  # a plan no stage can hold: the lake's turn
            raise SQLDeclined(f"{type(exc).__name__}: {_message(exc)}") from None

    def _finished(
        self,
        session: Session,
        p: Pipeline,
        user: str,
        timeout: float,
        query_id: str,
        cancelled: threading.Event,
        store: ResultStore | None = None,
    ) -> Job:
        """The query's job (its rows into ``store`` when given), run to its end
        (:meth:`_waited`); refused before it ran, it declines."""
        from .driver import Driver

        driver = session.driver
        assert isinstance(driver, Driver), "the route's sessions drive their own jobs"
        try:
            job = driver.submit(
                p, owner=user, recorder=session.recorder, timeout=timeout, store=store
            )
        except Exception as exc:  # refused before it ran: the lake's turn
            raise SQLDeclined(f"{type(exc).__name__}: {_message(exc)}") from None
        gather = _Gather(lambda: driver.read_bytes(p), int(self.settings.driver_mem_cap) // 4)
        return self._waited(job, timeout, query_id, cancelled, gather)

    @staticmethod
    def _waited(
        job: Job,
        timeout: float,
        query_id: str,
        cancelled: threading.Event,
        gather: _Gather | None = None,
    ) -> Job:
        """``job`` run to its end: a cancel or the timeout is the lake's timeout error, an
        answer past its limit the lake's 413, and any other failure declines (the lake
        reruns the query and answers as it would), unless ``gather`` says the lake's planner
        would pull too much into this process: then it is :class:`SQLRunFailedError`."""
        started = time.perf_counter()
        while not job.done():
            if cancelled.is_set():
                job.cancel()
            job.wait(POLL_SECONDS)
        try:
            if job.error is not None:
                raise job.error
        except JobCancelledError:
            raise QueryTimeoutError(f"query {query_id} was cancelled", query_id=query_id) from None
        except JobTimeoutError:
            raise QueryTimeoutError(
                f"query {query_id} ran past its timeout of {timeout:g} s{TIMEOUT_ADVICE}",
                query_id=query_id,
            ) from None
        except ResultTooLargeError as exc:  # the lake's stream has the same bound
            raise TooLargeError(f"query {query_id}: {exc.message}") from None
        except Exception as exc:  # the lake reruns it and answers as it would
            log.warning(
                "elytra could not run query %s (%.2f s): %s",
                query_id,
                time.perf_counter() - started,
                exc,
            )
            failed = f"{type(exc).__name__}: {_message(exc)}"
            if gather is None or isinstance(exc, NativeDeclinedError):  # not a failure:
                raise SQLDeclined(f"the run failed: {failed}") from None  # it is to be planned
            gather.failed(query_id, exc)
            raise SQLDeclined(f"the run failed: {failed}", bound=gather) from None
        return job


class _Gather:
    """What the lake's planner may gather when it reruns a query whose run failed: it
    gathers the rows the query's fragments send into the coordinator's one process, so at
    most ``limit`` bytes of them (a quarter of the driver's cap; SF 10's q09 rerun there
    would pull gigabytes into the coordinator and its peers). The columns' file bytes are
    weighed before the rerun starts (:meth:`failed`); the rerun's rows are counted as they
    arrive (the lake's ``GatherBound``): a column of one long string repeated takes next to
    nothing in its file and all of its length in memory."""

    def __init__(self, reads: Callable[[], int], limit: int) -> None:
        self.reads = reads
        self.limit = limit
        self.query_id = ""
        self.why = ""
        self.advice = ""

    def failed(self, query_id: str, exc: Exception) -> None:
        """Note the run's failure ``exc``; raise :class:`SQLRunFailedError` when the query's
        columns take more than ``limit`` in their files (no rerun can gather less)."""
        self.query_id = query_id
        self.why = f"{type(exc).__name__}: {_message(exc)}"
        self.advice = (  # a cap too small or bad input fails the same way every time
            "the same failure comes back on a retry: do what it says, or narrow the query"
            if isinstance(exc, OverBudgetError | BadInputError)
            else "retry the query"
        )
        try:
            size = self.reads()
        except Exception:  # a source gone since it was planned: the lake says what it finds
            return
        if size > self.limit:
            raise SQLRunFailedError(
                f"{self._failure()}; its columns take {format_size(size)} in their files, more "
                f"than {self._most()}, so it is not rerun there: {self.advice}"
            )

    def exceeded(self, gathered: int) -> Exception:
        """The lake's rerun went past ``limit`` (``lake.interfaces.GatherBound``)."""
        return SQLRunFailedError(
            f"{self._failure()}; the lake's planner, rerunning it, held more than "
            f"{format_size(self.limit)} of rows in the coordinator's one process (a quarter "
            f"of ELYTRA_DRIVER_MEM_CAP; {format_size(gathered)} when it stopped), so it "
            f"stopped: {self.advice}"
        )

    def _failure(self) -> str:
        return f"query {self.query_id} failed on Elytra's engine ({self.why})"

    def _most(self) -> str:
        return (
            f"the lake's planner gathers into one process ({format_size(self.limit)}, a "
            "quarter of ELYTRA_DRIVER_MEM_CAP)"
        )


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0][:500] if text else type(exc).__name__
