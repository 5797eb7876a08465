"""The browser backend against a real server on 127.0.0.1 and real WebSocket workers.

The workers are the protocol's reference worker (``elytra.browser.reference``), as threads
or as a process; the tasks' local side is the inline backend or a local pool.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

import elytra
from elytra import BrowserBackend, InlineBackend
from elytra.browser import WorkerHub, browser_task, evaluate_steps, same_result
from elytra.browser.api import make_workers_app, read_chunk
from elytra.browser.reference import ReferenceWorker
from elytra.task import Task, execute
from emsqrt import plan as lp
from emsqrt.plan_json import plan_to_json
from lake import LakeNode, lake_settings
from lake.testing import ingest
from platform_core import PlatformSettings
from platform_core.auth import TokenSigner

from .conftest import rows_of, write_parts

SECRET = "b" * 40
SIGNER = TokenSigner(SECRET)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A lake home holding ``sales`` in many small chunks, and the CSV it came from."""
    base = tmp_path_factory.mktemp("browser-lake")
    home, csv = base / "home", base / "sales.csv"
    duckdb.sql(
        f"""COPY (SELECT i AS id, (i % 13)::INTEGER AS grp, round(i * 0.37 % 1000, 2) AS amount,
                   CASE WHEN i % 11 = 0 THEN NULL ELSE 'user' || (i % 97) END AS who
            FROM range(40000) t(i)) TO '{csv}' (HEADER)"""
    )
    node = LakeNode(
        lake_settings(None, home=home, chunk_bytes=32 * 1024, secret=SECRET)  # type: ignore[arg-type]
    )
    try:
        ingest(node, csv, "sales")
    finally:
        node.stop()
    return home, csv


