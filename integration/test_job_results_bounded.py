"""Job results on disk stay bounded in memory and quota, and are kept or removed whole.
Break-test of issue 31 part 1, through the installed `platform up`: each test is a hole found
from outside and fails on the code it was found in.

- a JSON page of wide rows: the gateway holds it whole, as Python objects and JSON, far past
  ``start + ELYTRA_DRIVER_MEM_CAP + 64 MiB`` (the page is bounded in rows, never in bytes);
- a join of wide rows: batches are cut by row count (DuckDB's streamed batches, at least 1024
  rows), so the worker and the gateway each hold hundreds of MB under 64 MiB caps;
- a job that writes to a dataset: the gateway's memory passes the same bound;
- a result deleted while it is read: JSON pages answer 500 and Arrow streams are cut after
  their 200 (``FileNotFoundError`` opening ``result.arrow``), never 410;
- concurrent jobs of one user pass the quota together (each writer counts the owner's stored
  results once, when its job starts);
- ``format=csv`` of a binary column holding bytes that are not UTF-8: 200, then the stream is
  cut (``check_csv`` checks the types on an empty table only).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pytest
from jobs_helpers import bearer, pool_workers, wait_job
from servers import command, launch

from lake import Client
from platform_core import PlatformSettings, auth, load_settings

CAP = 64 << 20
SLACK = 64 << 20


def _start(home: Path, run: Path, **env: str) -> Any:
    return launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        run,
        env={
            "ELYTRA_WORKERS": "1",
            "ELYTRA_DRIVER_MEM_CAP": str(CAP),
            "ELYTRA_WORKER_MEM_CAP": str(CAP),
            **env,
        },
    )


def _token(home: Path, sub: str = "alice") -> str:
    return auth.signer(load_settings(PlatformSettings, home=home), create=False).issue(sub)


def _upload(url: str, token: str, tmp: Path, name: str, sql: str) -> Path:
    path = tmp / f"{name}.parquet"
    duckdb.sql(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    with Client(url, token) as client:
        client.upload(path, name)
    return path


def _submit(http: httpx.Client, token: str, pipeline: dict[str, Any], **kw: Any) -> str:
    r = http.post("/api/jobs", json={"pipeline": pipeline, **kw}, headers=bearer(token))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class _Peak(threading.Thread):
    """The highest RSS of ``pid`` above its RSS at the start, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.base, self.peak, self.halt = pid, _rss(pid), 0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, _rss(self.pid) - self.base)
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.01)

    def stop(self) -> int:
        self.halt.set()
        self.join()
        return self.peak


def test_a_json_page_of_wide_rows_stays_under_the_gateways_bound(tmp_path: Path) -> None:
    """10,000 rows of 10 KB (the default page): the gateway made the page as Python objects
    and a JSON string, some 4 times the page, seen +1.1 GiB for a 100,000-row page of 3 KB."""
    home = tmp_path / "home"
    server = _start(home, tmp_path / "run")
    try:
        alice = _token(home)
        _upload(
            server.url,
            alice,
            tmp_path,
            "wide",
            "SELECT i AS id, repeat(chr(65 + (i % 26)::INT), 10000) AS s FROM range(10000) t(i)",
        )
        with httpx.Client(base_url=server.url, timeout=300) as http:
            job_id = _submit(http, alice, {"source": {"dataset": "wide"}})
            assert wait_job(http, job_id, bearer(alice))["state"] == "succeeded"
            time.sleep(0.5)
            watch = _Peak(server.pid)
            r = http.get(f"/api/jobs/{job_id}/result", headers=bearer(alice))
            peak = watch.stop()
            assert r.status_code == 200
            body = r.json()
            # a page is bounded in bytes too (16 MiB of Arrow data): fewer, whole rows, and
            # next_offset says where the next page starts
            got = body["rows"]
            assert 0 < len(got) < 10_000
            assert body["next_offset"] == len(got)
            assert body["truncated"] is True
            assert [(r[0], len(r[1])) for r in got[:3]] == [(0, 10000), (1, 10000), (2, 10000)]
            assert peak <= CAP + SLACK, f"gateway +{peak >> 20} MiB for one JSON page"
            rest = http.get(
                f"/api/jobs/{job_id}/result",
                params={"offset": body["next_offset"]},
                headers=bearer(alice),
            ).json()
            assert rest["offset"] == len(got)
            assert rest["rows"][0][0] == len(got)  # the next page goes on where this one ended
    finally:
        server.stop()


