"""strand between two processes against multiprocessing.Queue, Pipe + Arrow IPC and memcpy.

The parent process produces, one spawned child consumes; every measurement in one run:

- ``batches``: Arrow record batches of 4 KiB to 4 MiB of a fixed-width schema (4 x int64 +
  4 x float64) and of a schema with strings, written with ``StrandWriter.write_record_batch``
  and read with ``StrandView.read_batch`` (ours), pickled through a ``multiprocessing.Queue``
  (peer c) and sent as Arrow IPC bytes through a ``multiprocessing.Pipe`` (peer d);
- ``cursor``: the same records read one by one with ``RecordCursor`` getters (ours only);
- ``cold``: ours again, timing the first pass over a fresh strand (no warm-up);
- ``memcpy``: ``numpy.copyto`` of 256 MiB into pre-faulted memory in one process (peer e, the
  physical limit of any copy-once transport), and the same copy into a pre-faulted
  ``/dev/shm`` segment (4 KiB pages: what any shared-memory transport copies into);
- ``wake-up``: ping-pong round trips of one record through two strands (each side waits with
  ``wait_for_commit``), and the same through a ``multiprocessing.Pipe``;
- ``fixed-cost``: in one process, ``write_record_batch``, ``read_batch`` and
  ``acknowledge_read`` of a 64-record batch: what a batch costs apart from its bytes.

Every consumer reduces every column of every batch (``pc.sum``; strings: the sum of their
byte lengths), and the sums are compared with the producer's, so no engine can skip work.
Throughput is Arrow payload bytes (``RecordBatch.nbytes``) over the wall time from the
producer's first timed write to the consumer's last reduction (both ``time.perf_counter``,
CLOCK_MONOTONIC, one clock for all processes). Before the timed batches each engine streams
an untimed warm-up (for strand, one pass over its 256 MiB heap), so figures are steady
state: a fresh strand otherwise pays a page fault per 4 KiB of heap in each process the
first time through the ring. Medians over ``--runs``; results in
``bench/results/strand_bench.json``, resumed unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import multiprocessing as mp
import os
import secrets
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from _harness import RESULTS, ResultStore

import strand

NAME = "strand_bench"
KIB, MIB = 1024, 1024 * 1024
BATCH_SIZES = [4 * KIB, 64 * KIB, 1 * MIB, 4 * MIB]
SCHEMAS = ["fixed", "strings"]
ENGINES = ["ours", "cold", "queue", "pipe"]  # cold: ours, first pass over a fresh strand
MEMCPY_REPEATS = 5
INDEX_CAPACITY = 1 << 20  # a batch may hold up to index_capacity / 2 records unsplit
QUEUE_MAXSIZE = 64


@dataclass(frozen=True)
class Config:
    """Sizes of one invocation: full (scaled) or --quick."""

    scale: float
    timed_bytes: int  # payload per timed measurement (fewer for small batches: max_batches)
    max_batches: int
    warm_batches: int  # cap on warm-up batches
    pool_bytes: int  # distinct source batches, cycled
    heap: int
    memcpy_bytes: int
    cursor_records: int
    pings: int
    timeout: float

    @classmethod
    def make(cls, quick: bool, scale: float, timeout: float) -> Config:
        if quick:
            return cls(0.0, 8 * MIB, 64, 32, 8 * MIB, 16 * MIB, 32 * MIB, 2_000, 200, timeout)
        return cls(
            scale,
            int(1024 * MIB * scale),
            max(16, int(8192 * scale)),
            max(4, int(4096 * scale)),
            64 * MIB,
            256 * MIB,
            max(16 * MIB, int(256 * MIB * min(scale, 1.0))),
            max(1_000, int(200_000 * scale)),
            max(100, int(2_000 * scale)),
            timeout,
        )


# -- data ---------------------------------------------------------------------------------


def arrow_schema(kind: str) -> pa.Schema:
    ints = [
        pa.field(f"i{k}", pa.int64(), nullable=False) for k in range(4 if kind == "fixed" else 2)
    ]
    floats = [
        pa.field(f"f{k}", pa.float64(), nullable=False) for k in range(4 if kind == "fixed" else 2)
    ]
    strings = [] if kind == "fixed" else [pa.field(n, pa.utf8(), nullable=False) for n in "st"]
    return pa.schema(ints + floats + strings)


# string lengths (bytes): s uniform in 4..28, t uniform in 2..10, so ~62 bytes per record
_STRING_LENGTHS = {"s": (4, 29), "t": (2, 11)}


def _strings(rng: np.random.Generator, rows: int, lo: int, hi: int) -> pa.Array:
    lengths = rng.integers(lo, hi, rows)
    offsets = np.zeros(rows + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    chars = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(chars))


def make_batch(kind: str, rows: int, rng: np.random.Generator) -> pa.RecordBatch:
    """One seeded batch with its own compact buffers (never a slice: pickle would copy the
    whole parent buffer)."""
    schema = arrow_schema(kind)
    columns: list[pa.Array] = []
    for f in schema:
        if f.type == pa.int64():
            columns.append(pa.array(rng.integers(-(1 << 40), 1 << 40, rows)))
        elif f.type == pa.float64():
            columns.append(pa.array(rng.random(rows) * 1000.0))
        else:
            columns.append(_strings(rng, rows, *_STRING_LENGTHS[f.name]))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def rows_for(kind: str, nbytes: int) -> int:
    per_row = (
        64
        if kind == "fixed"
        else 32 + 8 + sum((a + b - 1) / 2 for a, b in _STRING_LENGTHS.values())
    )
    return max(1, round(nbytes / per_row))


def reduce_batch(batch: pa.RecordBatch) -> list[int | float]:
    """What every consumer computes: each column's sum (strings: sum of byte lengths)."""
    out: list[int | float] = []
    for col in batch.columns:
        if pa.types.is_string(col.type):
            out.append(pc.sum(pc.binary_length(col)).as_py() or 0)
        else:
            out.append(pc.sum(col).as_py() or 0)
    return out


