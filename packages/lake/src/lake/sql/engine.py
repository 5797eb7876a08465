"""Running a gated statement on this node: verify chunks, build views, run under a timeout.

Each query gets a fresh sandboxed DuckDB (see :mod:`lake.sql.readonly`) with one view per dataset it
reads, over that dataset's verified chunk files at the version current when the query
started (snapshot isolation: later commits do not change a running query's input). Running
queries are registered by id, so ``cancel`` interrupts one; a timer interrupts it at its
timeout, which must be finite, positive and at most ``max_timeout``.

Results come out batch by batch (:class:`ResultStream`, over DuckDB's Arrow reader), so an
Arrow or CSV answer of any size passes through a bounded amount of memory; the sandbox is held
until the stream is read or closed, and the timeout covers the whole stream.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from platform_core import new_id

from ..errors import (
    TIMEOUT_ADVICE,
    CorruptChunkError,
    QueryLimitError,
    QueryTimeoutError,
    TooLargeError,
)
from ..interfaces import Distributor, GatherBound
from ..memo import TREE_BYTES_PER_CHAR, Memo, fingerprint, sql_cost
from ..storage.catalog import Catalog
from ..storage.manifest import Manifest
from .readonly import Statement, check_read_only, duckdb_error, sandboxed_connection, view_sql

__all__ = ["QueryEngine", "QueryResult", "ResultStream"]

POOL_SIZE = 4
"""Idle sandboxes kept for reuse."""
BATCH_ROWS = 16_384
INTERRUPT_RETRY_SECONDS = 30.0
"""How long a cancel keeps re-sending DuckDB's interrupt while the query still runs."""
"""Rows per batch of a streamed result."""


@dataclass
class QueryResult:
    """A query's rows and what it read."""

    table: pa.Table
    query_id: str
    kind: str
    seconds: float = 0.0
    reads: list[dict[str, Any]] = field(default_factory=list)
    """For EXPLAIN and the report: which node read which chunk, and the bytes."""
    plan: dict[str, Any] | None = None
    """For a distributed EXPLAIN: the plan's name, each dataset's fragment and the final SQL,
    what was pushed to the nodes per dataset and what reached the coordinator."""
    moved: dict[str, Any] | None = None
    """For a distributed query: rows and bytes that reached the coordinator, per dataset and
    in total (see ``DistributedResult.moved``)."""