def test_a_join_of_wide_rows_stays_under_the_caps(tmp_path: Path) -> None:
    """60 rows of 50 KB joined with themselves (3,600 rows, 360 MB): the task's and the merge's
    batches were 1,024 rows whatever their width (``emsqrt.kernel.run._batch_rows``), so the
    worker and the gateway each held hundreds of MB under 64 MiB caps (seen +1.9 GiB and
    +1.2 GiB for 100 rows of 100 KB). Now the kernel leaves rows this wide to the operators
    (``kernel.run.too_wide``)."""
    home = tmp_path / "home"
    server = _start(home, tmp_path / "run", ELYTRA_MAX_RESULT_BYTES=str(1 << 30))
    try:
        alice = _token(home)
        _upload(
            server.url,
            alice,
            tmp_path,
            "wide",
            "SELECT i AS id, 1 AS k, repeat('x', 50000) || i AS s FROM range(60) t(i)",
        )
        other = {"source": {"dataset": "wide"}, "steps": [{"rename": {"id": "id2", "s": "s2"}}]}
        join = {"source": {"dataset": "wide"}, "steps": [{"join": other, "on": ["k"]}]}
        with httpx.Client(base_url=server.url, timeout=300) as http:
            warm = _submit(http, alice, {"source": {"dataset": "wide"}, "steps": [{"limit": 1}]})
            assert wait_job(http, warm, bearer(alice))["state"] == "succeeded"
            time.sleep(0.5)
            (worker,) = pool_workers(server.pid)
            gateway, in_worker = _Peak(server.pid), _Peak(worker)
            job = wait_job(http, _submit(http, alice, join), bearer(alice), timeout=300)
            peak, worker_peak = gateway.stop(), in_worker.stop()
            # the issue: such a join "spills or fails with the cap's error; it never runs the
            # process out of memory". Rows this wide leave DuckDB (2048-row vectors) for
            # emsqrt's operators, which refuse it naming the cap.
            if job["state"] == "succeeded":
                assert job["result"]["rows"] == 3600
            else:
                assert job["state"] == "failed", job
                assert "raise the cap" in job["error"]["message"], job["error"]
            seen = f"worker +{worker_peak >> 20} MiB, gateway +{peak >> 20} MiB"
            assert max(worker_peak, peak) <= CAP + SLACK, seen
    finally:
        server.stop()


@pytest.mark.xfail(
    strict=True,
    reason="known, not fixed (issue 31's closing note): the lake's ingest of the written file "
    "(lake/node.py ingest, the upload conversion) holds about 250 MiB for 8M rows, as a plain "
    "lake upload of the same rows does",
)
def test_a_job_written_to_a_dataset_stays_under_the_gateways_bound(tmp_path: Path) -> None:
    """An 8-million-row join (192 MB) written to a dataset: the gateway peaked some 300 MiB
    above its start (its ingest of the job's Parquet file; a plain upload of the same rows
    does the same), past ``driver cap + 64 MiB``."""
    home = tmp_path / "home"
    server = _start(home, tmp_path / "run")
    try:
        alice = _token(home)
        _upload(server.url, alice, tmp_path, "keys", "SELECT i AS id, 1 AS k FROM range(200) t(i)")
        two = {"source": {"dataset": "keys"}, "steps": [{"rename": {"id": "id2"}}]}
        three = {"source": {"dataset": "keys"}, "steps": [{"rename": {"id": "id3"}}]}
        explode = {
            "source": {"dataset": "keys"},
            "steps": [{"join": two, "on": ["k"]}, {"join": three, "on": ["k"]}],
        }
        with httpx.Client(base_url=server.url, timeout=300) as http:
            warm = _submit(http, alice, {"source": {"dataset": "keys"}})
            assert wait_job(http, warm, bearer(alice))["state"] == "succeeded"
            time.sleep(0.5)
            watch = _Peak(server.pid)
            job_id = _submit(http, alice, explode, write="exploded")
            job = wait_job(http, job_id, bearer(alice), timeout=300)
            peak = watch.stop()
            assert job["state"] == "succeeded", job
            assert job["result"]["rows"] == 200**3
            assert peak <= CAP + SLACK, f"gateway +{peak >> 20} MiB writing the dataset"
    finally:
        server.stop()


