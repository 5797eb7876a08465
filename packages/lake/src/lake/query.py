"""Running a gated statement on this node: verify chunks, build views, run under a timeout.

Each query gets a fresh sandboxed DuckDB (see :mod:`lake.sql`) with one view per dataset it
reads, over that dataset's verified chunk files at the version current when the query
started (snapshot isolation: later commits do not change a running query's input). Running
queries are registered by id, so ``cancel`` interrupts one; a timer interrupts it at its
timeout.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from platform_core import new_id

from .catalog import Catalog
from .errors import CorruptChunkError, QueryTimeoutError, TooLargeError
from .manifest import Manifest

if TYPE_CHECKING:
    from .distributed import Coordinator
from .sql import Statement, check_read_only, duckdb_error, sandboxed_connection, view_sql

__all__ = ["QueryEngine", "QueryResult"]

POOL_SIZE = 4
"""Idle sandboxes kept for reuse."""


@dataclass
class QueryResult:
    """A query's rows and what it read."""

    table: pa.Table
    query_id: str
    kind: str
    seconds: float = 0.0
    reads: list[dict[str, Any]] = field(default_factory=list)
    """For EXPLAIN and the report: which node read which chunk, and the bytes."""


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
        repair: Callable[[str], bool] | None = None,
    ) -> None:
        self.catalog = catalog
        self.temp_dir = temp_dir
        self.node_id = node_id
        self.threads = threads
        self.memory_limit = memory_limit
        self.timeout = timeout
        self.repair = repair
        """Called with a corrupt chunk's id; True if it was replaced by a good copy."""
        self.coordinator: Coordinator | None = None
        """Set when the node is part of a cluster: SELECTs then run across the members."""
        self._running: dict[str, duckdb.DuckDBPyConnection] = {}
        self._idle: list[tuple[duckdb.DuckDBPyConnection, Path]] = []
        self._opened = 0
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def gate(self, sql: str) -> Statement:
        return check_read_only(sql, self.catalog.names())

    def cancel(self, query_id: str) -> bool:
        with self._lock:
            conn = self._running.get(query_id)
            if conn is None:
                return False
            self._cancelled.add(query_id)
        conn.interrupt()
        return True

    def snapshot(self, tables: frozenset[str]) -> dict[str, Manifest]:
        return {name: self.catalog.get(name) for name in sorted(tables)}

    def chunk_paths(self, manifest: Manifest) -> list[Path]:
        """Verified chunk files of a version; a corrupt one is repaired first or refused."""
        return self.chunk_paths_for([ref.sha256 for ref in manifest.chunks])

    def chunk_paths_for(self, shas: list[str]) -> list[Path]:
        paths = []
        for sha in shas:
            try:
                paths.append(self.catalog.chunks.verify(sha))
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
        stmt = self.gate(sql)
        query_id = query_id or new_id()
        started = time.perf_counter()
        if stmt.kind == "show_tables":
            names = self.catalog.names()
            table = pa.table({"name": pa.array(names, pa.string())})
            return QueryResult(table, query_id, stmt.kind)
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
            return QueryResult(table, query_id, stmt.kind)
        if self.coordinator is not None and self.coordinator.cluster.live_ids()[1:]:
            return self._run_distributed(stmt, timeout, query_id, max_rows, started)
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
            return QueryResult(table, query_id, stmt.kind, reads=reads)
        sources = {name: self.chunk_paths(m) for name, m in manifests.items()}
        table = self.execute(stmt.sql, manifests, sources, timeout=timeout, query_id=query_id)
        if max_rows is not None and table.num_rows > max_rows:
            raise TooLargeError(
                f"the result has {table.num_rows} rows, over the limit of {max_rows} for JSON "
                "and CSV; add a LIMIT or ask for an Arrow stream"
            )
        return QueryResult(
            table, query_id, stmt.kind, seconds=time.perf_counter() - started, reads=reads
        )

    def _run_distributed(
        self,
        stmt: Statement,
        timeout: float | None,
        query_id: str,
        max_rows: int | None,
        started: float,
    ) -> QueryResult:
        assert self.coordinator is not None
        limit = self.timeout if timeout is None else timeout
        out = self.coordinator.run(stmt, timeout=limit, query_id=query_id)
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
                }
            )
            return QueryResult(
                table, query_id, f"explain ({out.plan})", reads=out.reads + out.moves
            )
        table = out.table
        if max_rows is not None and table.num_rows > max_rows:
            raise TooLargeError(
                f"the result has {table.num_rows} rows, over the limit of {max_rows} for JSON "
                "and CSV; add a LIMIT or ask for an Arrow stream"
            )
        return QueryResult(
            table,
            query_id,
            stmt.kind,
            seconds=time.perf_counter() - started,
            reads=out.reads + out.moves,
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
        """Run ``sql`` in a sandbox with a view per dataset (or a registered Arrow table).

        Sandboxes are pooled: opening one costs tens of milliseconds, and a clean one (views
        dropped, tables unregistered, configuration still locked) is as good as new. One that
        raised is closed instead of reused.
        """
        conn, tmp = self._acquire()
        views: list[str] = []
        registered: list[str] = []
        clean = False
        try:
            for name, paths in sources.items():
                if paths:
                    conn.execute(view_sql(name, paths))
                    views.append(name)
                else:
                    schema = manifests[name].schema
                    empty = schema.to_arrow().empty_table() if schema is not None else pa.table({})
                    conn.register(name, empty)
                    registered.append(name)
            for name, tbl in (arrow_tables or {}).items():
                conn.register(name, tbl)
                registered.append(name)
            with self._lock:
                self._running[query_id] = conn
            limit = self.timeout if timeout is None else timeout
            timer = threading.Timer(limit, conn.interrupt)
            timer.daemon = True
            timer.start()
            try:
                table = conn.sql(sql).to_arrow_table()
                clean = True
                return table
            except duckdb.InterruptException:
                with self._lock:
                    cancelled = query_id in self._cancelled
                why = "was cancelled" if cancelled else f"ran past its timeout of {limit:g} s"
                raise QueryTimeoutError(f"query {query_id} {why}", query_id=query_id) from None
            except duckdb.Error as exc:
                raise duckdb_error(sql, exc) from None
            finally:
                timer.cancel()
        finally:
            with self._lock:
                self._running.pop(query_id, None)
                self._cancelled.discard(query_id)
            self._release(conn, tmp, views, registered, clean)

    def _acquire(self) -> tuple[duckdb.DuckDBPyConnection, Path]:
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
        return conn, tmp

    def _release(
        self,
        conn: duckdb.DuckDBPyConnection,
        tmp: Path,
        views: list[str],
        registered: list[str],
        clean: bool,
    ) -> None:
        if clean:
            try:
                for name in views:
                    conn.execute(f'DROP VIEW IF EXISTS "{name}"')
                for name in registered:
                    conn.unregister(name)
            except duckdb.Error:
                clean = False
        with self._lock:
            if clean and len(self._idle) < POOL_SIZE:
                self._idle.append((conn, tmp))
                return
        conn.close()
        _rmtree(tmp)

    def close(self) -> None:
        """Close the pooled sandboxes."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, tmp in idle:
            conn.close()
            _rmtree(tmp)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
