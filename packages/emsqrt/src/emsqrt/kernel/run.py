"""Running a compiled fragment in DuckDB under the task's cap and spill directory.

One in-memory DuckDB connection per thread, set anew for each run: ``memory_limit`` is the cap less the head-room the
result needs once it leaves DuckDB, ``temp_directory`` the run's spill directory (DuckDB's
sorts, aggregates and joins spill there past the limit), ``threads`` the run's share of the
machine. Extensions are never installed or loaded: the kernel reads local Parquet only.

A fragment that DuckDB cannot finish (out of memory under a cap this small, an error a value
raises) is not an answer: :func:`run_fragment` returns ``None`` and the caller runs emsqrt's
own operators, which hold any cap by spilling and raise emsqrt's own errors with the user's
column names. Foreign messages never reach the user.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_core.expr.render import quote_string

from ..errors import CapTooSmallError
from .compile import Fragment

__all__ = ["KERNEL_FLOOR_BYTES", "KernelRun", "StreamBroken", "run_fragment", "run_statement"]

log = logging.getLogger(__name__)

KERNEL_FLOOR_BYTES = 24 << 20
"""Below this cap the kernel is not tried: DuckDB's own buffers would not leave room."""


@dataclass
class KernelRun:
    """A fragment's rows (None when they were streamed) and what running it cost."""

    table: pa.Table | None
    seconds: float
    memory_limit: int
    spilled_bytes: int
    rows: int = 0
    schema: pa.Schema | None = None
    """The rows' schema (the fragment's, or DuckDB's where the fragment gives none)."""