def test_reads_racing_a_delete_answer_410_never_500_or_a_cut_stream(tmp_path: Path) -> None:
    """Readers of a result while its owner deletes it: a reader that found it (meta.json) and
    then opens result.arrow after the delete got 500 ``internal error`` (JSON) or a 200 whose
    Arrow stream ends early (seen 25 of ~3,000 reads over 4 deletes)."""
    home = tmp_path / "home"
    server = _start(home, tmp_path / "run")
    try:
        alice = _token(home)
        _upload(
            server.url,
            alice,
            tmp_path,
            "rows",
            "SELECT i AS id, 'row ' || i AS s, i * 1.5 AS f FROM range(25000) t(i)",
        )
        h = bearer(alice)
        outcomes: Counter[str] = Counter()

        def read(job_id: str, fmt: str, stop: threading.Event) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                while not stop.is_set():
                    url = f"/api/jobs/{job_id}/result"
                    try:
                        if fmt == "json":
                            r = c.get(url, params={"offset": 20000, "limit": 50}, headers=h)
                            outcomes[f"json {r.status_code}"] += 1
                            continue
                        with c.stream("GET", url, params={"format": "arrow"}, headers=h) as r:
                            body = r.read()
                        if r.status_code == 200:
                            rows = pa.ipc.open_stream(body).read_all().num_rows
                            outcomes["arrow 200 whole" if rows == 25000 else "arrow cut"] += 1
                        else:
                            outcomes[f"arrow {r.status_code}"] += 1
                    except (httpx.HTTPError, pa.ArrowInvalid):
                        outcomes["arrow cut"] += 1

        with httpx.Client(base_url=server.url, timeout=60) as http:
            for _ in range(6):
                job_id = _submit(http, alice, {"source": {"dataset": "rows"}})
                assert wait_job(http, job_id, h)["state"] == "succeeded"
                stop = threading.Event()
                readers = [
                    threading.Thread(target=read, args=(job_id, ("json", "arrow")[i % 2], stop))
                    for i in range(16)
                ]
                for t in readers:
                    t.start()
                time.sleep(1.0)
                assert http.delete(f"/api/jobs/{job_id}/result", headers=h).status_code == 204
                time.sleep(0.5)
                stop.set()
                for t in readers:
                    t.join()
                if outcomes["json 500"] or outcomes["arrow cut"]:
                    break
        assert outcomes["json 410"], outcomes  # the race was run
        assert outcomes["arrow 410"], outcomes
        good = ("json 200", "json 410", "arrow 200 whole", "arrow 410")
        bad = {k: v for k, v in outcomes.items() if k not in good}
        assert not bad, outcomes
    finally:
        server.stop()


def test_concurrent_jobs_of_one_user_cannot_pass_the_quota_together(tmp_path: Path) -> None:
    """Three jobs of one user, each result ~2.5 MB, quota 3.75 MB: each writer counted the
    user's stored results once, when its job started (``ResultWriter._used``), so a job that
    started before another committed never saw that result; all three were kept (7.5 MB)."""
    home = tmp_path / "home"
    results = home / "results" / "elytra"
    size = 2_509_682  # the stored bytes of one result below (measured)
    quota = size * 3 // 2
    server = _start(home, tmp_path / "run", ELYTRA_RESULT_QUOTA_BYTES=str(quota))
    try:
        alice = _token(home)
        _upload(
            server.url,
            alice,
            tmp_path,
            "rows",
            "SELECT i AS id, 'ü€😀' || i AS s, i * 1.5 AS f FROM range(60000) t(i)",
        )
        spec = {"source": {"dataset": "rows"}, "steps": [{"sort": ["id DESC"]}]}
        with httpx.Client(base_url=server.url, timeout=120) as http:
            with ThreadPoolExecutor(3) as pool:
                ids = list(pool.map(lambda _: _submit(http, alice, spec), range(3)))
            jobs = [wait_job(http, j, bearer(alice)) for j in ids]
        kept = sorted(results.glob("*/result.arrow"))
        stored = sum(p.stat().st_size for p in kept)
        states = [j["state"] for j in jobs]
        assert stored <= quota, (
            f"{len(kept)} results kept, {stored} bytes past alice's quota of {quota} ({states})"
        )
        assert "succeeded" in states
    finally:
        server.stop()


