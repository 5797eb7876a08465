"""Hostile browser workers can neither crash, corrupt nor hold a job (break-test "break15"),
against the installed `platform up` (ELYTRA_BACKEND=browser).

Each hostile worker is a raw WebSocket client (the `websockets` package) speaking the protocol
of ``packages/elytra/README.md`` with a worker token an admin minted; the job's result is
compared with DuckDB's, and the platform must still be up afterwards.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from worker_tabs import browser_backend_env

from elytra.browser.evaluate import evaluate_steps
from elytra.browser.tasks import schema_from_b64
from lake import Client
from platform_core import PlatformSettings, auth, load_settings
from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]
OnTask = Callable[["Hostile", dict[str, Any], pa.Table], None]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def backwards_offsets(table: pa.Table) -> bytes | None:
    """``table`` as an IPC stream whose first string column's offsets run backwards (pyarrow
    reads it; its kernels then read outside the buffers). None if it has no such column."""
    table = table.combine_chunks()
    column = next((i for i, f in enumerate(table.schema) if pa.types.is_string(f.type)), None)
    if column is None or table.num_rows < 3:
        return None
    array = table.column(column).chunk(0)
    raw = array.buffers()[1].to_pybytes()
    honest = raw[array.offset * 4 : (array.offset + len(array) + 1) * 4]
    offsets = list(struct.unpack(f"<{len(array) + 1}i", honest))
    offsets[1] = offsets[-1]
    data = bytearray(_ipc(table))
    at = data.find(honest)
    if at < 0:
        return None
    data[at : at + len(honest)] = struct.pack(f"<{len(offsets)}i", *offsets)
    return bytes(data)


class Hostile:
    """A raw protocol client: hello, then ``on_task(self, task, chunk_rows, honest_rows)``
    for each task (in the receiving thread); heartbeats when ``heartbeat`` is set."""

    def __init__(self, base: str, token: str, on_task: OnTask, concurrency: int = 4) -> None:
        self.base, self.token, self.on_task = base, token, on_task
        self.concurrency = concurrency
        self.heartbeat = False
        self.tasks: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}
        self.conn: ClientConnection | None = None
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Hostile:
        self.thread.start()
        assert self.ready.wait(30), "not welcomed"
        return self

    def send(self, message: dict[str, Any], data: bytes | None = None) -> None:
        assert self.conn is not None
        with self.lock:
            self.conn.send(json.dumps(message))
            if data is not None:
                self.conn.send(data)

    def honest(self, task: dict[str, Any]) -> pa.Table:
        """The task's right answer (what the reference worker computes)."""
        path = str(self.welcome["chunk_path"]).replace("{task_id}", task["task_id"])
        auth = {"Authorization": f"Bearer {self.token}"}
        r = httpx.get(f"{self.base}/{path}", headers=auth, timeout=60)
        r.raise_for_status()
        rows = pa.ipc.open_stream(r.content).read_all()
        return evaluate_steps(task["steps"], rows, schema_from_b64(task["schema"]))

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.thread.join(10)

    def _beat(self) -> None:
        while not self.closed.wait(0.5):
            if self.heartbeat:
                try:
                    self.send({"type": "heartbeat"})
                except (ConnectionClosed, OSError):
                    return

    def _run(self) -> None:
        url = self.base.replace("http", "ws", 1) + f"/ws?auth={self.token}"
        try:
            with connect(url, max_size=None) as conn:
                self.conn = conn
                self.send({"type": "hello", "concurrency": self.concurrency})
                self.welcome = json.loads(conn.recv())
                self.ready.set()
                threading.Thread(target=self._beat, daemon=True).start()
                for raw in conn:
                    msg = json.loads(raw)
                    self.messages.append(msg)
                    if msg.get("type") == "task":
                        self.tasks.append(msg)
                        self.on_task(self, msg, self.honest(msg))
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.closed.set()


def _platform(start_platform: StartPlatform, **env: str) -> tuple[Any, str, str, str]:
    """A browser-backend platform; (platform, workers' base URL, user token, worker token)."""
    platform = start_platform(
        free_port(),
        env=browser_backend_env(64 * 1024, **env),
    )
    signer = auth.signer(load_settings(PlatformSettings, home=platform.home), create=False)
    alice, admin = signer.issue("alice"), signer.issue("ops", admin=True)
    base = f"{platform.url}/api/workers"
    r = httpx.post(f"{base}/tokens", json={"sub": "tab"}, params={"auth": admin}, timeout=60)
    assert r.status_code == 200, r.text
    return platform, base, alice, r.json()["token"]