def sums_match(got: list[int | float], want: list[int | float]) -> bool:
    """Integers exactly; floats to 1e-9 relative (a split batch sums in another order)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if isinstance(w, int) and isinstance(g, int):
            if g != w:
                return False
        elif not math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-6):
            return False
    return True


@dataclass
class Stream:
    """The batches one measurement sends: ``warm`` untimed ones, then ``timed``, cycling a
    pool of distinct batches; with the expected reductions."""

    kind: str
    pool: list[pa.RecordBatch]
    pool_sums: list[list[int | float]]
    warm: int
    timed: int

    @property
    def schema(self) -> pa.Schema:
        return self.pool[0].schema

    def batches(self, start: int, stop: int) -> Iterator[pa.RecordBatch]:
        pool = self.pool
        for i in range(start, stop):
            yield pool[i % len(pool)]

    def rows(self, start: int, stop: int) -> int:
        return sum(b.num_rows for b in self.batches(start, stop))

    def nbytes(self, start: int, stop: int) -> int:
        return sum(b.nbytes for b in self.batches(start, stop))

    def expected(self) -> list[int | float]:
        total: list[int | float] = [0] * len(self.schema)
        for i in range(self.warm + self.timed):
            for c, v in enumerate(self.pool_sums[i % len(self.pool)]):
                total[c] += v
        return total


def make_stream(kind: str, size: int, cfg: Config) -> Stream:
    rng = np.random.default_rng([42, SCHEMAS.index(kind), size])
    rows = rows_for(kind, size)
    timed = min(cfg.max_batches, max(1, math.ceil(cfg.timed_bytes / size)))
    n_warm = min(cfg.warm_batches, math.ceil(cfg.heap / size) + 1)
    count = max(1, min(timed + n_warm, cfg.pool_bytes // size, 2048))
    pool = [make_batch(kind, rows, rng) for _ in range(count)]
    return Stream(kind, pool, [reduce_batch(b) for b in pool], n_warm, timed)


# -- the consumer process ---------------------------------------------------------------


class _Acc:
    """Running reduction on the consumer side."""

    def __init__(self, ncols: int) -> None:
        self.sums: list[int | float] = [0] * ncols
        self.rows = 0
        self.batches = 0

    def add(self, batch: pa.RecordBatch) -> None:
        for c, v in enumerate(reduce_batch(batch)):
            self.sums[c] += v
        self.rows += batch.num_rows
        self.batches += 1


def _consume_strand(ctrl: Any, p: dict[str, Any]) -> dict[str, Any]:
    view = strand.StrandView(p["name"])
    clock = time.perf_counter
    try:
        ctrl.send(("ready",))
        acc = _Acc(p["ncols"])
        seen, warm_sent = 0, p["warm_rows"] == 0
        # where the consumer's time goes after the warm-up: wait, read_batch, reduce, ack
        spent = [0.0, 0.0, 0.0, 0.0]
        reads = 0
        while seen < p["rows"]:
            t0 = clock()
            n = view.wait_for_commit(seen, timeout=p["timeout"])
            if n <= seen:
                raise RuntimeError(f"stream ended at {seen} of {p['rows']} records: {view.status}")
            t1 = clock()
            got = view.read_batch(seen, n)
            t2 = clock()
            for batch in got if isinstance(got, list) else [got]:
                acc.add(batch)
            del got, batch  # Arrow views into the ring die before their records are released
            t3 = clock()
            view.acknowledge_read(n)
            t4 = clock()
            if warm_sent:
                for i, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    spent[i] += dt
                reads += 1
            seen = n
            if not warm_sent and seen >= p["warm_rows"]:
                ctrl.send(("warm",))
                warm_sent = True
        t_end = clock()
        return {
            "t_end": t_end,
            "rows": acc.rows,
            "sums": acc.sums,
            "reads": reads,
            "wait_s": spent[0],
            "read_s": spent[1],
            "reduce_s": spent[2],
            "ack_s": spent[3],
        }
    finally:
        view.close(timeout=1.0)


def _consume_cursor(ctrl: Any, p: dict[str, Any]) -> dict[str, Any]:
    view = strand.StrandView(p["name"])
    try:
        ctrl.send(("ready",))
        cursor = view.allocate_cursor()
        names: list[str] = p["names"]
        kinds: list[str] = p["kinds"]
        getters: list[Callable[[str], Any]] = [
            {"i64": cursor.get_i64, "f64": cursor.get_f64, "str": cursor.get_string}[k]
            for k in kinds
        ]
        columns = list(zip(range(len(names)), names, getters, kinds, strict=True))
        sums: list[int | float] = [0 if k != "f64" else 0.0 for k in kinds]
        seen = 0
        while seen < p["rows"]:
            n = view.wait_for_commit(seen, timeout=p["timeout"])
            if n <= seen:
                raise RuntimeError(f"stream ended at {seen} of {p['rows']} records: {view.status}")
            for seq in range(seen, n):
                if not cursor.seek(seq):
                    raise RuntimeError(f"seek({seq}) failed with {n} committed")
                for c, name, get, kind in columns:
                    value = get(name)
                    sums[c] += len(value.encode()) if kind == "str" else value
            view.acknowledge_read(n)
            seen = n
        t_end = time.perf_counter()
        del cursor, getters, columns
        return {"t_end": t_end, "rows": seen, "sums": sums, "reads": seen}
    finally:
        view.close(timeout=1.0)


def _consume_queue(ctrl: Any, queue: Any, p: dict[str, Any]) -> dict[str, Any]:
    ctrl.send(("ready",))
    acc = _Acc(p["ncols"])
    for i in range(p["batches"]):
        if i == p["warm"] and p["warm"]:
            ctrl.send(("warm",))
        acc.add(queue.get(timeout=p["timeout"]))
    if p["warm"] == p["batches"]:
        ctrl.send(("warm",))
    return {"t_end": time.perf_counter(), "rows": acc.rows, "sums": acc.sums, "reads": acc.batches}


def _consume_pipe(ctrl: Any, data: Any, p: dict[str, Any]) -> dict[str, Any]:
    schema: pa.Schema = p["schema"]
    ctrl.send(("ready",))
    acc = _Acc(p["ncols"])
    for i in range(p["batches"]):
        if i == p["warm"] and p["warm"]:
            ctrl.send(("warm",))
        if not data.poll(p["timeout"]):
            raise TimeoutError(f"no batch {i} within {p['timeout']} s")
        acc.add(pa.ipc.read_record_batch(pa.py_buffer(data.recv_bytes()), schema))
    if p["warm"] == p["batches"]:
        ctrl.send(("warm",))
    return {"t_end": time.perf_counter(), "rows": acc.rows, "sums": acc.sums, "reads": acc.batches}


def _pong_strand(ctrl: Any, p: dict[str, Any]) -> dict[str, Any]:
    view = strand.StrandView(p["ping"])
    writer = strand.StrandWriter(p["pong"])
    try:
        writer.begin()
        one = pa.RecordBatch.from_pydict({"x": pa.array([0], pa.int64())})
        ctrl.send(("ready",))
        seen = 0
        for _ in range(p["n"]):
            n = view.wait_for_commit(seen, timeout=p["timeout"])
            view.acknowledge_read(n)
            seen = n
            writer.write_record_batch(one)
        writer.finalize()
        return {"t_end": time.perf_counter(), "rows": seen, "sums": [], "reads": seen}
    finally:
        writer.close()
        view.close(timeout=1.0)


def _pong_pipe(ctrl: Any, data: Any, p: dict[str, Any]) -> dict[str, Any]:
    ctrl.send(("ready",))
    for _ in range(p["n"]):
        data.send_bytes(data.recv_bytes())
    return {"t_end": time.perf_counter(), "rows": p["n"], "sums": [], "reads": p["n"]}


def _worker(ctrl: Any, queue: Any, data: Any) -> None:
    """The consumer process: runs one command at a time until told to stop."""
    while True:
        try:
            msg = ctrl.recv()
        except EOFError:
            return
        kind, params = msg
        if kind == "stop":
            return
        try:
            if kind == "strand":
                result = _consume_strand(ctrl, params)
            elif kind == "cursor":
                result = _consume_cursor(ctrl, params)
            elif kind == "queue":
                result = _consume_queue(ctrl, queue, params)
            elif kind == "pipe":
                result = _consume_pipe(ctrl, data, params)
            elif kind == "pong-strand":
                result = _pong_strand(ctrl, params)
            elif kind == "pong-pipe":
                result = _pong_pipe(ctrl, data, params)
            else:
                raise ValueError(f"unknown command {kind!r}")
            ctrl.send(("done", result))
        except BaseException:
            ctrl.send(("error", traceback.format_exc()))


# -- the producer side (this process) ----------------------------------------------------


class BenchError(RuntimeError):
    pass


class Consumer:
    """The spawned consumer with its control pipe, a Queue and a data Pipe (peers c, d)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.ctx = mp.get_context("spawn")
        self.proc: Any = None
        self.start()

    def start(self) -> None:
        self.queue = self.ctx.Queue(maxsize=QUEUE_MAXSIZE)
        self.ctrl, child_ctrl = self.ctx.Pipe(duplex=True)
        self.data, child_data = self.ctx.Pipe(duplex=True)
        self.proc = self.ctx.Process(
            target=_worker, args=(child_ctrl, self.queue, child_data), daemon=True
        )
        self.proc.start()
        child_ctrl.close()
        child_data.close()

    def restart(self) -> None:
        self.kill()
        self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.join()
        self.queue.close()
        self.queue.cancel_join_thread()  # batches left in a dead consumer's queue are dropped

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.ctrl.send(("stop", {}))
        self.proc.join(10)
        self.kill()

    def send(self, kind: str, params: dict[str, Any]) -> None:
        self.ctrl.send((kind, params))

    def expect(self, what: str) -> Any:
        if not self.ctrl.poll(self.timeout):
            raise BenchError(f"the consumer sent no {what!r} within {self.timeout:g} s")
        try:
            msg = self.ctrl.recv()
        except EOFError:
            raise BenchError(f"the consumer died before {what!r}") from None
        if msg[0] == "error":
            raise BenchError("consumer failed:\n" + msg[1])
        if msg[0] != what:
            raise BenchError(f"expected {what!r} from the consumer, got {msg[0]!r}")
        return msg[1] if len(msg) > 1 else None


