"""Job results on disk through the installed `platform up`: an exploding join written under
the driver's cap (the gateway's RSS read from /proc), pages equal to DuckDB's, limits and a
quota with clear errors, results that survive a restart, expire, and leave nothing behind
after a cancel, a killed worker or a killed gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from jobs_helpers import bearer, pool_workers, wait_job
from servers import command, launch

import elytra
from elytra import ResultGoneError
from elytra.remote import RemoteJob
from lake import Client
from platform_core import PlatformSettings, auth, load_settings

CAP = 64 << 20
EXPLODE = "id + 3 * id2 + 7 * id3"


def _rss(pid: int) -> int:
    """The resident bytes of process ``pid`` (the gateway alone: its pool workers are
    processes of their own, with their own caps)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class _Peak(threading.Thread):
    """The highest RSS of ``pid`` seen every 10 ms until ``stop``."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.halt = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.peak = max(self.peak, _rss(self.pid))
            time.sleep(0.01)

    def stop(self) -> int:
        self.halt.set()
        self.join()
        return self.peak


def _explode(name: str) -> dict[str, Any]:
    """``name`` joined with itself twice on its one key: rows**3 rows."""
    other = {"source": {"dataset": name}, "steps": [{"rename": {"id": "id2"}}]}
    third = {"source": {"dataset": name}, "steps": [{"rename": {"id": "id3"}}]}
    return {
        "source": {"dataset": name},
        "steps": [{"join": other, "on": ["k"]}, {"join": third, "on": ["k"]}],
    }


def _upload(url: str, token: str, tmp: Path, name: str, sql: str) -> Path:
    csv = tmp / f"{name}.csv"
    duckdb.sql(f"COPY ({sql}) TO '{csv}' (HEADER)")
    with Client(url, token) as client:
        client.upload(csv, name)
    return csv


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _submit(http: httpx.Client, token: str, pipeline: dict[str, Any], **kw: Any) -> str:
    r = http.post("/api/jobs", json={"pipeline": pipeline, **kw}, headers=bearer(token))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _start(home: Path, run: Path, **env: str) -> Any:
    return launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        run,
        env={"ELYTRA_WORKERS": "1", "ELYTRA_DRIVER_MEM_CAP": str(CAP), **env},
    )


def test_an_exploding_join_is_written_under_the_drivers_cap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = _start(
        home,
        tmp_path / "run",
        ELYTRA_MAX_RESULT_BYTES=str(1 << 30),
        ELYTRA_WORKER_MEM_CAP=str(CAP),
    )
    try:
        signer = auth.signer(load_settings(PlatformSettings, home=home), create=False)
        alice = signer.issue("alice")
        sizes = (100, 200)  # 1e6 and 8e6 rows: 32 and 256 MB in Arrow, the last 4 times the cap
        csvs = {
            n: _upload(
                server.url,
                alice,
                tmp_path,
                f"keys{n}",
                f"SELECT i AS id, 1 AS k FROM range({n}) t(i)",
            )
            for n in sizes
        }
        with httpx.Client(base_url=server.url, timeout=120) as http:
            warm = _submit(http, alice, {"source": {"dataset": "keys100"}})
            assert wait_job(http, warm, bearer(alice))["state"] == "succeeded"
            time.sleep(0.5)
            (worker,) = pool_workers(server.pid)
            for n in sizes:
                base, worker_base = _rss(server.pid), _rss(worker)
                watch, in_worker = _Peak(server.pid), _Peak(worker)
                watch.start()
                in_worker.start()
                job_id = _submit(http, alice, _explode(f"keys{n}"))
                job = wait_job(http, job_id, bearer(alice))
                peak, worker_peak = watch.stop(), in_worker.stop()
                # the worker streamed its task's rows to a file: it never held them either
                assert worker_peak - worker_base <= CAP + (64 << 20), (n, worker_peak - worker_base)
                assert job["state"] == "succeeded", job
                assert job["result"]["where"] == "stored"
                assert job["result"]["rows"] == n**3
                assert job["result"]["bytes"] > n**3 * 24  # the rows are on disk, in full
                # the gateway held a cap's worth at most, never the result
                assert peak - base <= CAP + (64 << 20), (n, peak - base)
                stored = home / "results" / "elytra" / job_id
                assert sorted(p.name for p in stored.iterdir()) == ["meta.json", "result.arrow"]
                # the client streams it batch by batch; DuckDB computes the same sums
                reading = _Peak(server.pid)
                reading.start()
                with elytra.connect(server.url, token=alice) as s:
                    rows = total = 0
                    for batch in RemoteJob(s.driver, job).batches():
                        rows += batch.num_rows
                        t = pa.table(batch)
                        expr = pc.add(
                            pc.add(t["id"], pc.multiply(t["id2"], 3)), pc.multiply(t["id3"], 7)
                        )
                        total += pc.sum(expr).as_py() or 0
                # serving it read the file batch by batch: the gateway never held it whole
                read_peak = reading.stop()
                assert read_peak - base <= CAP + (64 << 20), (n, read_peak - base)
                want = duckdb.sql(
                    f"SELECT count(*), sum({EXPLODE}) FROM read_csv('{csvs[n]}') a "
                    f"JOIN (SELECT id AS id2, k FROM read_csv('{csvs[n]}')) b USING (k) "
                    f"JOIN (SELECT id AS id3, k FROM read_csv('{csvs[n]}')) c USING (k)"
                ).fetchall()[0]
                assert (rows, total) == want
                print(
                    f"n={n}: gateway RSS {peak - base >> 20} MiB above its start while it ran, "
                    f"{read_peak - base >> 20} MiB while it served the result; its worker "
                    f"{worker_peak - worker_base >> 20} MiB"
                )
    finally:
        server.stop()


def test_results_page_like_duckdb_survive_a_restart_and_expire(tmp_path: Path) -> None:
    home, results = tmp_path / "home", tmp_path / "home" / "results" / "elytra"
    server = _start(home, tmp_path / "run1", ELYTRA_MAX_RESULT_BYTES=str(1 << 20))
    signer = auth.signer(load_settings(PlatformSettings, home=home), create=False)
    alice, bob = signer.issue("alice"), signer.issue("bob")
    admin = signer.issue("ops", admin=True)
    sorted_sales = {
        "source": {"dataset": "sales"},
        "steps": [
            {"filter": "amount > 500"},
            {"select": ["id", "grp", "amount"]},
            {"sort": ["id"]},
        ],
    }
    try:
        csv = _upload(
            server.url,
            alice,
            tmp_path,
            "sales",
            "SELECT i AS id, i % 5 AS grp, round(i * 0.37 % 1000, 2) AS amount FROM range(60000) t(i)",
        )
        want = duckdb.sql(
            f"SELECT id, grp, amount FROM read_csv('{csv}') WHERE amount > 500 ORDER BY id"
        ).fetchall()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            a = _submit(http, alice, sorted_sales)
            assert wait_job(http, a, bearer(alice))["state"] == "succeeded"
            _check_pages(http, a, alice, want)
            # roles: the owner and an admin read it; another user does not, nor deletes it
            url = f"/api/jobs/{a}/result"
            assert http.get(url).status_code == 401
            assert http.delete(url).status_code == 401
            assert http.get(url, headers=bearer(bob)).status_code == 403
            assert http.delete(url, headers=bearer(bob)).status_code == 403
            assert http.get(url, params={"limit": 1}, headers=bearer(admin)).status_code == 200

            # past ELYTRA_MAX_RESULT_BYTES: a failed job naming the limit, nothing on disk
            big = {"source": {"dataset": "sales"}}
            c = _submit(http, alice, big)
            failed = wait_job(http, c, bearer(alice))
            assert failed["state"] == "failed"
            assert "ELYTRA_MAX_RESULT_BYTES" in failed["error"]["message"]
            assert "write" in failed["error"]["message"]
            r = http.get(f"/api/jobs/{c}/result", headers=bearer(alice))
            assert r.status_code == 413
            assert "ELYTRA_MAX_RESULT_BYTES" in r.json()["error"]
            # ... and the way out it names works
            w = _submit(http, alice, big, write="sales_copy")
            assert wait_job(http, w, bearer(alice))["state"] == "succeeded"
            assert http.get(f"/api/jobs/{w}/result", headers=bearer(alice)).status_code == 409
            assert _files(results) == [f"{a}/meta.json", f"{a}/result.arrow"]
    finally:
        server.stop()

    # a restart: the record and the files on disk still serve the result; a user's quota
    # counts it (alice has 1 byte left past it); new results expire after a second
    size = (results / a / "result.arrow").stat().st_size
    server = _start(
        home,
        tmp_path / "run2",
        ELYTRA_RESULT_TTL_SECONDS="1",
        ELYTRA_RESULT_QUOTA_BYTES=str(size + 1),
    )
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            _check_pages(http, a, alice, want)
            assert http.get(f"/api/jobs/{a}", headers=bearer(alice)).json()["state"] == "succeeded"
            listed = [j["id"] for j in http.get("/api/jobs", headers=bearer(alice)).json()]
            assert a in listed  # the jobs of the earlier run are listed again
            assert a not in [j["id"] for j in http.get("/api/jobs", headers=bearer(bob)).json()]
            assert http.get(f"/api/jobs/{a}/result", headers=bearer(bob)).status_code == 403

            q = _submit(http, alice, sorted_sales)
            over = wait_job(http, q, bearer(alice))
            assert over["state"] == "failed"
            assert "ELYTRA_RESULT_QUOTA_BYTES" in over["error"]["message"]
            e = _submit(http, bob, sorted_sales)  # bob's quota is his own
            done = wait_job(http, e, bearer(bob))
            assert done["state"] == "succeeded"
            assert done["result"]["expires"] - done["finished"] == pytest.approx(1, abs=0.5)
            deadline = time.monotonic() + 30
            while (results / e).exists():  # the expiry sweep removes it, unread
                assert time.monotonic() < deadline, _files(results)
                time.sleep(0.1)
            gone = http.get(f"/api/jobs/{e}/result", headers=bearer(bob))
            assert gone.status_code == 410
            assert "run the job again" in gone.json()["error"]

            # the Python client: one JSON page, and Arrow batches from an offset
            with elytra.connect(server.url, token=alice) as s:
                remote = RemoteJob(s.driver, {"id": a, "state": "succeeded"})
                page = remote.page(offset=3, limit=4)
                assert [tuple(r) for r in page["rows"]] == want[3:7]
                streamed = pa.Table.from_batches(list(remote.batches(offset=len(want) - 9)))
                assert [tuple(r.values()) for r in streamed.to_pylist()] == want[-9:]

            # the CLI: a page, then every row saved (streamed) to Parquet
            cli = [str(command("platform")), "elytra", "result", a, "--url", server.url]
            cli += ["--token", alice]
            env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
            shown = subprocess.run(
                [*cli, "--offset", "5", "--limit", "3", "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
            assert shown.returncode == 0, shown.stderr
            assert [tuple(r) for r in json.loads(shown.stdout)["rows"]] == want[5:8]
            saved = tmp_path / "all.parquet"
            done = subprocess.run(
                [*cli, "--output", str(saved)],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            back = pq.read_table(saved)
            assert [tuple(r.values()) for r in back.to_pylist()] == want

            # the owner deletes a result: nothing stays; reading it again is 410
            assert http.delete(f"/api/jobs/{a}/result", headers=bearer(alice)).status_code == 204
            assert http.get(f"/api/jobs/{a}/result", headers=bearer(alice)).status_code == 410
            with elytra.connect(server.url, token=alice) as s:
                gone_job = RemoteJob(s.driver, {"id": a, "state": "succeeded"})
                with pytest.raises(ResultGoneError, match="no longer stored"):
                    next(gone_job.batches())
            assert _files(results) == []
    finally:
        server.stop()


def _check_pages(http: httpx.Client, job_id: str, token: str, want: list[tuple[Any, ...]]) -> None:
    """JSON pages at several offsets, and Arrow and CSV slices, equal DuckDB's rows."""
    url, h = f"/api/jobs/{job_id}/result", bearer(token)
    n = len(want)
    for offset, limit in [(0, 10), (7, 1000), (n - 5, 100), (n, 10)]:
        page = http.get(url, params={"offset": offset, "limit": limit}, headers=h).json()
        assert [tuple(r) for r in page["rows"]] == want[offset : offset + limit]
        assert page["total_rows"] == n
        assert page["next_offset"] == (offset + limit if offset + limit < n else None)
    first = http.get(url, headers=h).json()  # the default page
    assert len(first["rows"]) == min(n, 10_000)
    assert first["next_offset"] == 10_000
    pages, offset = 0, 0  # every row, page by page
    got: list[tuple[Any, ...]] = []
    while offset is not None:
        page = http.get(url, params={"offset": offset, "limit": 9000}, headers=h).json()
        got += [tuple(r) for r in page["rows"]]
        offset, pages = page["next_offset"], pages + 1
    assert got == want
    assert pages == -(-n // 9000)
    arrow = http.get(url, params={"format": "arrow", "offset": 123, "limit": 4567}, headers=h)
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert [tuple(r.values()) for r in table.to_pylist()] == want[123 : 123 + 4567]
    whole = pa.ipc.open_stream(http.get(url, params={"format": "arrow"}, headers=h).content)
    assert whole.read_all().num_rows == n
    text = http.get(url, params={"format": "csv", "offset": n - 2}, headers=h).text
    lines = text.splitlines()
    assert lines[0] == '"id","grp","amount"'
    assert len(lines) == 3
    assert lines[1].split(",")[0] == str(want[n - 2][0])


def test_nothing_stays_after_a_cancel_or_killed_processes(tmp_path: Path) -> None:
    home, results = tmp_path / "home", tmp_path / "home" / "results" / "elytra"
    spill = home / "spill" / "elytra"
    server = _start(home, tmp_path / "run1", ELYTRA_MAX_RESULT_BYTES=str(1 << 30))
    signer = auth.signer(load_settings(PlatformSettings, home=home), create=False)
    alice, admin = signer.issue("alice"), signer.issue("ops", admin=True)
    try:
        _upload(server.url, alice, tmp_path, "keys", "SELECT i AS id, 1 AS k FROM range(220) t(i)")
        with httpx.Client(base_url=server.url, timeout=60) as http:
            # a worker killed while it writes its task's rows: the task runs again, the job
            # ends with its whole result, and the killed attempt's file is gone
            job_id = _submit(http, alice, _explode("keys"))
            deadline = time.monotonic() + 60
            writing = spill / job_id / "task-results"
            while not list(writing.glob("*.parquet.a1")):
                assert time.monotonic() < deadline
                time.sleep(0.005)
            for pid in pool_workers(server.pid):
                os.kill(pid, signal.SIGKILL)
            job = wait_job(http, job_id, bearer(alice))
            assert job["state"] == "succeeded", job
            assert job["result"]["rows"] == 220**3
            assert job["timeline"]["tasks"]["s0-t0"]["attempt"] == 2  # it ran again
            assert _files(results) == [f"{job_id}/meta.json", f"{job_id}/result.arrow"]
            assert not (spill / job_id).exists()
            # an admin deletes anyone's result
            assert (
                http.delete(f"/api/jobs/{job_id}/result", headers=bearer(admin)).status_code == 204
            )
            assert _files(results) == []

            # a worker killed while its task runs, then a cancel
            job_id = _submit(http, alice, _explode("keys"))
            deadline = time.monotonic() + 60
            while not pool_workers(server.pid) or not list(spill.glob(f"{job_id}*")):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            for pid in pool_workers(server.pid):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
            r = http.post(f"/api/jobs/{job_id}/cancel", headers=bearer(alice))
            assert r.status_code == 200, r.text
            job = wait_job(http, job_id, bearer(alice))
            assert job["state"] == "cancelled", job
            assert _files(results) == []
            assert not (spill / job_id).exists()

            # the gateway killed while it writes a result: nothing of it once it starts again
            job_id = _submit(http, alice, _explode("keys"))
            deadline = time.monotonic() + 60
            while not list((results / ".writing").glob(f"{job_id}/result.arrow")):
                state = http.get(f"/api/jobs/{job_id}", headers=bearer(alice)).json()["state"]
                assert state not in ("succeeded", "failed", "cancelled"), state
                assert time.monotonic() < deadline
                time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(10)
    finally:
        server.stop()
    assert (results / ".writing" / job_id).exists()  # left by the kill ...
    server = _start(home, tmp_path / "run2")
    try:
        deadline = time.monotonic() + 30
        while _files(results):  # ... and swept at the next start
            assert time.monotonic() < deadline, _files(results)
            time.sleep(0.1)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            job = http.get(f"/api/jobs/{job_id}", headers=bearer(alice)).json()
            assert job["state"] == "failed"
            gone = http.get(f"/api/jobs/{job_id}/result", headers=bearer(alice))
            assert "platform stopped" in gone.json()["error"]
    finally:
        server.stop()