def _upload(platform: Any, alice: str, tmp_path: Path) -> Path:
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, 'user' || (i % 7) AS who, round(i * 0.37 % 1000, 2) AS amount "
        f"FROM range(40000) t(i)) TO '{csv}' (HEADER)"
    )
    with Client(platform.url, alice) as client:
        assert client.upload(csv, "sales", part_size=1 << 20)["chunks"] >= 4
    return csv


BY_WHO = {
    "source": {"dataset": "sales"},
    "steps": [
        {"group_by": ["who"], "agg": ["count(*) AS n", "sum(id) AS total"]},
        {"sort": ["who"]},
    ],
}
BY_WHO_SQL = (
    "SELECT who, count(*) AS n, sum(id) AS total FROM read_csv('{csv}') GROUP BY who ORDER BY who"
)


def _run_job(platform: Any, alice: str, pipeline: dict[str, Any], timeout: float) -> Any:
    with httpx.Client(timeout=60) as http:
        r = http.post(
            f"{platform.url}/api/jobs", json={"pipeline": pipeline}, params={"auth": alice}
        )
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = http.get(f"{platform.url}/api/jobs/{job}", params={"auth": alice}).json()
            except httpx.TransportError:
                time.sleep(2)
                code = platform.proc.poll()
                raise AssertionError(
                    f"the platform died (exit {code})\n{platform.output()}"
                ) from None
            if state["state"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["state"] == "succeeded", state
        return http.get(f"{platform.url}/api/jobs/{job}/result", params={"auth": alice}).json()


def test_a_worker_sending_backwards_string_offsets_cannot_crash_or_corrupt_the_job(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    """Verify fraction 0: a browser result goes straight to the driver's final aggregate,
    which trusted the offsets (a segfault of the platform, or other memory in the rows)."""
    platform, base, alice, token = _platform(start_platform, ELYTRA_BROWSER_VERIFY_FRACTION="0")
    csv = _upload(platform, alice, tmp_path)

    def lie(worker: Hostile, task: dict[str, Any], honest: pa.Table) -> None:
        data = backwards_offsets(honest) or _ipc(honest)
        worker.send(
            {
                "type": "result",
                "task_id": task["task_id"],
                "attempt": task["attempt"],
                "bytes": len(data),
            },
            data,
        )

    liar = Hostile(base, token, lie).start()
    try:
        got = _run_job(platform, alice, BY_WHO, 180)
        want = duckdb.sql(BY_WHO_SQL.format(csv=csv)).fetchall()
        assert [tuple(row) for row in got["rows"]] == [tuple(row) for row in want]
        assert liar.tasks, "the hostile worker got no task"
        assert any(m.get("type") == "rejected" for m in liar.messages)
        assert platform.proc.poll() is None
    finally:
        liar.stop()


def test_a_worker_that_heartbeats_and_never_answers_cannot_hold_a_job(
    start_platform: StartPlatform, tmp_path: Path
) -> None:
    """It takes tasks and heartbeats for ever: every heartbeat extended its leases, so the job
    waited until its timeout failed it. The attempt now ends ELYTRA_LEASE_SECONDS after the
    task was handed; the task runs elsewhere and the job equals DuckDB."""
    platform, base, alice, token = _platform(
        start_platform,
        ELYTRA_BROWSER_VERIFY_FRACTION="0",
        ELYTRA_BROWSER_WAIT_SECONDS="1",
        ELYTRA_BROWSER_LEASE_SECONDS="2",
        ELYTRA_LEASE_SECONDS="10",
        ELYTRA_MAX_ATTEMPTS="1",
    )
    csv = _upload(platform, alice, tmp_path)
    holder = Hostile(base, token, lambda worker, task, honest: None)
    holder.heartbeat = True
    holder.start()
    try:
        got = _run_job(platform, alice, BY_WHO, 120)
        want = duckdb.sql(BY_WHO_SQL.format(csv=csv)).fetchall()
        assert [tuple(row) for row in got["rows"]] == [tuple(row) for row in want]
        assert holder.tasks, "the holder got no task"
        assert any(m.get("type") == "cancel" for m in holder.messages)
    finally:
        holder.stop()