@contextmanager
def serving(hub: WorkerHub | None, tmp: Path) -> Iterator[str]:
    """The worker routes of ``hub`` mounted at /api/workers on a real uvicorn server on
    127.0.0.1; yields their root URL."""
    settings = PlatformSettings(home=tmp, secret=SECRET)  # type: ignore[arg-type]
    root = FastAPI()
    root.mount("/api/workers", make_workers_app(settings, lambda: hub))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(root, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/api/workers"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _worker_token(name: str = "tab") -> str:
    return SIGNER.worker_token(name, ttl_seconds=600)


@contextmanager
def workers(url: str, n: int, **kw: object) -> Iterator[list[ReferenceWorker]]:
    started = [ReferenceWorker(url, _worker_token(f"tab{i}"), 2, **kw).start() for i in range(n)]  # type: ignore[arg-type]
    try:
        yield started
    finally:
        for w in started:
            w.stop()


def _duckdb(csv: Path, sql: str) -> list[tuple[object, ...]]:
    return rows_of(duckdb.sql(sql.replace("sales", f"'{csv}'")).fetchall())


def _rows(table: pa.Table) -> list[tuple[object, ...]]:
    return rows_of([tuple(r.values()) for r in table.to_pylist()])


# -- browser tasks ---------------------------------------------------------------------------


def test_browser_tasks_are_the_json_subset_and_evaluate_as_emsqrt_does(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "parts", parts=2, rows=400)
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        base = s.read_parquet(f"{parts}/*.parquet")
        eligible = [
            base.filter("v > 100")
            .with_columns(w="f * 2")
            .group_by("k")
            .agg("sum(v) AS sv", "count(*) AS n", "avg(w) AS aw", "min(s) AS ms", "max(f) AS mf"),
            base.filter("s = 'u3'").top_k(5, "f DESC"),
            base.select("k", "v").filter("k > 2"),
            base.filter("k = 3").select("v", "s"),  # the scan reads k for its predicate only
            base.agg("count(v) AS n"),
            base.limit(7),
            base.group_by("k").agg("count(DISTINCT s) AS n"),  # partial: a group-by of (k, s)
        ]
        refused = [
            base.group_by("k").agg("median(f) AS m"),
            base.sort("f"),
            base.top_k(2, "f DESC", per="k"),
            base.map_batches(lambda b: b),
        ]
        for p in eligible:
            plan, tasks = s.driver.plan(p, "j", tmp_path / "spill")  # type: ignore[union-attr]
            for t in tasks:
                bt = browser_task(plan.stages[t.stage], t)
                assert bt is not None, p.explain()
                message = bt.message()
                assert str(tmp_path) not in str(message)  # no server path goes to a browser
                scanned = pa.ipc.open_stream(read_chunk(bt.scan)).read_all()
                assert tuple(scanned.column_names) == bt.columns
                got = evaluate_steps(message["steps"], scanned, bt.schema)
                assert same_result(got, execute(t).table) is None
        for p in refused:
            plan, tasks = s.driver.plan(p, "j", tmp_path / "spill")  # type: ignore[union-attr]
            assert all(browser_task(plan.stages[t.stage], t) is None for t in tasks[:1]), (
                p.explain()
            )
        # a join task (what an exchange runs over its partition files) never goes to a browser
        scan = lp.Scan(str(parts / "part0.parquet"), "parquet")
        join = lp.Join(scan, scan, ("k",), ("k",))
        assert browser_task(None, Task("j-s2-t0", 2, plan_to_json(join), 1 << 20, "")) is None
        two = lp.Union((scan, lp.Scan(str(parts / "part1.parquet"), "parquet")))
        assert browser_task(None, Task("j-s0-t0", 0, plan_to_json(two), 1 << 20, "")) is None


def test_same_result_is_exact_for_ints_and_strings_and_close_for_floats() -> None:
    a = pa.table({"k": [1, 2], "s": ["x", "y"], "f": [1.0, 2.0]})
    assert same_result(a, a.take([1, 0])) is None
    assert same_result(a, a.set_column(2, "f", pa.array([1.0 + 1e-12, 2.0]))) is None
    assert "column 'f'" in str(same_result(a, a.set_column(2, "f", pa.array([1.001, 2.0]))))
    assert "column 'k'" in str(same_result(a, a.set_column(0, "k", pa.array([1, 3]))))
    assert "column 's'" in str(same_result(a, a.set_column(1, "s", pa.array(["x", "z"]))))


@pytest.mark.parametrize(
    ("got", "want", "same"),
    [
        ([float("nan"), None, 1e308], [float("nan"), None, 1e308 * (1 + 1e-12)], True),
        ([float("inf"), 0.0], [float("inf"), -0.0], True),
        ([float("inf")], [float("-inf")], False),  # an infinite scale must not excuse this
        ([float("inf")], [1e308], False),
        ([None], [1.0], False),
        ([float("nan")], [1.0], False),
    ],
)
def test_same_result_on_float_edges(got: list[float], want: list[float], same: bool) -> None:
    a, b = (
        pa.table({"f": pa.array(got, pa.float64())}),
        pa.table({"f": pa.array(want, pa.float64())}),
    )
    assert (same_result(a, b) is None) is same


# -- tokens ----------------------------------------------------------------------------------


def test_worker_routes_take_only_worker_tokens_and_admins_mint_them(tmp_path: Path) -> None:
    hub = WorkerHub()
    with serving(hub, tmp_path) as url:
        user = SIGNER.issue("alice")
        admin = SIGNER.issue("root", admin=True)
        cluster = SIGNER.cluster_token("node-a")
        for token in (user, admin, cluster, "not-a-jwt"):
            r = httpx.get(f"{url}/chunks/t1", params={"worker": "w1", "auth": token})
            assert r.status_code == 401, r.text
            with pytest.raises(InvalidStatus):
                ws_connect(url.replace("http", "ws") + f"/ws?auth={token}").close()
        r = httpx.post(f"{url}/tokens", json={"sub": "tab"}, params={"auth": user})
        assert r.status_code == 403
        r = httpx.post(f"{url}/tokens", json={"sub": "tab"}, params={"auth": _worker_token()})
        assert r.status_code == 401
        r = httpx.post(f"{url}/tokens", json={"ttl_seconds": 10**9}, params={"auth": admin})
        assert r.status_code in (400, 422)
        r = httpx.post(
            f"{url}/tokens", json={"sub": "tab", "ttl_seconds": 60}, params={"auth": admin}
        )
        assert r.status_code == 200, r.text
        minted = r.json()["token"]
        assert SIGNER.verify_worker(minted).sub == "tab"
        # the minted token opens the worker routes, and only tasks leased to it are served
        w = ReferenceWorker(url, minted).start()
        try:
            assert w.welcome["type"] == "welcome"
            assert w.welcome["concurrency"] == 1
            r = httpx.get(
                f"{url}/chunks/nothing", params={"worker": w.welcome["worker_id"], "auth": minted}
            )
            assert r.status_code == 404
            assert [x["sub"] for x in hub.workers()] == ["tab"]
        finally:
            w.stop()


# -- jobs ------------------------------------------------------------------------------------

AGG = (
    "SELECT grp, count(*) AS n, sum(id) AS total, avg(amount) AS a, min(who) AS lo, "
    "max(amount) AS hi FROM sales WHERE amount > 100 GROUP BY grp"
)


def _agg(s: elytra.Session) -> elytra.Pipeline:
    return (
        s.dataset("sales")
        .filter("amount > 100")
        .group_by("grp")
        .agg(
            "count(*) AS n",
            "sum(id) AS total",
            "avg(amount) AS a",
            "min(who) AS lo",
            "max(amount) AS hi",
        )
    )


def test_three_workers_run_a_many_chunk_pipeline_equal_to_duckdb(
    lake_home: tuple[Path, Path], tmp_path: Path
) -> None:
    home, csv = lake_home
    hub = WorkerHub(heartbeat_seconds=0.5)
    backend = BrowserBackend(InlineBackend(), hub, wait_seconds=60, verify_fraction=0.0)
    with (
        serving(hub, tmp_path) as url,
        workers(url, 3) as ws,
        elytra.connect(home=home, backend=backend, task_bytes=1, progress=False) as s,
    ):
        q = _agg(s)
        got = q.collect()
        tasks = s.driver.last.tasks_total  # type: ignore[union-attr]
        assert tasks >= 8
        assert backend.stats["browser"] == tasks
        assert backend.stats["local"] == 0
        assert _rows(got) == _duckdb(csv, AGG)
        assert all(w.accepted for w in ws)  # each of the three took part
        top = s.dataset("sales").filter("who = 'user5'").top_k(5, "amount DESC", "id")
        assert _rows(top.collect()) == _duckdb(
            csv,
            "SELECT * FROM sales WHERE who = 'user5' ORDER BY amount DESC, id LIMIT 5",
        )
    backend.close()


def test_a_worker_killed_mid_task_loses_nothing(
    lake_home: tuple[Path, Path], tmp_path: Path
) -> None:
    """One worker in its own process takes tasks and is SIGKILLed while it holds them; a
    thread worker that drops its socket does the same; the others finish the job."""
    home, csv = lake_home
    hub = WorkerHub(heartbeat_seconds=0.5, lease_seconds=30)
    backend = BrowserBackend(InlineBackend(), hub, wait_seconds=60, verify_fraction=0.0)
    with serving(hub, tmp_path) as url:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "elytra.browser.reference",
                url,
                _worker_token("doomed"),
                "--concurrency",
                "2",
                "--delay",
                "600",
            ],
            env=env,
            stdout=subprocess.PIPE,
        )
        dropper = ReferenceWorker(url, _worker_token("dropper"), 2, delay=600).start()
        try:
            deadline = time.monotonic() + 30
            while len(hub.workers()) < 2:
                assert time.monotonic() < deadline, "the process worker did not join"
                time.sleep(0.05)
            with elytra.connect(home=home, backend=backend, task_bytes=1, progress=False) as s:
                job = _agg(s).submit()
                # both doomed workers hold tasks (2 each): kill them mid-task
                deadline = time.monotonic() + 30
                while sum(len(w["tasks"]) for w in hub.workers()) < 4:
                    assert time.monotonic() < deadline, hub.workers()
                    time.sleep(0.05)
                proc.send_signal(signal.SIGKILL)
                dropper.kill()
                with workers(url, 2) as honest:
                    assert job.wait(120) == "succeeded", job.record.get("error")
                    assert _rows(job.result()) == _duckdb(csv, AGG)
                    assert sum(len(w.accepted) for w in honest) == backend.stats["browser"]
                assert backend.stats["failed_attempts"] >= 4
        finally:
            proc.kill()
            proc.wait(10)
    backend.close()


