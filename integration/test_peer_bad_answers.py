"""A job still succeeds when a peer platform's task answers are broken (issue 16, attacked
from outside).

Two platforms: A (the driver, a 3 s lease) and P, a real platform that joined A but
advertises 127.0.0.2. A proxy on 127.0.0.2 passes gossip, chunk copies and Flight through to
P unchanged (Flight binds 127.0.0.2 itself) and answers only P's `POST /internal/elytra/tasks` itself: bytes trickled
forever, or a 200 whose `x-elytra-stats` is not JSON. A job over chunks P holds must still
succeed on A (its tasks re-run at home), equal to DuckDB. Each test here was a finding,
fixed since.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from platform_cluster import FAST, ORACLE, SECRET, pipeline, wait_for
from servers import command, launch

from lake import Client
from platform_core.auth import TokenSigner
from platform_core.testing import ServerProcess, free_port

FAKE_HOST = "127.0.0.2"
TASKS_LINE = b"POST /internal/elytra/tasks "
JOB_TIMEOUT = 60.0
"""A bound on waiting for the job (a 3 s lease makes a fixed driver finish in seconds)."""


class Proxy:
    """TCP proxy ``FAKE_HOST:port`` -> ``127.0.0.1:port`` for each port; a connection whose
    first request is a peer task gets ``mode``'s answer instead."""

    def __init__(self, ports: list[int], mode: str) -> None:
        self.ports, self.mode = ports, mode
        self.tasks_seen = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            for port in self.ports:
                await asyncio.start_server(
                    lambda r, w, port=port: self._conn(r, w, port), FAKE_HOST, port
                )
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        with contextlib.suppress(Exception):
            w.close()

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, port: int) -> None:
        try:
            first = await r.read(len(TASKS_LINE))
            while len(first) < len(TASKS_LINE) and (more := await r.read(len(TASKS_LINE))):
                first += more
        except Exception:
            w.close()
            return
        if first.startswith(TASKS_LINE):
            self.tasks_seen += 1
            await self._answer_task(r, w)
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", port)
        except OSError:  # P is starting or stopped
            w.close()
            return
        uw.write(first)
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    async def _answer_task(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await r.readexactly(length)
        with contextlib.suppress(Exception):
            if self.mode == "trickle":
                w.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apache.arrow.stream\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                while True:  # a byte every half second, forever
                    w.write(b"1\r\n\xff\r\n")
                    await w.drain()
                    await asyncio.sleep(0.5)
            body = b"not an arrow stream"
            w.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apache.arrow.stream\r\n"
                b"x-elytra-stats: <not json>\r\nconnection: close\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await w.drain()
        with contextlib.suppress(Exception):
            w.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _table() -> pa.Table:
    return (
        duckdb.sql(
            "SELECT i AS id, (i * 7919) % 13 AS grp, "
            "round(((i * 104729) % 100000) / 100.0, 2) AS amount FROM range(150000) t(i)"
        )
        .arrow()
        .read_all()
    )


@contextlib.contextmanager
def _pair(tmp: Path, mode: str) -> Iterator[tuple[ServerProcess, Proxy]]:
    env = {**FAST, "ELYTRA_LEASE_SECONDS": "3", "ELYTRA_PEER_SLOTS": "4"}
    a = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(tmp / "a" / "home")],
        tmp / "a",
        env=env,
    )
    port = free_port()
    proxy = Proxy([port], mode)  # Flight binds the advertised host itself: no proxy there
    p: ServerProcess | None = None
    try:
        p = launch(
            [
                *(str(command("platform")), "up", "--port", str(port)),
                *("--home", str(tmp / "p" / "home"), "--join", a.url.split("//", 1)[1]),
            ],
            tmp / "p",
            env={**env, "LAKE_ADVERTISE_HOST": FAKE_HOST},
        )
        yield a, proxy
    finally:
        for node in (p, a):
            if node is not None and node.proc.poll() is None:
                node.stop()
        proxy.stop()


def _run_job(a: str, signer: TokenSigner, tmp: Path) -> tuple[dict[str, Any], list[Any]]:
    admin = {"authorization": f"Bearer {signer.issue('admin', admin=True)}"}
    user = {"authorization": f"Bearer {signer.issue('alice')}"}
    with httpx.Client(base_url=a, timeout=30) as http:
        wait_for(
            lambda: (
                sum(
                    m["state"] == "alive"
                    for m in http.get("/api/lake/nodes", headers=admin).json()["members"]
                )
                == 2
            ),
            "P to join A",
        )
        path = tmp / "src.parquet"
        pq.write_table(_table(), path)
        with Client(a, signer.issue("alice")) as client:
            client.upload(path, "b16_bad_peer")
        wait_for(
            lambda: http.get("/api/lake/nodes", headers=admin).json()["under_replicated"] == 0,
            "every chunk on both platforms",
        )
        r = http.post("/api/jobs", json={"pipeline": pipeline("b16_bad_peer")}, headers=user)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = http.get(f"/api/jobs/{job_id}", headers=user).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
        rows: list[Any] = []
        if job.get("state") == "succeeded":
            got = http.get(f"/api/jobs/{job_id}/result", headers=user)
            rows = sorted(tuple(row) for row in got.json()["rows"])
        return job, rows


def _want() -> list[Any]:
    t = _table()  # noqa: F841  (DuckDB reads it by name)
    return sorted(duckdb.sql(ORACLE).fetchall())


@pytest.mark.timeout(300)
def test_a_peer_that_answers_endlessly_loses_its_tasks(tmp_path: Path) -> None:
    with _pair(tmp_path, "trickle") as (a, proxy):
        job, rows = _run_job(a.url, TokenSigner(SECRET), tmp_path)
        assert proxy.tasks_seen > 0, "no task went to the trickling peer"
        assert job.get("state") == "succeeded", job.get("error", job)
        assert rows == _want()


@pytest.mark.timeout(300)
def test_a_peer_answering_garbage_stats_does_not_fail_the_job(tmp_path: Path) -> None:
    with _pair(tmp_path, "badstats") as (a, proxy):
        job, rows = _run_job(a.url, TokenSigner(SECRET), tmp_path)
        assert proxy.tasks_seen > 0, "no task went to the broken peer"
        assert job.get("state") == "succeeded", job.get("error", job)
        assert rows == _want()