def memory_limit(cap: int) -> int:
    """DuckDB's share of ``cap``: half, so the result (outside DuckDB's accounting) fits."""
    return max(16 << 20, cap // 2)


_CONNECTIONS: dict[int, Any] = {}
"""Each thread's DuckDB connection, by thread id. Not a ``threading.local``: that one is
destroyed while its thread is torn down, which a process exiting meanwhile (an embedded
``submit()`` and the end of a script) turned into C++'s terminate (exit 134). Connections of
threads that ended are closed by the next caller, and the rest at exit."""
_SETTINGS: dict[int, tuple[int, int, bool]] = {}
"""The (memory limit, threads, ordered) each thread's connection was last set to."""
_CONNECTIONS_LOCK = threading.Lock()
_RUNS = itertools.count()


def _close_quietly(con: Any) -> None:
    with contextlib.suppress(Exception):
        con.close()


@atexit.register
def _close_all() -> None:
    with _CONNECTIONS_LOCK:
        cons = list(_CONNECTIONS.values())
        _CONNECTIONS.clear()
    for con in cons:
        _close_quietly(con)


def _connection(limit: int, threads: int, temp: Path, ordered: bool = True) -> Any:
    """This thread's DuckDB connection, set for this run (a new one costs about 12 ms, which
    a one-chunk task cannot afford; DuckDB refuses a new temporary directory once it spilled
    into the old one, and only then is the connection replaced)."""
    import duckdb

    # current_thread() registers a thread Python did not start (Ray's, a C library's), so
    # that enumerate() lists it and its connection is never taken for a dead thread's
    me = threading.current_thread().ident or threading.get_ident()
    with _CONNECTIONS_LOCK:
        con = _CONNECTIONS.get(me)
        alive = {t.ident for t in threading.enumerate()}
        gone = [_CONNECTIONS.pop(i) for i in list(_CONNECTIONS) if i != me and i not in alive]
        for i in [i for i in _SETTINGS if i not in _CONNECTIONS]:
            del _SETTINGS[i]
    for old in gone:
        _close_quietly(old)
    fixed = (limit, max(1, threads), ordered)
    temp_sql = f"SET temp_directory = {quote_string(str(temp))}"
    settings = (
        f"SET memory_limit = '{limit // 1024}KiB'; SET threads = {max(1, threads)}; "
        f"SET preserve_insertion_order = {'true' if ordered else 'false'}; "
        f"{temp_sql}; "
        "SET TimeZone = 'UTC'; "  # the expression language's time zone, whatever the process's
        "SET enable_progress_bar = false"  # a task's stderr is the user's: no bars in it
    )
    if con is not None:
        try:
            # only the run's own directory changes from run to run: one statement, not five
            con.execute(temp_sql if _SETTINGS.get(me) == fixed else settings)
            _SETTINGS[me] = fixed
            return con
        except duckdb.Error:
            _SETTINGS.pop(me, None)
            _close_quietly(con)
    con = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    con.execute(settings)
    with _CONNECTIONS_LOCK:
        _CONNECTIONS[me] = con
        _SETTINGS[me] = fixed
    return con


def _open(
    limit: int, threads: int, spill_dir: str | Path, ordered: bool = True
) -> tuple[Any, Path] | None:
    """This thread's connection set for a run, and the run's own temporary directory.

    DuckDB makes that directory only when it spills, and only if its parent exists: the
    task's spill directory is made here (emsqrt's operators make it lazily), else every
    fragment that had to spill failed and went to the operators (q8 of the elytra bench
    took 36 s that way instead of 1 s). None: DuckDB or the directory cannot be had."""
    import duckdb

    temp = Path(spill_dir) / f"kernel-{os.getpid()}-{next(_RUNS)}"
    try:
        temp.parent.mkdir(parents=True, exist_ok=True)
        return _connection(limit, threads, temp, ordered), temp
    except (duckdb.Error, OSError) as exc:
        log.warning("kernel: DuckDB would not start here (%s); running emsqrt's operators", exc)
        shutil.rmtree(temp, ignore_errors=True)
        return None


VECTOR_ROWS = 2048
"""DuckDB makes its results in vectors of this many rows, whatever their width."""


def row_width(fragment: Fragment) -> int:
    """Bytes a result row may take: the two widest inputs' average rows added (a join's row
    holds one of each), from the Parquet footers' uncompressed sizes and the Arrow inputs."""
    import pyarrow.parquet as pq

    widths = [t.nbytes // max(t.num_rows, 1) for t in fragment.tables.values()]
    for path in dict.fromkeys(fragment.files):
        try:
            meta = pq.read_metadata(path)
        except (OSError, pa.ArrowException):
            continue  # DuckDB says what is wrong with it
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        widths.append(size // max(meta.num_rows, 1))
    widths.sort(reverse=True)
    return sum(widths[:2])


def too_wide(fragment: Fragment, limit: int) -> bool:
    """Whether one of DuckDB's result vectors would pass a quarter of its memory limit: rows
    that wide (tens of KB) go to emsqrt's operators, which batch by bytes, so the cap holds."""
    return row_width(fragment) * VECTOR_ROWS > limit // 4


def run_fragment(
    fragment: Fragment,
    cap: int,
    spill_dir: str | Path,
    threads: int = 1,
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> KernelRun | None:
    """Run ``fragment`` on this thread's DuckDB connection; ``None`` when the operators must.
    With ``on_batch``, the rows stream out batch by batch as DuckDB makes them (a join that
    explodes stays within DuckDB's limit); a failure after the first batch was handed on
    cannot go to the operators, which would send those rows again: it raises. Once
    ``cancelled()`` answers True the statement is interrupted (the caller then finds the
    cancel, in the operators' first batch if it gets None)."""
    if too_wide(fragment, memory_limit(cap)):
        log.info("kernel: rows too wide for DuckDB's vectors under this cap; operators")
        return None
    attempt = _table_fragment if on_batch is None else _stream_fragment
    done = attempt(fragment, cap, spill_dir, threads, on_batch, cancelled)
    if done is _OUT_OF_MEMORY and threads > 1 and not (cancelled and cancelled()):
        # each thread holds buffers and hash tables of its own: on one, the same statement
        # may fit (a whole TPC-H q09 under 64 MiB did on one thread, not on two)
        log.info("kernel: out of memory on %d threads; once more on one", threads)
        done = attempt(fragment, cap, spill_dir, 1, on_batch, cancelled)
    if done is _OUT_OF_MEMORY:
        log.info("kernel: out of memory under %d bytes; running emsqrt's operators", cap)
        return None
    assert done is None or isinstance(done, KernelRun)
    return done


_OUT_OF_MEMORY = object()
"""What an attempt returns when DuckDB ran out of memory before a row was handed on."""


@contextlib.contextmanager
def _interrupted_when(con: Any, cancelled: Callable[[], bool] | None) -> Iterator[None]:
    """While the block runs, a watcher interrupts ``con``'s statement once ``cancelled()``
    answers True (checked every 50 ms: DuckDB's loops cannot call back into Python). It keeps
    interrupting, so a statement started after the cancel stops too."""
    if cancelled is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            if cancelled():
                con.interrupt()

    watcher = threading.Thread(target=watch, name="emsqrt-kernel-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _table_fragment(
    fragment: Fragment,
    cap: int,
    spill_dir: str | Path,
    threads: int,
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Any:
    """The fragment's rows as one table (a ``KernelRun``), ``_OUT_OF_MEMORY``, or None."""
    import duckdb

    started = time.perf_counter()
    limit = memory_limit(cap)
    opened = _open(limit, threads, spill_dir, fragment.ordered)
    if opened is None:
        return None
    con, temp = opened
    spilled = 0
    try:
        for name, table in fragment.tables.items():
            con.register(name, table)
        with _interrupted_when(con, cancelled):
            relation = con.sql(fragment.sql)
            fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
            table = fetch()
        spilled = _spilled(con) if temp.exists() else 0  # DuckDB makes it when it spills
    except duckdb.OutOfMemoryException:
        return _OUT_OF_MEMORY
    except duckdb.Error as exc:
        log.info("kernel: %s: %s; running emsqrt's operators", type(exc).__name__, exc)
        return None
    finally:
        for name in fragment.tables:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
        if temp.exists():  # the run's spill goes with it, as emsqrt's
            shutil.rmtree(temp, ignore_errors=True)
    try:
        table = _conformed(table, fragment.schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError) as exc:
        log.info("kernel: result does not conform (%s); running emsqrt's operators", exc)
        return None
    seconds = time.perf_counter() - started
    return KernelRun(table, seconds, limit, spilled, schema=table.schema)


def run_statement(
    fragment: Fragment,
    cap: int,
    spill_dir: str | Path,
    wrap: Callable[[str], str],
    threads: int = 1,
) -> list[tuple[Any, ...]] | None:
    """Run ``wrap(fragment.sql)`` (a statement built around the fragment's query, such as a
    ``COPY`` that writes its rows into files) on this thread's connection under ``cap`` and
    return what DuckDB answers (for a ``COPY ... RETURN_STATS``: the files it wrote).

    ``None`` when DuckDB could not finish (out of memory under this cap, an error a value
    raises, rows too wide for its vectors): the caller runs emsqrt's operators instead and
    removes whatever the statement began to write. No row passes through Python."""
    if too_wide(fragment, memory_limit(cap)):
        return None
    import duckdb

    opened = _open(memory_limit(cap), threads, spill_dir, fragment.ordered)
    if opened is None:
        return None
    con, temp = opened
    try:
        for name, table in fragment.tables.items():
            con.register(name, table)
        return list(con.execute(wrap(fragment.sql)).fetchall())
    except duckdb.Error as exc:
        log.info("kernel: %s: %s; running emsqrt's operators", type(exc).__name__, exc)
        return None
    finally:
        for name in fragment.tables:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
        shutil.rmtree(temp, ignore_errors=True)


def _stream_failed(exc: Exception, rows: int, cap: int) -> Any:
    """What DuckDB failing mid-stream means: before a row went out, ``_OUT_OF_MEMORY`` or
    None (the operators run it); after, an error (rows sent on cannot be taken back)."""
    import duckdb

    oom = isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory" in str(exc)
    if not rows:
        if not oom:
            log.info("kernel: %s: %s; running emsqrt's operators", type(exc).__name__, exc)
        return _OUT_OF_MEMORY if oom else None
    if oom:
        raise CapTooSmallError(
            f"the query ran out of memory under the cap of {cap} bytes after {rows} "
            "rows of its result were sent on; raise the cap",
            cap_bytes=cap,
        ) from None
    raise StreamBroken(rows, type(exc).__name__) from None


def _stream_fragment(
    fragment: Fragment,
    cap: int,
    spill_dir: str | Path,
    threads: int,
    on_batch: Callable[[pa.RecordBatch], None] | None,
    cancelled: Callable[[], bool] | None = None,
) -> Any:
    """The fragment's rows handed to ``on_batch`` as DuckDB makes them (a ``KernelRun`` of
    no table), ``_OUT_OF_MEMORY`` before the first, or None."""
    import duckdb

    assert on_batch is not None
    started = time.perf_counter()
    limit = memory_limit(cap)
    opened = _open(limit, threads, spill_dir, fragment.ordered)
    if opened is None:
        return None
    con, temp = opened
    rows = spilled = 0
    reader: Any = None
    # DuckDB's errors reach us as duckdb.Error while the statement is bound, and as Arrow
    # or OS errors through the stream once it runs; what ``on_batch`` raises is the caller's
    # and passes untouched.
    failures = (duckdb.Error, pa.ArrowException, OSError)
    watching = _interrupted_when(con, cancelled)
    watching.__enter__()
    try:
        for name, table in fragment.tables.items():
            con.register(name, table)
        reader = con.sql(fragment.sql).to_arrow_reader(_fragment_batch_rows(fragment, limit))
        batches = iter(reader)
        while True:
            try:
                batch = next(batches, None)
            except failures as exc:
                return _stream_failed(exc, rows, cap)
            if batch is None:
                break
            if not batch.num_rows:
                continue
            try:
                out = _conformed(pa.Table.from_batches([batch]), fragment.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError):
                if rows:
                    raise StreamBroken(rows, "a result that does not conform") from None
                log.info("kernel: result does not conform; running emsqrt's operators")
                return None
            for piece in out.to_batches():
                on_batch(piece)
            rows += batch.num_rows
        spilled = _spilled(con) if temp.exists() else 0
    except duckdb.OutOfMemoryException:  # binding or starting it: nothing was sent yet
        return _OUT_OF_MEMORY
    except duckdb.Error as exc:  # binding the statement: nothing was sent yet
        log.info("kernel: %s: %s; running emsqrt's operators", type(exc).__name__, exc)
        return None
    finally:
        watching.__exit__(None, None, None)
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()
        for name in fragment.tables:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    schema = fragment.schema if fragment.schema is not None else reader.schema
    return KernelRun(None, time.perf_counter() - started, limit, spilled, rows, schema)


class StreamBroken(Exception):
    """DuckDB failed after ``rows`` rows were streamed on: the operators cannot take over
    (they would send those rows again); the engine runs them only to name the error."""

    def __init__(self, rows: int, cause: str) -> None:
        super().__init__(f"the DuckDB kernel failed ({cause}) after {rows} rows")
        self.rows, self.cause = rows, cause


def _batch_rows(schema: pa.Schema, limit: int) -> int:
    """Rows per streamed batch: about a 64th of DuckDB's limit, by the schema's row width
    (32 bytes for each variable-width column), between 1024 and 1 Mi rows."""
    width = 0
    for f in schema:
        try:
            width += max(f.type.bit_width // 8, 1)
        except ValueError:
            width += 32
    return _rows_of_width(width, limit)


def _fragment_batch_rows(fragment: Fragment, limit: int) -> int:
    """:func:`_batch_rows` of the fragment's schema, or of its inputs' rows where it has none."""
    if fragment.schema is not None:
        return _batch_rows(fragment.schema, limit)
    return _rows_of_width(row_width(fragment), limit)


def _rows_of_width(width: int, limit: int) -> int:
    """:func:`_batch_rows` of rows ``width`` bytes wide."""
    return min(max((limit // 64) // max(width, 1), 1024), 1 << 20)


def _spilled(con: Any) -> int:
    """Bytes DuckDB holds in temporary files after the run (0 when it never spilled)."""
    import duckdb

    try:
        rows = con.execute("SELECT coalesce(sum(size), 0) FROM duckdb_temporary_files()")
        return int(rows.fetchall()[0][0])
    except duckdb.Error:
        return 0


def _conformed(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """:func:`conform`, or the table as DuckDB made it where no schema is asked for."""
    return table if schema is None else conform(table, schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """DuckDB's Arrow result in exactly the operators' schema (names, order, types)."""
    table = table.select(schema.names)
    if table.schema.equals(schema):
        return table
    columns = []
    for f, column in zip(schema, table.columns, strict=True):
        columns.append(column if column.type == f.type else column.cast(f.type, safe=True))
    return pa.Table.from_arrays(columns, schema=schema)
