"""The local pool's worker process: receives tasks as JSON over a pipe, runs them with
:func:`elytra.task.execute`, and returns their rows over a strand ring.

The protocol (every control message is a small JSON object sent with ``send_bytes``):

driver -> worker
    ``{"op": "task", "task": <Task JSON>, "spill": dir, "ring": name | null, "rings": [...],
    "inline": bytes}``
        run a task; ``spill`` is this attempt's own spill directory (the driver removes it
        afterwards, also when it had to kill the worker); ``ring`` is the ring the driver
        holds for this worker and the task's stage, if any; ``rings`` every ring it still
        holds for this worker (writers on other rings are closed); a result of at most
        ``inline`` Arrow bytes comes as IPC (below), not through a ring.
    ``{"op": "ring", "name": name}``  the answer to ``need_ring``.
    ``{"op": "stop"}``  exit.

worker -> driver
    ``{"op": "ready", "pid": pid}``  once, after start-up.
    ``{"op": "need_ring", "schema": <base64 Arrow IPC schema>}``  the result needs a ring of
        this schema (first result of a stage on this worker, or a different schema).
    ``{"op": "stream", "ring": name}``  the stream was reset and begun: read it.
    ``{"op": "done", "via": "strand" | "empty", ...}``  after ``finalize()``; carries
        ``seconds``, ``stats``, ``rows`` and ``schema`` (the result's exact Arrow schema, which
        the driver casts the ring's batches back to).
    ``{"op": "ipc", ...}`` followed by one raw message of Arrow IPC stream bytes: a small
        result, or the fallback for a result strand cannot hold (a type outside strand's vocabulary, a dictionary
        column, a list with null elements).
    ``{"op": "error", "module", "type", "message", "details", "traceback", "retryable"}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

__all__ = ["decode_schema", "encode_schema", "main", "strand_schema"]

_WRITE_TIMEOUT = 24 * 3600.0  # backpressure waits are bounded by the driver's lease instead


def encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def strand_schema(schema: pa.Schema) -> Any:
    """The ``StrandSchema`` for an Arrow schema, or None when strand cannot hold it (a type
    outside its vocabulary, or a string dictionary, which strand would intern)."""
    from strand import StrandConfigError, StrandSchema

    try:
        sschema = StrandSchema.of(schema)
    except StrandConfigError:
        return None
    if any(f.type.kind == "utf8_ref" for f in sschema):
        return None
    return sschema


def _send(conn: Connection, msg: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps(msg, separators=(",", ":")).encode())


def _recv(conn: Connection) -> dict[str, Any]:
    return json.loads(conn.recv_bytes())  # type: ignore[no-any-return]


def _watch_parent(parent: int) -> None:
    """Exit when the driver is gone (a SIGKILLed driver cannot stop its workers)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


def _error_message(exc: BaseException) -> dict[str, Any]:
    from .retry import describe_error

    return {"op": "error", **describe_error(exc)}


class _Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.writers: dict[str, Any] = {}  # ring name -> StrandWriter

    def serve(self) -> None:
        _send(self.conn, {"op": "ready", "pid": os.getpid()})
        while True:
            try:
                msg = _recv(self.conn)
            except (EOFError, OSError):
                break
            if msg["op"] == "stop":
                break
            if msg["op"] == "task":
                self._forget(set(msg.get("rings", ())))
                self.run_task(msg)
        self._forget(set())

    def _forget(self, keep: set[str]) -> None:
        for name in [n for n in self.writers if n not in keep]:
            writer = self.writers.pop(name)
            with contextlib.suppress(Exception):
                writer.close()

    def run_task(self, msg: dict[str, Any]) -> None:
        from .task import Task, execute

        task = Task.from_json(msg["task"])
        try:
            result = execute(replace(task, spill_dir=msg["spill"]))
        except Exception as exc:
            _send(self.conn, _error_message(exc))
            return
        table = result.table
        base = {
            "seconds": result.seconds,
            "stats": result.stats,
            "rows": table.num_rows,
            "schema": encode_schema(table.schema),
        }
        try:
            if table.num_rows == 0:
                _send(self.conn, {"op": "done", "via": "empty", **base})
                return
            if table.nbytes <= int(msg.get("inline", 0)):  # small: the pipe, not a ring
                self._send_ipc(table, base)
                return
            sschema = strand_schema(table.schema)
            if sschema is None or not self._stream(msg.get("ring"), sschema, table):
                self._send_ipc(table, base)
                return
            _send(self.conn, {"op": "done", "via": "strand", **base})
        except Exception as exc:
            _send(self.conn, _error_message(exc))

    def _stream(self, ring: str | None, sschema: Any, table: pa.Table) -> bool:
        """Write ``table`` into this stage's ring; False if strand refused a value before
        publishing anything (then the caller falls back to IPC)."""
        from strand import StrandValueError, StrandWriter

        writer = self.writers.get(ring) if ring else None
        if writer is None or writer.schema != sschema:
            _send(self.conn, {"op": "need_ring", "schema": encode_schema(table.schema)})
            reply = _recv(self.conn)
            ring = reply["name"]
            assert ring is not None
            writer = self.writers.get(ring)  # a spare ring this worker wrote before
            if writer is None or writer.schema != sschema:
                if writer is not None:  # one writer per ring and process: the old one goes
                    writer.close()
                writer = StrandWriter(ring, timeout=_WRITE_TIMEOUT)
                self.writers[ring] = writer
        writer.reset()
        writer.begin()  # before "stream": the driver must never see the last task's eos
        _send(self.conn, {"op": "stream", "ring": ring})
        try:
            writer.write_record_batch(table)
        except StrandValueError:
            published = writer.committed_count
            writer.abort()
            if published:
                raise
            return False
        except BaseException:
            with contextlib.suppress(Exception):
                writer.abort()
            raise
        writer.finalize()
        return True

    def _send_ipc(self, table: pa.Table, base: dict[str, Any]) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as out:
            out.write_table(table)
        data = sink.getvalue()
        _send(self.conn, {"op": "ipc", "via": "ipc", "bytes": data.size, **base})
        self.conn.send_bytes(memoryview(data))


def main(conn: Connection, parent: int) -> None:
    """The worker process's entry point (started with the ``spawn`` context)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from . import task  # noqa: F401 - import emsqrt and pyarrow before saying ready

    _Worker(conn).serve()
