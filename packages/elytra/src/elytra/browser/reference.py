"""The protocol's reference worker, in Python: what a browser tab does, for tests and tools.

``ReferenceWorker(base_url, token, concurrency)`` connects to ``<base_url>/ws`` (``base_url``
is the worker routes' root, e.g. ``http://127.0.0.1:8080/api/workers``), says ``hello``, and
for each ``task`` fetches its chunk (``GET <base_url>/chunks/{task_id}?worker=<id>``, an Arrow
IPC stream), runs the steps with :func:`~elytra.browser.evaluate.evaluate_steps`, and sends a
``result`` header and the rows as one binary frame (Arrow IPC stream). It heartbeats every
``heartbeat_seconds`` the server asked for. ``tamper`` changes each result before it is sent
(a lying worker, for tests); ``delay`` sleeps before each task (a slow one).

``python -m elytra.browser.reference URL TOKEN [--concurrency N]`` runs one until killed.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from platform_core.http import http_client

from .evaluate import evaluate_steps
from .tasks import schema_from_b64

__all__ = ["ReferenceWorker", "main"]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


class ReferenceWorker:
    """One worker connection (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        concurrency: int = 1,
        *,
        tamper: Callable[[pa.Table], pa.Table] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.concurrency = concurrency
        self.tamper = tamper
        self.delay = delay
        self.welcome: dict[str, Any] = {}
        self.started: list[str] = []
        """Task ids this worker began, in order."""
        self.accepted: list[str] = []
        self.rejected: list[tuple[str, str]] = []
        self.errors: list[str] = []
        """What went wrong in this worker's tasks (it told the server each)."""
        self.banned = threading.Event()
        self.closed = threading.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        """The server's close frame, when it closed the connection."""
        self._conn: ClientConnection | None = None
        self._send_lock = threading.Lock()
        self._cancelled: set[str] = set()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> ReferenceWorker:
        """Connect and serve tasks in a background thread; returns once welcomed."""
        self._thread = threading.Thread(target=self.run, name="reference-worker", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.ready.wait(0.05):
            if self.closed.is_set():
                raise RuntimeError(f"the worker was not welcomed: {self.close_reason or 'closed'}")
            if time.monotonic() > deadline:
                raise RuntimeError("the worker was not welcomed in time")
        return self

    def stop(self) -> None:
        """Close the connection cleanly."""
        if self._conn is not None:
            self._conn.close()
        if self._thread is not None:
            self._thread.join(10)

    def kill(self) -> None:
        """Drop the connection without a closing handshake (a tab closed, a crash)."""
        if self._conn is not None:
            self._conn.socket.close()
        if self._thread is not None:
            self._thread.join(10)

    def run(self) -> None:
        ws_url = self.base_url.replace("http", "ws", 1) + "/ws"
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            with connect(ws_url, additional_headers=headers, max_size=None) as conn:
                self._conn = conn
                self._send({"type": "hello", "concurrency": self.concurrency})
                self.welcome = json.loads(conn.recv())
                self.ready.set()
                beat = threading.Thread(target=self._heartbeat, daemon=True)
                beat.start()
                for raw in conn:
                    msg = json.loads(raw)
                    kind = msg.get("type")
                    if kind == "task":  # the server sends at most `concurrency` at once
                        threading.Thread(target=self._task, args=(msg,), daemon=True).start()
                    elif kind == "cancel":
                        self._cancelled.add(msg["task_id"])
                    elif kind == "accepted":
                        self.accepted.append(msg["task_id"])
                    elif kind == "rejected":
                        self.rejected.append((msg["task_id"], msg.get("reason", "")))
                    elif kind == "banned":
                        self.banned.set()
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                self.close_code, self.close_reason = exc.rcvd.code, exc.rcvd.reason
        except InvalidStatus as exc:  # refused at the handshake (a bad or revoked token)
            self.close_reason = f"refused with HTTP {exc.response.status_code}"
        except OSError:
            pass
        finally:
            if self._conn is not None and self._conn.close_code is not None:
                self.close_code = self.close_code or self._conn.close_code
                self.close_reason = self.close_reason or (self._conn.close_reason or "")
            self.closed.set()

    # -- work ---------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any], data: bytes | None = None) -> None:
        assert self._conn is not None
        with self._send_lock:
            self._conn.send(json.dumps(message))
            if data is not None:
                self._conn.send(data)

    def _heartbeat(self) -> None:
        every = float(self.welcome.get("heartbeat_seconds", 3.0))
        while not self.closed.wait(every):
            try:
                self._send({"type": "heartbeat"})
            except (ConnectionClosed, OSError):
                return

    def _task(self, msg: dict[str, Any]) -> None:
        task_id, attempt = msg["task_id"], msg["attempt"]
        self.started.append(task_id)
        try:
            if self.delay and self.closed.wait(self.delay):
                return
            path = str(self.welcome["chunk_path"]).replace("{task_id}", task_id)
            with http_client(token=self.token, timeout=60) as client:
                response = client.get(f"{self.base_url}/{path}")
            response.raise_for_status()
            rows = pa.ipc.open_stream(response.content).read_all()
            table = evaluate_steps(msg["steps"], rows, schema_from_b64(msg["schema"]))
            if self.tamper is not None:
                table = self.tamper(table)
            if task_id in self._cancelled:
                return
            data = _ipc(table)
            header = {"type": "result", "task_id": task_id, "attempt": attempt}
            self._send({**header, "bytes": len(data)}, data)
        except (ConnectionClosed, OSError):
            return
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            try:
                self._send(
                    {
                        "type": "error",
                        "task_id": task_id,
                        "attempt": attempt,
                        "message": str(exc)[:2000],
                    }
                )
            except (ConnectionClosed, OSError):
                return


def main(argv: list[str] | None = None) -> None:
    """Run one reference worker until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", help="the worker routes' root, e.g. http://host:8080/api/workers")
    parser.add_argument("token", help="a worker token")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each task")
    args = parser.parse_args(argv)
    worker = ReferenceWorker(args.url, args.token, args.concurrency, delay=args.delay)
    print(json.dumps({"started": True}), flush=True)
    worker.run()


if __name__ == "__main__":
    main()