def _segment_name() -> str:
    return f"bench-{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def new_strand(schema: pa.Schema, index_capacity: int, heap: int) -> Iterator[strand.Segment]:
    """A fresh uniquely named strand, always unlinked and closed afterwards."""
    smap = strand.compute_strand_map(schema, index_capacity=index_capacity, heap_capacity=heap)
    seg = strand.create_strand(_segment_name(), smap)
    try:
        yield seg
    finally:
        seg.unlink()
        seg.close(timeout=1.0)


def _result(stream: Stream, t0: float, done: dict[str, Any]) -> dict[str, Any]:
    seconds = done["t_end"] - t0
    want_rows = stream.rows(0, stream.warm + stream.timed)
    if done["rows"] != want_rows:
        raise BenchError(f"the consumer reduced {done['rows']} records, not {want_rows}")
    if not sums_match(done["sums"], stream.expected()):
        raise BenchError(f"column sums differ: got {done['sums']}, want {stream.expected()}")
    nbytes = stream.nbytes(stream.warm, stream.warm + stream.timed)
    rows = stream.rows(stream.warm, stream.warm + stream.timed)
    return {
        "seconds": seconds,
        "bytes": nbytes,
        "rows": rows,
        "gbps": nbytes / seconds / 1e9,
        "recps": rows / seconds,
        "reads": done["reads"],
        **{k: v for k, v in done.items() if k.endswith("_s")},
    }