def _flip(table: pa.Table) -> pa.Table:
    """A lie: the first integer column's first value, plus one."""
    for i, field in enumerate(table.schema):
        if pa.types.is_integer(field.type) and table.num_rows:
            col = table.column(i).to_pylist()
            col[0] = (col[0] or 0) + 1
            return table.set_column(i, field.name, pa.array(col, field.type))
    return table


def test_a_lying_worker_is_caught_banned_and_its_results_rerun(
    lake_home: tuple[Path, Path], tmp_path: Path
) -> None:
    home, csv = lake_home
    hub = WorkerHub(heartbeat_seconds=0.5)
    backend = BrowserBackend(InlineBackend(), hub, wait_seconds=60, verify_fraction=1.0)
    with serving(hub, tmp_path) as url, workers(url, 1) as honest:
        liar = ReferenceWorker(url, _worker_token("liar"), 2, tamper=_flip).start()
        try:
            with elytra.connect(home=home, backend=backend, task_bytes=1, progress=False) as s:
                got = _agg(s).collect()
            assert _rows(got) == _duckdb(csv, AGG)
            assert liar.accepted, "the liar's results were accepted (then checked)"
            assert liar.banned.is_set()
            assert backend.stats["banned"] == 1
            assert honest[0].accepted
            assert not honest[0].banned.is_set()
        finally:
            liar.stop()
    backend.close()