class ResultStream:
    """A query's result batch by batch; it holds its sandbox until read to the end or closed.

    ``next_batch()`` gives the next ``pyarrow.RecordBatch`` or ``None`` at the end; it raises
    ``QueryTimeoutError`` once the query is cancelled or past its deadline. ``close()`` is
    idempotent, thread-safe and never blocks: while another thread fetches a batch it
    interrupts DuckDB, and that thread returns the sandbox when the fetch ends.
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        query_id: str,
        kind: str,
        *,
        started: float,
        reads: list[dict[str, Any]] | None = None,
        on_finish: Callable[[bool], None] | None = None,
    ) -> None:
        self.schema = schema
        self.query_id = query_id
        self.kind = kind
        self.started = started
        self.reads = reads or []
        self.plan: dict[str, Any] | None = None
        """A distributed EXPLAIN's plan (see ``QueryResult.plan``); None otherwise."""
        self.moved: dict[str, Any] | None = None
        """A distributed query's rows and bytes into the coordinator; None otherwise."""
        self.engine = "lake"
        """Which engine answered: ``lake`` (this planner) or an executor's name (``elytra``)."""
        self.sql = ""
        self.limit = 0.0
        self.deadline = math.inf
        """``time.monotonic()`` past which a fetch raises, even before the timer thread fired."""
        self._batches = batches
        self._pending: pa.RecordBatch | None = None
        self._interrupt: Callable[[], None] | None = None
        self._on_finish = on_finish
        """Called once when the stream ends, is closed or fails (True: read to its end)."""
        self._lock = threading.Lock()
        self._busy = False
        self._closed = False
        self._done = False
        self._finished = False
        self.cancelled = False
        self.timed_out = False

    @classmethod
    def of_table(
        cls, table: pa.Table, query_id: str, kind: str, *, started: float, reads: Any = None
    ) -> ResultStream:
        """A result already in memory (SHOW TABLES, DESCRIBE, EXPLAIN, a distributed merge)."""
        return cls(
            table.schema,
            iter(table.to_batches(max_chunksize=BATCH_ROWS)),
            query_id,
            kind,
            started=started,
            reads=reads,
        )

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def stop(self, *, cancelled: bool) -> None:
        """Cancel (or time out) the query: the current or next fetch raises."""
        with self._lock:
            if cancelled:
                self.cancelled = True
            else:
                self.timed_out = True
            interrupt = self._interrupt if self._busy else None
        if interrupt is not None:
            interrupt()
            # DuckDB drops an interrupt that comes before its query has started (the moment
            # between our `busy` and its execution): repeat it while the work is still running.
            threading.Thread(target=self._keep_interrupting, args=(interrupt,), daemon=True).start()

    def _keep_interrupting(self, interrupt: Callable[[], None]) -> None:
        deadline = time.monotonic() + INTERRUPT_RETRY_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.05)
            with self._lock:
                if not self._busy or self._closed:
                    return
            interrupt()

    def _stopped(self) -> QueryTimeoutError:
        why = (
            "was cancelled"
            if self.cancelled
            else f"ran past its timeout of {self.limit:g} s{TIMEOUT_ADVICE}"
        )
        return QueryTimeoutError(f"query {self.query_id} {why}", query_id=self.query_id)

    def prefetch(self) -> None:
        """Fetch the first batch now, so that most errors come before any byte is sent."""
        self._pending = self.next_batch()
        if self._pending is None:
            self._done = True

    def next_batch(self) -> pa.RecordBatch | None:
        with self._lock:
            if not self.cancelled and time.monotonic() >= self.deadline:
                self.timed_out = True  # the timer thread may not have run yet
            if self.cancelled or self.timed_out:
                stopped: QueryTimeoutError | None = self._stopped()
            elif self._closed:
                stopped = QueryTimeoutError(f"query {self.query_id} was closed")
            else:
                stopped = None
                self._busy = True
        if stopped is not None:
            self.close()
            raise stopped
        failed = True
        try:
            if self._pending is not None:
                batch, self._pending = self._pending, None
                failed = False
                return batch
            if self._done:
                failed = False
                return None
            try:
                batch = next(self._batches)
            except StopIteration:
                self._done = True
                failed = False
                return None
            except (duckdb.Error, pa.ArrowException) as exc:
                if self.cancelled or self.timed_out or isinstance(exc, duckdb.InterruptException):
                    raise self._stopped() from None
                if isinstance(exc, duckdb.Error):
                    err = exc
                elif isinstance(exc, MemoryError):  # pyarrow could not allocate a batch
                    err = duckdb.OutOfMemoryException(str(exc))
                else:
                    err = duckdb.Error(str(exc))
                raise duckdb_error(self.sql, err) from None
            failed = False
            return batch
        finally:
            with self._lock:
                self._busy = False
                release = self._closed
                if failed:
                    self._closed = True
                    release = True
            if release:
                self._finish()

    def read_all(self) -> pa.Table:
        batches = []
        try:
            while (batch := self.next_batch()) is not None:
                batches.append(batch)
        finally:
            self.close()
        return pa.Table.from_batches(batches, self.schema)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            busy = self._busy
            interrupt = self._interrupt
        if not busy:
            self._finish()
        elif not self._done and interrupt is not None:
            interrupt()  # the fetching thread returns the sandbox when its fetch ends

    def _finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._batches = iter(())
        if self._on_finish is not None:
            self._on_finish(self._done and not (self.cancelled or self.timed_out))

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class QueryEngine:
    """SQL over one node's catalog."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        temp_dir: Path,
        node_id: str,
        threads: int = 2,
        memory_limit: str = "1GB",
        timeout: float = 60.0,
        max_timeout: float = 3600.0,
        repair: Callable[[str], bool] | None = None,
        coordinator: Distributor | None = None,
    ) -> None:
        self.catalog = catalog
        self.temp_dir = temp_dir
        self.node_id = node_id
        self.threads = threads
        self.memory_limit = memory_limit
        self.max_timeout = max_timeout
        self.timeout = min(timeout, max_timeout)
        self.repair = repair
        """Called with a corrupt chunk's id; True if it was replaced by a good copy."""
        self.coordinator = coordinator
        """Given when the node is part of a cluster: SELECTs then run across the members."""
        self._running: dict[str, ResultStream] = {}
        self._idle: list[tuple[duckdb.DuckDBPyConnection, Path, dict[str, str]]] = []
        """Pooled sandboxes: connection, spill directory, the views it holds (name -> SQL)."""
        self._opened = 0
        self._lock = threading.Lock()
        self._gated: Memo[Statement] = Memo()

    def gate(self, sql: str) -> Statement:
        """The gate's verdict on ``sql`` over the datasets that exist now.

        A verdict depends only on the text and the set of dataset names, so a passed one on a
        short text is kept for both (refusals are not: they raise every time); a new or removed
        dataset changes the key. Statements' trees are shared: nothing may modify them.
        """
        names = self.catalog.names()
        return self._gated.get(
            (sql, fingerprint(names)),
            lambda: check_read_only(sql, names),
            lambda _: sql_cost(sql, TREE_BYTES_PER_CHAR),
        )

    def check_timeout(self, timeout: object) -> float:
        """``timeout`` in seconds if finite, > 0 and at most ``max_timeout``; None: the default."""
        if timeout is None:
            return self.timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= self.max_timeout
        ):
            raise QueryLimitError(
                f"timeout {timeout!r} is not allowed: give a number of seconds above 0 and at "
                f"most {self.max_timeout:g} (LAKE_MAX_QUERY_TIMEOUT_SECONDS), or leave it out "
                f"for the default of {self.timeout:g} s"
            )
        return float(timeout)

    def cancel(self, query_id: str) -> bool:
        with self._lock:
            stream = self._running.get(query_id)
        if stream is None:
            return False
        stream.stop(cancelled=True)
        return True

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def snapshot(self, tables: frozenset[str]) -> dict[str, Manifest]:
        return {name: self.catalog.get(name) for name in sorted(tables)}

    def chunk_paths(self, manifest: Manifest) -> list[Path]:
        """Verified chunk files of a version; a corrupt one is repaired first or refused."""
        return self.chunk_paths_for([ref.sha256 for ref in manifest.chunks])

    def chunk_paths_for(self, shas: list[str], *, force: bool = False) -> list[Path]:
        """Verified chunk files; a corrupt one is repaired from a replica then, or refused."""
        paths = []
        for sha in shas:
            try:
                paths.append(self.catalog.chunks.verify(sha, force=force))
            except CorruptChunkError:
                if self.repair is None or not self.repair(sha):
                    raise
                paths.append(self.catalog.chunks.verify(sha, force=True))
        return paths

    def run(
        self,
        sql: str,
        *,
        timeout: float | None = None,
        query_id: str | None = None,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run ``sql`` to the end and hold its whole result (see :meth:`open` to stream it)."""
        stream = self.open(sql, timeout=timeout, query_id=query_id)
        table = stream.read_all()
        if max_rows is not None and table.num_rows > max_rows:
            raise TooLargeError(
                f"the result has {table.num_rows} rows, over the limit of {max_rows}; "
                "add a LIMIT or stream it"
            )
        return QueryResult(
            table,
            stream.query_id,
            stream.kind,
            stream.seconds,
            stream.reads,
            stream.plan,
            stream.moved,
        )

    def open(
        self,
        sql: str,
        *,
        timeout: float | None = None,
        query_id: str | None = None,
        cancelled: threading.Event | None = None,
        gated: Statement | None = None,
        bound: GatherBound | None = None,
    ) -> ResultStream:
        """Start ``sql`` and return its result stream, its first batch already fetched.

        ``cancelled`` is the caller's cancel flag: set before the query is registered, it
        stops the query as soon as it is (so a cancel cannot slip in between). ``gated``: the
        gate's verdict on ``sql`` the caller already has (a long text is not parsed twice).
        ``bound``: a tighter limit on what a query across nodes gathers here (a declined
        query's, see ``SQLDeclined``).
        """
        limit = self.check_timeout(timeout)
        stmt = gated if gated is not None else self.gate(sql)
        query_id = query_id or new_id()
        started = time.perf_counter()
        if stmt.kind == "show_tables":
            names = self.catalog.names()
            table = pa.table({"name": pa.array(names, pa.string())})
            return ResultStream.of_table(table, query_id, stmt.kind, started=started)
        if stmt.kind == "describe":
            (name,) = stmt.tables
            manifest = self.catalog.get(name)
            fields = manifest.schema.fields if manifest.schema is not None else ()
            table = pa.table(
                {
                    "column_name": pa.array([f.name for f in fields], pa.string()),
                    "column_type": pa.array([str(f.type) for f in fields], pa.string()),
                    "null": pa.array(["YES" if f.nullable else "NO" for f in fields]),
                }
            )
            return ResultStream.of_table(table, query_id, stmt.kind, started=started)
        if self.coordinator is not None and self.coordinator.has_peers():
            result = self._run_distributed(stmt, limit, query_id, started, bound)
            stream = ResultStream.of_table(
                result.table, query_id, result.kind, started=started, reads=result.reads
            )
            stream.plan, stream.moved = result.plan, result.moved
            return stream
        manifests = self.snapshot(stmt.tables)
        reads = [
            {
                "node": self.node_id,
                "dataset": m.name,
                "chunk": c.sha256,
                "bytes": c.bytes,
                "rows": c.rows,
            }
            for m in manifests.values()
            for c in m.chunks
        ]
        if stmt.kind == "explain":
            table = pa.table(
                {
                    "node": [r["node"] for r in reads],
                    "dataset": [r["dataset"] for r in reads],
                    "chunk": [r["chunk"] for r in reads],
                    "bytes": pa.array([r["bytes"] for r in reads], pa.int64()),
                    "rows": pa.array([r["rows"] for r in reads], pa.int64()),
                }
            )
            return ResultStream.of_table(table, query_id, stmt.kind, started=started, reads=reads)
        sources = {name: self.chunk_paths(m) for name, m in manifests.items()}
        stream = self.stream(
            stmt.sql, manifests, sources, timeout=limit, query_id=query_id, cancelled=cancelled
        )
        stream.kind, stream.reads, stream.started = stmt.kind, reads, started
        return stream

    def _run_distributed(
        self,
        stmt: Statement,
        timeout: float,
        query_id: str,
        started: float,
        bound: GatherBound | None = None,
    ) -> QueryResult:
        assert self.coordinator is not None
        out = self.coordinator.run(stmt, self, timeout=timeout, query_id=query_id, bound=bound)
        if stmt.kind == "explain":
            rows = [{"kind": "read", **r} for r in out.reads]
            rows += [{"kind": "moved", "chunk": None, **m} for m in out.moves]
            table = pa.table(
                {
                    "kind": [r["kind"] for r in rows],
                    "node": [r["node"] for r in rows],
                    "dataset": [r["dataset"] for r in rows],
                    "chunk": pa.array([r["chunk"] for r in rows], pa.string()),
                    "bytes": pa.array([r["bytes"] for r in rows], pa.int64()),
                    "rows": pa.array([r["rows"] for r in rows], pa.int64()),
                    "attempt": pa.array([r.get("attempt") for r in rows], pa.int64()),
                    "gathered": pa.array([r.get("gathered") for r in rows], pa.int64()),
                }
            )
            plan = {
                "kind": out.plan,
                "fragments": out.fragments,
                "final": out.final,
                "pushdown": out.pushdown,
                "moved": out.moved(),
            }
            return QueryResult(
                table, query_id, f"explain ({out.plan})", reads=out.reads + out.moves, plan=plan
            )
        return QueryResult(
            out.table,
            query_id,
            stmt.kind,
            seconds=time.perf_counter() - started,
            reads=out.reads + out.moves,
            moved=out.moved(),
        )

    def execute(
        self,
        sql: str,
        manifests: dict[str, Manifest],
        sources: dict[str, list[Path]],
        *,
        timeout: float | None,
        query_id: str,
        arrow_tables: dict[str, pa.Table] | None = None,
    ) -> pa.Table:
        """Run ``sql`` in a sandbox with a view per dataset (or a registered Arrow table)."""
        return self.stream(
            sql, manifests, sources, timeout=timeout, query_id=query_id, arrow_tables=arrow_tables
        ).read_all()

    def stream(
        self,
        sql: str,
        manifests: dict[str, Manifest],
        sources: dict[str, list[Path]],
        *,
        timeout: float | None,
        query_id: str,
        arrow_tables: dict[str, pa.Table] | None = None,
        cancelled: threading.Event | None = None,
    ) -> ResultStream:
        """Start ``sql`` in a sandbox with a view per dataset (or a registered Arrow table).

        Sandboxes are pooled: opening one costs tens of milliseconds, and a clean one (tables
        unregistered, configuration still locked) is as good as new. It keeps its views: a
        view names its exact chunk files (immutable, content-addressed), so one whose text is
        the same as this query's is used as it is, and every other view is dropped first; the
        query sees exactly the views of ``sources``. One whose query raised or was not read to
        the end is closed instead of reused.
        """
        limit = self.check_timeout(timeout)
        conn, tmp, views = self._acquire()
        registered: list[str] = []
        try:
            self._set_views(conn, views, manifests, sources, arrow_tables or {}, registered)
        except BaseException:
            self._release(conn, tmp, views, registered, False)
            raise
        stream = self._tracked(sql, limit, query_id, conn, tmp, views, registered)
        self._start(stream, conn, sql, cancelled)
        return stream

    def _set_views(
        self,
        conn: duckdb.DuckDBPyConnection,
        views: dict[str, str],
        manifests: dict[str, Manifest],
        sources: dict[str, list[Path]],
        arrow_tables: dict[str, pa.Table],
        registered: list[str],
    ) -> None:
        """Make the sandbox's tables exactly ``sources`` (a view over each one's chunk files,
        kept when its text is unchanged; an empty table of its schema when it has none) and
        ``arrow_tables``; the names registered are added to ``registered``."""
        wanted = {name: view_sql(name, paths) for name, paths in sources.items() if paths}
        for name in [n for n in views if wanted.get(n) != views[n]]:
            del views[name]  # before the DROP: a failure leaves no stale record behind
            conn.execute(f'DROP VIEW IF EXISTS "{name}"')
        for name, text in wanted.items():
            if name not in views:
                conn.execute(text)
                views[name] = text
        for name, paths in sources.items():
            if not paths:
                schema = manifests[name].schema
                empty = schema.to_arrow().empty_table() if schema is not None else pa.table({})
                conn.register(name, empty)
                registered.append(name)
        for name, tbl in arrow_tables.items():
            conn.register(name, tbl)
            registered.append(name)

    def _tracked(
        self,
        sql: str,
        limit: float,
        query_id: str,
        conn: duckdb.DuckDBPyConnection,
        tmp: Path,
        views: dict[str, str],
        registered: list[str],
    ) -> ResultStream:
        """A stream for ``sql`` on ``conn``, registered by ``query_id`` (so ``cancel`` finds
        it) with its timeout running; finishing it gives the sandbox back."""
        stream = ResultStream(pa.schema([]), iter(()), query_id, "select", started=0.0)
        stream.sql, stream.limit = sql, limit
        stream.deadline = time.monotonic() + limit
        stream._interrupt = conn.interrupt
        timer = threading.Timer(limit, lambda: stream.stop(cancelled=False))
        timer.daemon = True

        def finish(clean: bool) -> None:
            timer.cancel()
            with self._lock:
                if self._running.get(query_id) is stream:
                    del self._running[query_id]
            self._release(conn, tmp, views, registered, clean)

        stream._on_finish = finish
        with self._lock:
            self._running[query_id] = stream
        timer.start()
        return stream

    @staticmethod
    def _start(
        stream: ResultStream,
        conn: duckdb.DuckDBPyConnection,
        sql: str,
        cancelled: threading.Event | None,
    ) -> None:
        """Run ``sql`` up to its Arrow reader and prefetch the first batch, unless the query
        was cancelled or timed out meanwhile (then the stream is closed and that is raised)."""
        if cancelled is not None and cancelled.is_set():
            stream.cancelled = True
            stream.close()
            raise stream._stopped()
        with stream._lock:
            stopped = stream.cancelled or stream.timed_out  # a cancel that came just now
            stream._busy = not stopped  # the query runs now: a cancel or the deadline interrupts it
        if stopped:
            stream.close()
            raise stream._stopped()
        try:
            rel = conn.sql(sql)
            reader = (
                rel.to_arrow_reader(BATCH_ROWS)
                if rel is not None
                else pa.RecordBatchReader.from_batches(pa.schema([]), [])
            )
            stream.schema = reader.schema
            stream._batches = iter(reader)
        except duckdb.Error as exc:
            stream._busy = False
            stream.close()
            if stream.cancelled or stream.timed_out or isinstance(exc, duckdb.InterruptException):
                raise stream._stopped() from None
            raise duckdb_error(sql, exc) from None
        except BaseException:
            stream._busy = False
            stream.close()
            raise
        with stream._lock:
            stream._busy = False
        stream.prefetch()

    def _acquire(self) -> tuple[duckdb.DuckDBPyConnection, Path, dict[str, str]]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self._opened += 1
            tmp = self.temp_dir / f"conn-{os.getpid()}-{self._opened}"
        conn = sandboxed_connection(
            [self.catalog.chunks.root],
            threads=self.threads,
            memory_limit=self.memory_limit,
            temp_dir=tmp,
        )
        return conn, tmp, {}

    def _release(
        self,
        conn: duckdb.DuckDBPyConnection,
        tmp: Path,
        views: dict[str, str],
        registered: list[str],
        clean: bool,
    ) -> None:
        if clean:
            try:
                for name in registered:
                    conn.unregister(name)
            except duckdb.Error:
                clean = False
        with self._lock:
            if clean and len(self._idle) < POOL_SIZE:
                self._idle.append((conn, tmp, views))
                return
        conn.close()
        _rmtree(tmp)

    def close(self) -> None:
        """Close the pooled sandboxes."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, tmp, _ in idle:
            conn.close()
            _rmtree(tmp)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