def run_ours(consumer: Consumer, stream: Stream, cfg: Config) -> dict[str, Any]:
    total = stream.warm + stream.timed
    with new_strand(stream.schema, INDEX_CAPACITY, cfg.heap) as seg:
        consumer.send(
            "strand",
            {
                "name": seg.name,
                "ncols": len(stream.schema),
                "rows": stream.rows(0, total),
                "warm_rows": stream.rows(0, stream.warm),
                "timeout": cfg.timeout,
            },
        )
        consumer.expect("ready")
        writer = strand.StrandWriter(seg)
        try:
            writer.begin()
            for batch in stream.batches(0, stream.warm):
                writer.write_record_batch(batch)
            if stream.warm:
                consumer.expect("warm")
            t0 = time.perf_counter()
            for batch in stream.batches(stream.warm, total):
                writer.write_record_batch(batch)
            t_written = time.perf_counter()
            writer.finalize()
            done = consumer.expect("done")
        finally:
            writer.close()
    return {**_result(stream, t0, done), "write_s": t_written - t0}


def run_queue(consumer: Consumer, stream: Stream, cfg: Config) -> dict[str, Any]:
    total = stream.warm + stream.timed
    consumer.send(
        "queue",
        {
            "ncols": len(stream.schema),
            "batches": total,
            "warm": stream.warm,
            "timeout": cfg.timeout,
        },
    )
    consumer.expect("ready")
    queue = consumer.queue
    for batch in stream.batches(0, stream.warm):
        queue.put(batch, timeout=cfg.timeout)
    if stream.warm:
        consumer.expect("warm")
    t0 = time.perf_counter()
    for batch in stream.batches(stream.warm, total):
        queue.put(batch, timeout=cfg.timeout)
    return _result(stream, t0, consumer.expect("done"))


