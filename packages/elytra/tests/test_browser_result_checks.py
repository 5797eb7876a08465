"""A browser worker's result is checked before it is kept: compressed or malformed streams,
too many rows, held tasks. Break-test "break15": results a hostile browser worker sends
that pyarrow reads but must not be kept.

A zstd- or lz4-compressed Arrow IPC stream of a few KiB decompresses to gigabytes while it is
read (the result size limit checked only the bytes on the wire), and a stream whose string
offsets run backwards reads fine but makes pyarrow's kernels read outside the buffers (the
driver's final aggregate then segfaults or copies other memory into the job's result). Both
must be refused (``rejected``) like any other bad result, before they reach the merge.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import elytra
from elytra.browser import WorkerHub, browser_task, evaluate_steps
from elytra.browser.api import read_chunk
from elytra.browser.tasks import BrowserTask

from .conftest import write_parts


def _task(tmp_path: Path) -> BrowserTask:
    """A browser task whose result has a string column: a partial aggregate by ``s``."""
    parts = write_parts(tmp_path / "parts", parts=1, rows=500)
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        pipeline = s.read_parquet(f"{parts}/*.parquet").group_by("s").agg("count(*) AS n")
        plan, (task,) = s.driver.plan(pipeline, "j", tmp_path)  # type: ignore[union-attr]
    bt = browser_task(plan.stages[0], task)
    assert bt is not None
    assert pa.types.is_string(bt.schema.field(0).type)
    return bt


def _ipc(table: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def backwards_offsets(table: pa.Table) -> bytes:
    """``table`` as an IPC stream whose first string column's offsets run backwards (the
    first and last offsets stay, so pyarrow's cheap checks on reading pass)."""
    column = next(i for i, f in enumerate(table.schema) if pa.types.is_string(f.type))
    array = table.column(column).combine_chunks()
    assert len(array) >= 3
    honest = array.buffers()[1].to_pybytes()[array.offset * 4 : (array.offset + len(array) + 1) * 4]
    offsets = list(struct.unpack(f"<{len(array) + 1}i", honest))
    offsets[1] = offsets[-1]  # row 0 spans everything, row 1 has a negative length
    data = bytearray(_ipc(table.combine_chunks()))
    at = data.find(honest)
    assert at > 0
    data[at : at + len(honest)] = struct.pack(f"<{len(offsets)}i", *offsets)
    return bytes(data)


def _deliver(hub: WorkerHub, bt: BrowserTask, data: bytes) -> tuple[str | None, tuple]:  # type: ignore[type-arg]
    sent: list[dict[str, object]] = []
    run = hub.open_run()
    worker = hub.join("tab", 1, sent.append, lambda code, reason: None)
    hub.offer(run, bt)
    assert sent[-1]["type"] == "task"
    reason = hub.deliver(worker, {"task_id": bt.id, "attempt": bt.task.attempt}, data)
    return reason, run.events.get_nowait()


def test_a_result_with_backwards_string_offsets_is_refused(tmp_path: Path) -> None:
    bt = _task(tmp_path)
    honest = evaluate_steps(list(bt.steps), _rows(bt), bt.schema)
    assert honest.num_rows >= 3
    data = backwards_offsets(honest)
    pa.ipc.open_stream(data).read_all()  # pyarrow reads it without a complaint
    reason, event = _deliver(WorkerHub(), bt, data)
    assert reason is not None
    assert "invalid Arrow data" in reason
    assert event[0] == "failed", "a result with broken offsets was accepted"


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_a_compressed_result_is_refused_before_it_is_decompressed(
    tmp_path: Path, codec: str
) -> None:
    bt = _task(tmp_path)
    rows = 4_000_000  # 32 MiB per integer column once decompressed: over the 16 MiB limit
    table = pa.table(
        {
            f.name: pa.array(np.zeros(rows, dtype=np.int64)).cast(f.type)
            if not pa.types.is_string(f.type)
            else pa.array(np.full(rows, "u1", dtype=object), f.type)
            for f in bt.schema
        },
        schema=bt.schema,
    )
    data = _ipc(table, codec)
    hub = WorkerHub()
    assert len(data) < hub.max_result_bytes  # small on the wire
    reason, event = _deliver(hub, bt, data)
    assert reason is not None
    assert "compressed" in reason
    assert event[0] == "failed"


def _rows(bt: BrowserTask) -> pa.Table:
    return pa.ipc.open_stream(read_chunk(bt.scan)).read_all()


def test_heartbeats_do_not_hold_a_task_past_max_task_seconds(tmp_path: Path) -> None:
    """A worker that heartbeats but never answers held its tasks for ever (every heartbeat
    extended the lease): a job waited on it until the job timeout failed it. An attempt now
    ends ``max_task_seconds`` after the task was handed out, heartbeats or not."""
    bt = _task(tmp_path)
    hub = WorkerHub(lease_seconds=0.5, max_task_seconds=1.5)
    run = hub.open_run()
    sent: list[dict[str, object]] = []
    worker = hub.join("tab", 1, sent.append, lambda code, reason: None)
    hub.offer(run, bt)
    assert sent[-1]["type"] == "task"
    deadline = time.monotonic() + 5
    while run.events.empty():
        assert time.monotonic() < deadline, "the lease never ended"
        hub.heartbeat(worker)
        hub.expire()
        time.sleep(0.1)
    event = run.events.get_nowait()
    assert event[0] == "failed"
    assert "1.5 s" in event[3]
    assert sent[-1] == {"type": "cancel", "task_id": bt.id}


def test_a_result_with_more_rows_than_the_task_can_give_is_refused(tmp_path: Path) -> None:
    """A worker could pad a result up to the size limit (results wait, outside the driver's
    cap, until the job's checks end) or drop rows: a partial aggregate by key has at most the
    chunk's rows, one without keys exactly one."""
    bt = _task(tmp_path)
    honest = evaluate_steps(list(bt.steps), _rows(bt), bt.schema)
    fewest, most = bt.row_bounds()
    assert (fewest, most) == (0, 500)
    assert _deliver(WorkerHub(), bt, _ipc(honest))[0] is None
    padded = pa.concat_tables([honest] * (most // honest.num_rows + 1))
    reason, event = _deliver(WorkerHub(), bt, _ipc(padded))
    assert reason is not None
    assert f"{padded.num_rows} rows where 0 to 500 are possible" in reason
    assert event[0] == "failed"


def test_a_keyless_aggregate_must_give_exactly_one_row(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "parts", parts=1, rows=500)
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        pipeline = s.read_parquet(f"{parts}/*.parquet").agg("count(*) AS n")
        plan, (task,) = s.driver.plan(pipeline, "j", tmp_path)  # type: ignore[union-attr]
    bt = browser_task(plan.stages[0], task)
    assert bt is not None
    assert bt.row_bounds() == (1, 1)
    honest = evaluate_steps(list(bt.steps), _rows(bt), bt.schema)
    assert honest.num_rows == 1
    assert _deliver(WorkerHub(), bt, _ipc(honest))[0] is None
    for wrong in (honest.slice(0, 0), pa.concat_tables([honest, honest])):
        reason, event = _deliver(WorkerHub(), bt, _ipc(wrong))
        assert reason is not None
        assert "where 1 to 1 are possible" in reason
        assert event[0] == "failed"