def test_a_job_with_no_worker_runs_on_the_local_pool(
    lake_home: tuple[Path, Path], tmp_path: Path
) -> None:
    home, csv = lake_home
    backend = BrowserBackend(elytra.LocalPool(1, ring_bytes=1 << 20), wait_seconds=0.2)
    try:
        with elytra.connect(home=home, backend=backend, task_bytes=1, progress=False) as s:
            assert _rows(_agg(s).collect()) == _duckdb(csv, AGG)
            tasks = s.driver.last.tasks_total  # type: ignore[union-attr]
        assert backend.stats["fallback"] == tasks
        assert backend.stats["browser"] == 0
    finally:
        backend.close()


def test_an_oversized_result_is_refused_and_the_task_runs_elsewhere(
    lake_home: tuple[Path, Path], tmp_path: Path
) -> None:
    home, csv = lake_home
    hub = WorkerHub(heartbeat_seconds=0.5, max_result_bytes=256)
    backend = BrowserBackend(InlineBackend(), hub, wait_seconds=60, verify_fraction=0.0)
    with serving(hub, tmp_path) as url, workers(url, 1) as (w,):
        with elytra.connect(home=home, backend=backend, task_bytes=1, progress=False) as s:
            rows = s.dataset("sales").filter("grp = 3").select("id", "who")
            got = rows.collect()
            tasks = s.driver.last.tasks_total  # type: ignore[union-attr]
        want = _duckdb(csv, "SELECT id, who FROM sales WHERE grp = 3")
        assert _rows(got) == want
        assert w.rejected
        assert "over the limit" in w.rejected[0][1]
        assert not w.accepted
        # every attempt refused: after max_attempts on browsers each task ran locally
        assert backend.stats["fallback"] == tasks
        assert backend.stats["failed_attempts"] == 3 * tasks
    backend.close()


def test_a_bad_result_is_refused(tmp_path: Path) -> None:
    """Rows of another schema or bytes that are not Arrow: refused, never accepted."""
    parts = write_parts(tmp_path / "parts", parts=1, rows=100)
    hub = WorkerHub()
    with elytra.connect(home=tmp_path / "home", backend="inline") as s:
        plan, (task,) = s.driver.plan(  # type: ignore[union-attr]
            s.read_parquet(f"{parts}/*.parquet").agg("count(*) AS n"), "j", tmp_path
        )
    bt = browser_task(plan.stages[0], task)
    assert bt is not None
    sent: list[dict[str, object]] = []
    run = hub.open_run()
    worker = hub.join("tab", 1, sent.append, lambda code, reason: None)
    hub.offer(run, bt)
    assert sent[-1]["type"] == "task"
    assert hub.deliver(worker, {"task_id": bt.id, "attempt": 1}, b"junk") is not None
    event = run.events.get_nowait()
    assert event[0] == "failed"
    assert "not an Arrow IPC stream" in event[3]
    hub.offer(run, bt.retry())
    sink = pa.BufferOutputStream()
    wrong = pa.table({"n": pc.cast(pa.array([1]), pa.int32())})
    with pa.ipc.new_stream(sink, wrong.schema) as writer:
        writer.write_table(wrong)
    header = {"task_id": bt.id, "attempt": 2}
    assert "schema" in str(hub.deliver(worker, header, sink.getvalue().to_pybytes()))
    assert run.events.get_nowait()[0] == "failed"
    assert hub.deliver(worker, header, b"") == "not leased to this worker"  # stale: ignored


def test_a_worker_over_its_message_rate_or_off_protocol_is_disconnected(tmp_path: Path) -> None:
    hub = WorkerHub(messages_per_second=5)
    with serving(hub, tmp_path) as url:
        ws_url = url.replace("http", "ws") + f"/ws?auth={_worker_token()}"
        with ws_connect(ws_url) as conn:
            conn.send('{"type": "hello", "concurrency": 99}')
            welcome = json.loads(conn.recv())
            assert welcome["concurrency"] == hub.max_concurrency  # capped

            def flood() -> None:
                for _ in range(100):
                    conn.send('{"type": "heartbeat"}')
                    time.sleep(0.001)
                conn.recv(timeout=10)

            with pytest.raises(ConnectionClosed) as closed:
                flood()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
        with ws_connect(ws_url) as conn:
            conn.send('{"type": "hello"}')
            conn.recv()
            conn.send(b"rows without a header")
            with pytest.raises(ConnectionClosed) as closed:
                conn.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert "without a result header" in closed.value.rcvd.reason
        deadline = time.monotonic() + 10
        while hub.workers():
            assert time.monotonic() < deadline, "the closed workers are still listed"
            time.sleep(0.05)