def run_pipe(consumer: Consumer, stream: Stream, cfg: Config) -> dict[str, Any]:
    total = stream.warm + stream.timed
    consumer.send(
        "pipe",
        {
            "ncols": len(stream.schema),
            "schema": stream.schema,
            "batches": total,
            "warm": stream.warm,
            "timeout": cfg.timeout,
        },
    )
    consumer.expect("ready")
    conn = consumer.data
    for batch in stream.batches(0, stream.warm):
        conn.send_bytes(batch.serialize())
    if stream.warm:
        consumer.expect("warm")
    t0 = time.perf_counter()
    for batch in stream.batches(stream.warm, total):
        conn.send_bytes(batch.serialize())
    return _result(stream, t0, consumer.expect("done"))


RUNNERS = {"ours": run_ours, "cold": run_ours, "queue": run_queue, "pipe": run_pipe}


def run_cursor(consumer: Consumer, stream: Stream, cfg: Config) -> dict[str, Any]:
    """Write ``stream`` (no warm-up) and read every record with cursor getters."""
    total = stream.timed
    kinds = [
        "i64" if f.type == pa.int64() else "f64" if f.type == pa.float64() else "str"
        for f in stream.schema
    ]
    with new_strand(stream.schema, INDEX_CAPACITY, cfg.heap) as seg:
        consumer.send(
            "cursor",
            {
                "name": seg.name,
                "names": stream.schema.names,
                "kinds": kinds,
                "rows": stream.rows(0, total),
                "timeout": cfg.timeout,
            },
        )
        consumer.expect("ready")
        writer = strand.StrandWriter(seg)
        try:
            writer.begin()
            t0 = time.perf_counter()
            for batch in stream.batches(0, total):
                writer.write_record_batch(batch)
            writer.finalize()
            done = consumer.expect("done")
        finally:
            writer.close()
    return _result(stream, t0, done)