def test_csv_of_a_binary_column_is_refused_or_whole(tmp_path: Path) -> None:
    """A binary column with bytes that are not UTF-8: ``format=csv`` answered 200 and the
    connection closed mid-body (``ArrowInvalid: Invalid UTF8 payload`` in ``csv_stream``);
    JSON (hex) and Arrow serve the same result."""
    home = tmp_path / "home"
    server = _start(home, tmp_path / "run")
    try:
        alice = _token(home)
        _upload(
            server.url,
            alice,
            tmp_path,
            "blobs",
            "SELECT i AS id, ('\\x00\\xff' || i)::BLOB AS bin FROM range(8) t(i)",
        )
        with httpx.Client(base_url=server.url, timeout=60) as http:
            job_id = _submit(http, alice, {"source": {"dataset": "blobs"}})
            assert wait_job(http, job_id, bearer(alice))["state"] == "succeeded"
            url = f"/api/jobs/{job_id}/result"
            assert http.get(url, headers=bearer(alice)).status_code == 200
            try:
                r = http.get(url, params={"format": "csv"}, headers=bearer(alice))
            except httpx.RemoteProtocolError as exc:
                pytest.fail(f"format=csv: 200, then the stream was cut ({exc})")
            if r.status_code == 200:
                assert len(r.text.splitlines()) == 9, r.text
            else:
                assert r.status_code == 400, r.text
    finally:
        server.stop()


def test_a_result_committed_as_the_gateway_dies_is_not_kept_for_a_failed_job(
    tmp_path: Path,
) -> None:
    """The gateway SIGKILLed after the result was renamed into place but before the job's
    record said so (the driver removes the job's spill directory in between): at the next
    start the job is marked failed ("the platform stopped"), its result route answers 503,
    and its result (over 200 MB) stays on disk for the TTL, counted in the user's quota."""
    home = tmp_path / "home"
    results = home / "results" / "elytra"
    server = _start(home, tmp_path / "run1")
    try:
        alice = _token(home)
        _upload(server.url, alice, tmp_path, "keys", "SELECT i AS id, 1 AS k FROM range(200) t(i)")
        two = {"source": {"dataset": "keys"}, "steps": [{"rename": {"id": "id2"}}]}
        three = {"source": {"dataset": "keys"}, "steps": [{"rename": {"id": "id3"}}]}
        explode = {
            "source": {"dataset": "keys"},
            "steps": [{"join": two, "on": ["k"]}, {"join": three, "on": ["k"]}],
        }
        with httpx.Client(base_url=server.url, timeout=60) as http:
            job_id = _submit(http, alice, explode)
        deadline = time.monotonic() + 60
        while not (results / job_id).exists():  # committed: renamed into place
            assert time.monotonic() < deadline
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(10)
    finally:
        server.stop()
    server = _start(home, tmp_path / "run2")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            job = http.get(f"/api/jobs/{job_id}", headers=bearer(alice)).json()
            r = http.get(f"/api/jobs/{job_id}/result", params={"limit": 1}, headers=bearer(alice))
        if job["state"] == "succeeded":  # the record was written in time: served as usual
            assert r.status_code == 200, r.text
        else:
            assert not (results / job_id).exists(), (
                f"job {job['state']} ({job['error']}), result answers {r.status_code}, "
                f"yet {(results / job_id / 'result.arrow').stat().st_size} bytes are kept"
            )
    finally:
        server.stop()
