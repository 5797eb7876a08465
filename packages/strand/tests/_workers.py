"""Producer and consumer processes for the tests, and the data they agree on.

Run as ``python _workers.py COMMAND NAME [options as key=value]``; prints one JSON line.
Data is deterministic: batch ``i`` of a stream holds ids ``i*rows .. (i+1)*rows - 1`` with
strings and arrays derived from the id, so a consumer can check every value it reads.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("x", pa.float64()),
        pa.field("s", pa.utf8()),
        pa.field("a", pa.list_(pa.int32())),
    ]
)


def make_batch(i: int, rows: int) -> pa.RecordBatch:
    """Batch ``i``: ``rows`` ids from ``i * rows``, with the columns derived from them."""
    return build(pa.array(np.arange(i * rows, (i + 1) * rows, dtype=np.int64)))


def build(ids: pa.Array) -> pa.RecordBatch:
    """The batch for these ids: a float with a null every 7th id, a string and an int32
    array whose lengths vary with the id."""
    values = ids.to_numpy()
    x = pa.array(values * 0.5, mask=(values % 7 == 0))
    lengths = (values % 5).astype(np.int64) + 1
    s = pa.array([f"{v}:" + "z" * int(n) * 3 for v, n in zip(values, lengths, strict=True)])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    a = pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(np.repeat(values.astype(np.int32), lengths), pa.int32())
    )
    return pa.RecordBatch.from_arrays([ids, x, s, a], schema=SCHEMA)


def check_batch(batch: pa.RecordBatch) -> None:
    """Recompute the expected content from the ids and compare every value."""
    if batch.num_rows and not batch.equals(build(batch.column("id"))):
        raise AssertionError(f"batch at id {batch.column('id')[0]} differs from what was written")


def spawn(*args: Any) -> subprocess.Popen[str]:
    """Run a worker command (see _workers.py) in a new Python process."""
    return subprocess.Popen(
        [sys.executable, __file__, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """Wait for a worker and parse the JSON it printed last."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err}"
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def wait_line(proc: subprocess.Popen[str], expected: str, timeout: float = 30) -> None:
    """Read the worker's stdout until a line equals ``expected``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"worker did not print {expected!r} within {timeout} s"
    line = proc.stdout.readline().strip()
    assert line == expected, f"worker printed {line!r}, expected {expected!r}"


def _args(argv: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in argv:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    return out


def produce(name: str, batches: int = 10, rows: int = 100, timeout: float = 30.0) -> None:
    import strand

    writer = strand.StrandWriter(name, timeout=timeout)
    writer.begin()
    print("started", flush=True)
    written = 0
    try:
        for i in range(batches):
            written += writer.write_record_batch(make_batch(i, rows))
    except strand.StrandAbortError:
        writer.abort()
        print(json.dumps({"aborted": True, "written": written}), flush=True)
        return
    writer.finalize()
    writer.close()
    print(json.dumps({"written": written}), flush=True)


def produce_torn(name: str, rows: int = 100) -> None:
    """Commit one batch, then claim a second and fill half of it, then wait to be killed."""
    import strand

    writer = strand.StrandWriter(name)
    writer.begin()
    writer.write_record_batch(make_batch(0, rows))
    claim = writer.claim_slots(rows)
    ids = claim.columns["id"].values
    assert ids is not None
    ids[: rows // 2] = np.arange(rows, rows + rows // 2)
    print("half", flush=True)
    time.sleep(600)


def consume(
    name: str,
    slow: float = 0.0,
    stop_after: int = -1,
    register_only: bool = False,
    timeout: float = 20.0,
) -> None:
    """Read everything until eos (checking every value), reducing every column."""
    import strand

    view = strand.StrandView(name)
    print("ready", flush=True)
    if register_only:
        time.sleep(600)
    seen = 0
    total = 0
    batches = 0
    started = time.process_time()
    while True:
        count = view.wait_for_commit(seen, timeout)
        if count > seen:
            for batch in view.read_batches(seen, count):
                check_batch(batch)
                total += pc.sum(batch.column("id")).as_py()
                batches += 1
                del batch
            view.acknowledge_read(count)
            seen = count
            if slow:
                time.sleep(slow)
            if 0 <= stop_after <= seen:
                print("stalled", flush=True)
                time.sleep(600)
        if view.status in ("eos", "error") and view.committed_count == seen:
            break
    status = view.status
    view.close()
    print(
        json.dumps(
            {
                "records": seen,
                "sum": total,
                "status": status,
                "batches": batches,
                "cpu": time.process_time() - started,
            }
        ),
        flush=True,
    )


def wait_blocked(name: str, seconds: float = 5.0) -> None:
    """Block in wait_for_commit for ``seconds`` (nothing is written) and report CPU used."""
    import strand

    view = strand.StrandView(name)
    print("ready", flush=True)
    started_cpu = time.process_time()
    started = time.monotonic()
    try:
        view.wait_for_commit(0, seconds)
        outcome = "woke"
    except strand.StrandTimeoutError:
        outcome = "timeout"
    wall = time.monotonic() - started
    cpu = time.process_time() - started_cpu
    view.close()
    print(json.dumps({"outcome": outcome, "wall": wall, "cpu": cpu}), flush=True)


def abort_after(name: str, records: int = 1) -> None:
    """Consume until ``records`` are committed, then signal abort."""
    import strand

    view = strand.StrandView(name)
    print("ready", flush=True)
    count = view.wait_for_commit(records - 1, 20)
    view.signal_abort()
    started = time.monotonic()
    view.close()
    print(json.dumps({"count": count, "t": started}), flush=True)


COMMANDS = {
    "produce": produce,
    "produce_torn": produce_torn,
    "consume": consume,
    "wait_blocked": wait_blocked,
    "abort_after": abort_after,
}

if __name__ == "__main__":
    command, segment, *rest = sys.argv[1:]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    COMMANDS[command](segment, **_args(rest))  # type: ignore[operator]