def cold_stream(warm: Stream, cfg: Config) -> Stream:
    """``warm``'s batches with no warm-up, one pass over a fresh heap (capped by max_batches):
    what a new strand delivers while each process still faults its pages in."""
    size = warm.pool[0].nbytes
    timed = min(cfg.max_batches, max(1, cfg.heap // size))
    return Stream(warm.kind, warm.pool, warm.pool_sums, 0, timed)


def cursor_stream(kind: str, cfg: Config) -> Stream:
    """``cfg.cursor_records`` records in 64 KiB batches."""
    rng = np.random.default_rng([7, SCHEMAS.index(kind)])
    rows = rows_for(kind, 64 * KIB)
    count = max(1, math.ceil(cfg.cursor_records / rows))
    pool = [make_batch(kind, rows, rng) for _ in range(min(count, 64))]
    return Stream(kind, pool, [reduce_batch(b) for b in pool], 0, count)


def run_ping_strand(consumer: Consumer, cfg: Config) -> dict[str, Any]:
    """Round trips of one record: parent writes to ``ping``, child answers on ``pong``."""
    schema = pa.schema([pa.field("x", pa.int64(), nullable=False)])
    warm = max(10, cfg.pings // 10)
    n = warm + cfg.pings
    one = pa.RecordBatch.from_pydict({"x": pa.array([0], pa.int64())}, schema=schema)
    rtts, writes = [], []
    with (
        new_strand(schema, 1024, 1 * MIB) as ping,
        new_strand(schema, 1024, 1 * MIB) as pong,
    ):
        view = strand.StrandView(pong)  # registered before the child can write
        try:
            consumer.send(
                "pong-strand",
                {"ping": ping.name, "pong": pong.name, "n": n, "timeout": cfg.timeout},
            )
            consumer.expect("ready")
            writer = strand.StrandWriter(ping)
            try:
                writer.begin()
                seen = 0
                for i in range(n):
                    t0 = time.perf_counter()
                    writer.write_record_batch(one)
                    t1 = time.perf_counter()
                    got = view.wait_for_commit(seen, timeout=cfg.timeout)
                    view.acknowledge_read(got)
                    t2 = time.perf_counter()
                    if got != seen + 1:
                        raise BenchError(f"round trip {i}: pong count {got}, want {seen + 1}")
                    seen = got
                    if i >= warm:
                        rtts.append(t2 - t0)
                        writes.append(t1 - t0)
                writer.finalize()
                consumer.expect("done")
            finally:
                writer.close()
        finally:
            view.close()
    return _latency(rtts, writes)


def run_ping_pipe(consumer: Consumer, cfg: Config) -> dict[str, Any]:
    warm = max(10, cfg.pings // 10)
    n = warm + cfg.pings
    consumer.send("pong-pipe", {"n": n})
    consumer.expect("ready")
    conn, msg, rtts = consumer.data, b"\0" * 8, []
    for i in range(n):
        t0 = time.perf_counter()
        conn.send_bytes(msg)
        if not conn.poll(cfg.timeout):
            raise BenchError(f"no pipe answer to round trip {i}")
        conn.recv_bytes()
        if i >= warm:
            rtts.append(time.perf_counter() - t0)
    consumer.expect("done")
    return _latency(rtts, [])


def run_fixed_cost(kind: str, cfg: Config) -> dict[str, Any]:
    """What a batch costs apart from its bytes, in one process: write_record_batch, read_batch
    and acknowledge_read of a 64-record batch, medians over ``cfg.pings`` batches."""
    batch = make_batch(kind, 64, np.random.default_rng([11, SCHEMAS.index(kind)]))
    clock = time.perf_counter
    parts: list[list[float]] = [[], [], []]
    with new_strand(batch.schema, 1 << 16, 16 * MIB) as seg:
        view = strand.StrandView(seg)
        writer = strand.StrandWriter(seg)
        try:
            writer.begin()
            seq = 0
            warm = max(10, cfg.pings // 10)
            for i in range(warm + cfg.pings):
                t0 = clock()
                writer.write_record_batch(batch)
                t1 = clock()
                got = view.read_batch(seq, seq + 64)
                t2 = clock()
                if not isinstance(got, pa.RecordBatch) or got.num_rows != 64:
                    raise BenchError(f"read_batch gave {got!r}, not one 64-record batch")
                del got
                seq += 64
                view.acknowledge_read(seq)
                t3 = clock()
                if i >= warm:
                    for part, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                        part.append(dt)
            writer.finalize()
        finally:
            writer.close()
            view.close(timeout=1.0)
    write, read, ack = (statistics.median(part) * 1e6 for part in parts)
    return {"write_us": write, "read_us": read, "ack_us": ack, "n": cfg.pings}


def _latency(rtts: list[float], writes: list[float]) -> dict[str, Any]:
    q = statistics.quantiles(rtts, n=100, method="inclusive")
    out = {"p50_us": statistics.median(rtts) * 1e6, "p99_us": q[98] * 1e6, "n": len(rtts)}
    if writes:
        out["write_p50_us"] = statistics.median(writes) * 1e6
    return out


def run_memcpy(src: np.ndarray, dst: np.ndarray) -> dict[str, Any]:
    """The median of a few copies (the machine is shared: one copy is a noisy sample)."""
    times = []
    for _ in range(MEMCPY_REPEATS):
        dst[0] = dst[-1] = -1.0
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
        if dst[-1] != src[-1] or dst[0] != src[0]:
            raise BenchError("copy incomplete")
    seconds = statistics.median(times)
    return {"seconds": seconds, "bytes": src.nbytes, "gbps": src.nbytes / seconds / 1e9}


def run_memcpy_shm(src: np.ndarray) -> dict[str, Any]:
    """The same copy into a pre-faulted shared-memory segment (4 KiB pages, unlike numpy's
    own large arrays): the physical limit of any copy into /dev/shm on this machine."""
    seg = strand.Segment.create(_segment_name(), src.nbytes)
    try:
        dst = np.frombuffer(seg.buf, np.float64, src.size)
        dst[:] = 0.0
        try:
            return run_memcpy(src, dst)
        finally:
            del dst
    finally:
        seg.unlink()
        seg.close(timeout=1.0)


# -- driver -------------------------------------------------------------------------------


def _parse_only(text: str) -> set[tuple[str, int]]:
    """``--only``'s workloads as (schema, batch bytes) pairs; empty means all."""
    sizes = {_fmt_size(n).replace(" ", ""): n for n in BATCH_SIZES}
    chosen = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, size = item.partition(":")
        if kind not in SCHEMAS or size not in sizes:
            raise SystemExit(
                f"--only: {item!r} is not a workload; use schema:size with a schema from "
                f"{', '.join(SCHEMAS)} and a size from {', '.join(sizes)}"
            )
        chosen.add((kind, sizes[size]))
    return chosen


def _fmt_size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB else f"{n // KIB} KiB"


def _median(store: ResultStore, key: str, runs: int, field: str) -> float | None:
    values = [
        r[field]
        for r in (store.rows.get(f"{key}|{run}") for run in range(runs))
        if r and not r.get("error") and field in r
    ]
    return statistics.median(values) if values else None


def _best(store: ResultStore, key: str, runs: int, field: str) -> float | None:
    values = [
        r[field]
        for r in (store.rows.get(f"{key}|{run}") for run in range(runs))
        if r and not r.get("error") and field in r
    ]
    return max(values) if values else None


def _g(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def _recs(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench/strand_bench.py", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for CI (a few seconds)")
    ap.add_argument("--scale", type=float, default=1.0, help="data size factor (default 1)")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement (default 3)")
    ap.add_argument("--fresh", action="store_true", help="discard stored results of this scale")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per wait (120)")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated batch workloads to run, e.g. fixed:1MiB,fixed:4MiB (for "
        "development: skips the others, the cursor and the wake-up measurements)",
    )
    args = ap.parse_args(argv)
    only = _parse_only(args.only)
    cfg = Config.make(args.quick, args.scale, args.timeout)
    scale = cfg.scale
    store = ResultStore(RESULTS / f"{NAME}.json")
    if args.fresh:
        store.discard_scale(scale)
    failures: list[str] = []

    def record(key: str, run: int, fn: Callable[[], dict[str, Any]]) -> None:
        full = f"{key}|{scale:g}|{run}"
        if store.has(full):
            return
        try:
            row = fn()
        except Exception as exc:
            row = {"error": f"{type(exc).__name__}: {exc}"}
            failures.append(f"{key} run {run + 1}: {row['error']}")
            consumer.restart()  # a consumer in an unknown state is replaced
        store.put(full, {"key": key, "scale": scale, "run": run, **row})
        shown = row.get("error") or (
            f"{row['gbps']:.2f} GB/s"
            if "gbps" in row
            else f"write {row['write_us']:.0f} us, read {row['read_us']:.0f} us"
            if "write_us" in row
            else f"p50 {row['p50_us']:.0f} us"
        )
        print(f"  {key:<28} run {run + 1}/{args.runs}: {shown}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    streams = {
        (k, s): make_stream(k, s, cfg)
        for k in SCHEMAS
        for s in BATCH_SIZES
        if not only or (k, s) in only
    }
    cold = {key: cold_stream(st, cfg) for key, st in streams.items()}
    cursors = {} if only else {k: cursor_stream(k, cfg) for k in SCHEMAS}
    src = np.random.default_rng(3).random(cfg.memcpy_bytes // 8)
    dst = np.zeros_like(src)  # written once: every page faulted in before timing
    np.copyto(dst, src)
    consumer = Consumer(cfg.timeout)
    try:
        for run in range(args.runs):
            for (kind, size), stream in streams.items():
                for engine in ENGINES:
                    key = f"batches|{kind}|{size}|{engine}"
                    st = cold[kind, size] if engine == "cold" else stream
                    record(key, run, functools.partial(RUNNERS[engine], consumer, st, cfg))
            for kind in dict.fromkeys(k for k, _ in streams):
                record(f"fixed-cost|{kind}", run, functools.partial(run_fixed_cost, kind, cfg))
            for kind, stream in cursors.items():
                record(f"cursor|{kind}", run, functools.partial(run_cursor, consumer, stream, cfg))
            record("memcpy", run, lambda: run_memcpy(src, dst))
            record("memcpy-shm", run, lambda: run_memcpy_shm(src))
            if not only:
                record("wake|strand", run, lambda: run_ping_strand(consumer, cfg))
                record("wake|pipe", run, lambda: run_ping_pipe(consumer, cfg))
    finally:
        consumer.stop()
        leftovers = [
            n for n in os.listdir("/dev/shm") if n.startswith(f"strand-bench-{os.getpid()}-")
        ]
        for n in leftovers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join("/dev/shm", n))
        if leftovers:
            failures.append(f"segments left in /dev/shm (now removed): {leftovers}")

    print(report(store, cfg, args.runs, time.perf_counter() - started))
    if failures:
        print("\nFAILURES:\n" + "\n".join(failures))
        sys.exit(1)


def report(store: ResultStore, cfg: Config, runs: int, elapsed: float) -> str:
    s = f"{cfg.scale:g}"

    def med(key: str, field: str) -> float | None:
        return _median(store, f"{key}|{s}", runs, field)

    memcpy = med("memcpy", "gbps")
    label = "quick" if cfg.scale == 0 else f"scale {s}"
    lines = [
        f"### strand_bench ({label}, median of {runs} runs, {elapsed:.0f} s)",
        "",
        "Two processes (producer, consumer) unless noted; GB/s of Arrow payload; every consumer "
        "sums every column.",
        "",
        "| workload | batch | ours GB/s | ours rec/s | ours cold GB/s | Queue GB/s "
        "| Pipe+IPC GB/s | memcpy GB/s | ours/Queue | ours/Pipe | ours/memcpy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    targets: list[str] = []
    for kind in SCHEMAS:
        for size in BATCH_SIZES:
            base = f"batches|{kind}|{size}"
            ours, recs = med(f"{base}|ours", "gbps"), med(f"{base}|ours", "recps")
            queue, pipe = med(f"{base}|queue", "gbps"), med(f"{base}|pipe", "gbps")
            cold = med(f"{base}|cold", "gbps")
            to_q = ours / queue if ours and queue else None
            to_p = ours / pipe if ours and pipe else None
            to_m = ours / memcpy if ours and memcpy else None
            lines.append(
                f"| {kind} | {_fmt_size(size)} | {_g(ours)} | {_recs(recs)} | {_g(cold)} "
                f"| {_g(queue)} "
                f"| {_g(pipe)} | {_g(memcpy)} | {_g(to_q, '.1f')}x | {_g(to_p, '.1f')}x "
                f"| {_g(to_m)}x |"
            )
            if kind == "fixed" and size >= MIB:
                ok_m = to_m is not None and to_m >= 0.7
                ok_q = to_q is not None and to_q >= 20
                best = _best(store, f"{base}|ours|{s}", runs, "gbps")
                targets.append(
                    f"- fixed {_fmt_size(size)}: ours/memcpy {_g(to_m)} (target >= 0.7: "
                    f"{'met' if ok_m else 'MISSED'}), ours/Queue {_g(to_q, '.1f')} (target >= 20: "
                    f"{'met' if ok_q else 'MISSED'}); best run {_g(best)} GB/s = "
                    f"{_g(best / memcpy if best and memcpy else None)} x memcpy"
                )
    for kind in SCHEMAS:
        key = f"cursor|{kind}"
        lines.append(
            f"| {kind}, cursor getters | 64 KiB | {_g(med(key, 'gbps'), '.3f')} "
            f"| {_recs(med(key, 'recps'))} | - | - | - | {_g(memcpy)} | - | - "
            f"| {_g((med(key, 'gbps') or 0) / memcpy if memcpy else None, '.3f')}x |"
        )
    shm = med("memcpy-shm", "gbps")
    lines += [
        f"| memcpy (numpy.copyto, one process) | {_fmt_size(cfg.memcpy_bytes)} | - | - | - | - "
        f"| - | {_g(memcpy)} | - | - | 1x |",
        f"| memcpy into /dev/shm (one process) | {_fmt_size(cfg.memcpy_bytes)} | {_g(shm)} | - "
        f"| - | - | - | {_g(memcpy)} | - | - | {_g(shm / memcpy if shm and memcpy else None)}x |",
    ]
    lines += [
        "",
        f"ours: StrandWriter.write_record_batch -> StrandView.read_batch, steady state (after an "
        f"untimed pass over the {_fmt_size(cfg.heap)} heap), up to {_fmt_size(cfg.timed_bytes)} "
        f"or {cfg.max_batches} batches per measurement; ours cold: the first pass over a fresh "
        "strand, while both processes still fault its pages in; Queue: multiprocessing.Queue "
        f"(maxsize {QUEUE_MAXSIZE}) of pickled batches; Pipe+IPC: RecordBatch.serialize() -> "
        "Connection.send_bytes -> pa.ipc.read_record_batch; memcpy: numpy.copyto into "
        f"pre-faulted memory, median of {MEMCPY_REPEATS}; cursor: seek + one typed getter per "
        "field per record. Consumers reduce with pc.sum (strings: sum of binary_length, "
        "which reads offsets only, for every engine).",
    ]
    lines += [
        "",
        "Where ours spends its time (timed part, medians of runs): per committed batch, the "
        "elapsed time, the producer's write_record_batch, and the consumer's wait_for_commit, "
        "read_batch, reduction and acknowledge_read (the consumer's parts add up to the "
        "elapsed time; waiting means the producer was the slower side).",
        "",
        "| workload | batch | elapsed us | write us | wait us | read_batch us | reduce us "
        "| ack us | reads per batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in SCHEMAS:
        for size in BATCH_SIZES:
            key = f"batches|{kind}|{size}|ours"
            batches = med(key, "rows")
            rows_per = rows_for(kind, size)
            n = batches / rows_per if batches else None

            def per(field: str, n: float | None = n, key: str = key) -> str:
                v = med(key, field)
                return _g(v / n * 1e6 if v is not None and n else None, ".0f")

            reads = med(key, "reads")
            lines.append(
                f"| {kind} | {_fmt_size(size)} | {per('seconds')} | {per('write_s')} "
                f"| {per('wait_s')} | {per('read_s')} | {per('reduce_s')} | {per('ack_s')} "
                f"| {_g(reads / n if reads is not None and n else None)} |"
            )
    lines += [
        "",
        "Per-batch fixed cost (one process, a 64-record batch, median of "
        f"{cfg.pings} batches, medians of runs): what a batch costs apart from its bytes.",
        "",
        "| schema | write_record_batch us | read_batch us | acknowledge_read us |",
        "|---|---:|---:|---:|",
    ]
    for kind in SCHEMAS:
        key = f"fixed-cost|{kind}"
        lines.append(
            f"| {kind} | {_g(med(key, 'write_us'), '.1f')} | {_g(med(key, 'read_us'), '.1f')} "
            f"| {_g(med(key, 'ack_us'), '.1f')} |"
        )
    p50, p99 = med("wake|strand", "p50_us"), med("wake|strand", "p99_us")
    write = med("wake|strand", "write_p50_us")
    pp50, pp99 = med("wake|pipe", "p50_us"), med("wake|pipe", "p99_us")
    lines += [
        "",
        f"Wake-up round trip ({cfg.pings} pings, median of runs' percentiles):",
        "",
        "| transport | p50 us | p99 us |",
        "|---|---:|---:|",
        f"| strand: 1-record write_record_batch -> wait_for_commit, both ways | {_g(p50, '.0f')} "
        f"| {_g(p99, '.0f')} |",
        f"| multiprocessing.Pipe: 8-byte send_bytes/recv_bytes, both ways | {_g(pp50, '.0f')} "
        f"| {_g(pp99, '.0f')} |",
        "",
        f"Of the strand round trip, the writer's own 1-record write_record_batch takes "
        f"{_g(write, '.0f')} us (p50), paid twice per round trip.",
        "",
        "Targets:",
        *targets,
        f"- wake-up round trip p50 {_g(p50, '.0f')} us (target <= 100: "
        f"{'met' if p50 is not None and p50 <= 100 else 'MISSED'})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
