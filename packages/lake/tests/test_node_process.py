"""`lake node` as a real process: the upload protocol, queries, faults and limits over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from lake import Client
from lake.testing import NodeProcess, peak_rss_bytes, start_node, stop_node
from platform_core import BadInputError, NotFoundError, OverBudgetError, UnauthorizedError

from .conftest import SECRET, Launch

GROUPED = "SELECT grp, count(*) AS n, avg(amount) AS a, count(DISTINCT who) AS d FROM sales GROUP BY grp ORDER BY grp"


def oracle(sql: str, csv: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{csv}')")
    return con.execute(sql).fetchall()


def rows(result: dict) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    return [tuple(r) for r in result["rows"]]


def test_upload_query_and_manage_over_http(
    launch: Launch, client_for: Callable[[NodeProcess], Client], sales_csv: Path
) -> None:
    proc = launch("a")
    c = client_for(proc)
    seen: list[int] = []
    status = c.upload(
        sales_csv, "sales", part_size=1 << 20, parallel=3, progress=lambda d, t: seen.append(d)
    )
    assert status["state"] == "committed"
    assert status["rows"] == 150_000
    assert status["chunks"] >= 5
    assert seen[-1] == sales_csv.stat().st_size
    got = rows(c.query(GROUPED))
    want = oracle(GROUPED, sales_csv)
    assert [g[:2] + g[3:] for g in got] == [w[:2] + w[3:] for w in want]
    assert all(abs(g[2] - w[2]) < 1e-9 for g, w in zip(got, want, strict=True))
    arrow = c.query_arrow("SELECT id, day FROM sales ORDER BY id")
    assert arrow.num_rows == 150_000
    assert arrow.schema.field("day").type == pa.date32()
    csv_text = c.query_csv("SELECT id, who FROM sales ORDER BY id LIMIT 3")
    assert pa_csv.read_csv(io.BytesIO(csv_text.encode())).column("id").to_pylist() == [0, 1, 2]
    (ds,) = c.datasets()
    assert (ds["name"], ds["version"], ds["rows"]) == ("sales", 1, 150_000)
    detail = c.dataset("sales")
    assert len(detail["chunk_list"]) == detail["chunks"]
    with httpx.Client(base_url=proc.url + "/api/lake", headers=c.http.headers, timeout=10) as h:
        assert [col["name"] for col in h.get("/datasets/sales/schema").json()] == [
            "id",
            "grp",
            "amount",
            "who",
            "day",
        ]
        assert h.get("/datasets/sales/preview", params={"limit": 4}).json()["row_count"] == 4
        assert [v["version"] for v in h.get("/datasets/sales/versions").json()] == [1]
        bad = h.get("/datasets/..%2F..%2Fetc")
        assert bad.status_code in (400, 404)
        assert h.get("/datasets/a.b").status_code == 400
        assert h.get("/uploads/../../x").status_code in (400, 404)
        refused = h.post("/query", json={"sql": "COPY sales TO '/tmp/out.csv'"})
        assert refused.status_code == 400
        assert "COPY is not allowed" in refused.json()["error"]
        syntax = h.post("/query", json={"sql": "SELECT * FROM sales WHERE"})
        assert syntax.status_code == 400
        assert syntax.json()["details"]["line"] == 1
    with pytest.raises(UnauthorizedError):
        Client(proc.url).datasets()
    c.delete("sales")
    assert c.datasets() == []
    with pytest.raises(BadInputError, match="no dataset named 'sales'"):
        c.query("SELECT 1 FROM sales")
    with pytest.raises(NotFoundError):
        c.dataset("sales")


def test_bad_part_is_rejected_and_an_interrupted_upload_resumes(
    launch: Launch, client_for: Callable[[NodeProcess], Client], sales_csv: Path
) -> None:
    proc = launch("a")
    c = client_for(proc)
    info = c.start_upload(sales_csv, "sales", part_size=1 << 20)
    data = sales_csv.read_bytes()
    first = data[: 1 << 20]
    with httpx.Client(base_url=proc.url + "/api/lake", headers=c.http.headers, timeout=10) as h:
        wrong = h.put(
            f"/uploads/{info['id']}/parts/0", content=first, headers={"x-content-sha256": "0" * 64}
        )
        assert wrong.status_code == 400
        assert "SHA-256" in wrong.json()["error"]
    # Send some parts, then "crash" (stop sending) and resume from another client.
    for n in (0, 2, 3):
        c.send_part(sales_csv, info, n)
    assert c.upload_status(info["id"])["received"] == [0, 2, 3]
    with httpx.Client(base_url=proc.url + "/api/lake", headers=c.http.headers, timeout=10) as h:
        early = h.post(f"/uploads/{info['id']}/complete")
        assert early.status_code == 409
        assert "missing parts 1, 4" in early.json()["error"]
    assert c.datasets() == []  # nothing visible before the commit
    resumed = Client(proc.url, c.http.headers["authorization"].split()[1])
    sent: list[int] = []
    status = resumed.upload(
        sales_csv, "sales", upload_id=info["id"], progress=lambda d, t: sent.append(d)
    )
    resumed.close()
    assert sent[0] == 3 * (1 << 20)  # it only sent what was missing
    assert status["state"] == "committed"
    assert rows(c.query("SELECT count(*), sum(id) FROM sales")) == oracle(
        "SELECT count(*), sum(id) FROM sales", sales_csv
    )


def test_limits(
    launch: Launch, client_for: Callable[[NodeProcess], Client], sales_csv: Path
) -> None:
    proc = launch("a", LAKE_MAX_PART_BYTES="65536", LAKE_MAX_UPLOAD_BYTES="1000000")
    c = client_for(proc)
    with pytest.raises(OverBudgetError, match="LAKE_MAX_UPLOAD_BYTES"):
        c.start_upload(sales_csv, "sales", part_size=65536)
    small = sales_csv.parent / "small.csv"
    small.write_bytes(b"".join(sales_csv.read_bytes().splitlines(keepends=True)[:5000]))
    info = c.start_upload(small, "small", part_size=65536)
    with httpx.Client(base_url=proc.url + "/api/lake", headers=c.http.headers, timeout=10) as h:
        big = b"x" * 70000
        r = h.put(
            f"/uploads/{info['id']}/parts/0",
            content=big,
            headers={"x-content-sha256": hashlib.sha256(big).hexdigest()},
        )
        assert r.status_code == 413
    with pytest.raises(BadInputError, match="dataset name"):
        c.start_upload(small, "../evil")
    # Any other body is limited too (PLATFORM_MAX_BODY_BYTES), declared or streamed.
    huge = b'{"sql": "' + b"x" * (17 << 20) + b'"}'
    with httpx.Client(base_url=proc.url + "/api/lake", headers=c.http.headers, timeout=30) as h:
        r = h.post("/query", content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 413
        streamed = h.post(
            "/query", content=iter([huge[i : i + 65536] for i in range(0, len(huge), 65536)])
        )
        assert streamed.status_code == 413
        assert streamed.json()["type"] == "over_budget"


def test_sigkill_during_conversion_loses_nothing_and_resumes(
    launch: Launch,
    client_for: Callable[[NodeProcess], Client],
    tmp_path: Path,
    csv_maker: Callable[..., Path],
) -> None:
    big = csv_maker(tmp_path / "big.csv", rows=1_500_000)
    proc = launch("a")
    c = client_for(proc)
    c.upload(big, "kept", part_size=8 << 20, wait=True)
    before = rows(c.query("SELECT count(*), sum(round(amount * 1000)::BIGINT), sum(id) FROM kept"))
    status = c.upload(big, "fresh", part_size=8 << 20, wait=False)
    assert status["state"] == "converting"
    time.sleep(0.3)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait()
    again = launch("a")
    c2 = client_for(again)
    # Committed data is intact; the interrupted version is either absent or complete.
    assert (
        rows(c2.query("SELECT count(*), sum(round(amount * 1000)::BIGINT), sum(id) FROM kept"))
        == before
    )
    names = [d["name"] for d in c2.datasets()]
    if "fresh" in names:
        assert (
            rows(c2.query("SELECT count(*), sum(round(amount * 1000)::BIGINT), sum(id) FROM fresh"))
            == before
        )
    done = c2.wait_upload(status["id"], timeout=120)  # the restarted node converts again
    assert done["state"] == "committed"
    assert (
        rows(c2.query("SELECT count(*), sum(round(amount * 1000)::BIGINT), sum(id) FROM fresh"))
        == before
    )
    chunk_dir = next((tmp_path / "a" / "lake").glob("*/chunks"))
    assert not list(chunk_dir.glob(".tmp-*"))


@pytest.mark.slow
def test_ingest_memory_stays_within_budget(
    launch: Launch,
    client_for: Callable[[NodeProcess], Client],
    tmp_path: Path,
    csv_maker: Callable[..., Path],
) -> None:
    budget = 16 << 20
    big = csv_maker(tmp_path / "big.csv", rows=4_700_000)
    assert big.stat().st_size >= 10 * budget
    proc = launch("a", LAKE_INGEST_MEMORY_BYTES=str(budget), LAKE_CHUNK_BYTES=str(4 << 20))
    c = client_for(proc)
    # A first small upload loads the code an ingest runs (pyarrow's CSV and Parquet modules,
    # their shared libraries: about 30 MiB of pages once per process), so the baseline holds it
    # and the growth measured below is what the big file's data costs.
    c.upload(csv_maker(tmp_path / "small.csv", rows=20_000), "warm", part_size=4 << 20)
    baseline, _ = peak_rss_bytes(proc.proc.pid)
    status = c.upload(big, "big", part_size=4 << 20, parallel=2)
    assert status["rows"] == 4_700_000
    _, peak = peak_rss_bytes(proc.proc.pid)
    assert peak - baseline <= budget + (64 << 20), (baseline >> 20, peak >> 20)


def test_cli_upload_and_query(launch: Launch, sales_csv: Path) -> None:
    proc = launch("a")
    env = {**os.environ, "PLATFORM_SECRET": SECRET}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lake",
            "upload",
            str(sales_csv),
            "--name",
            "sales",
            "--node",
            proc.url,
            "--json",
            "--part-mb",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows"] == 150_000
    q = subprocess.run(
        [
            sys.executable,
            "-m",
            "lake",
            "query",
            "SELECT count(*) AS n FROM sales",
            "--node",
            proc.url,
            "--csv",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert q.stdout.replace('"', "").split() == ["n", "150000"]
    bad = subprocess.run(
        [sys.executable, "-m", "lake", "query", "ATTACH 'x'", "--node", proc.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ATTACH is not allowed")
    assert "Traceback" not in bad.stderr


def test_node_to_node_calls_need_the_cluster_token(
    launch: Launch, client_for: Callable[[NodeProcess], Client], sales_csv: Path, token: str
) -> None:
    import pyarrow.flight as fl

    from lake.cluster.flight import FlightPeer
    from platform_core.auth import TokenSigner

    proc = launch("a")
    c = client_for(proc)
    c.upload(sales_csv, "sales", part_size=1 << 20)
    chunk = c.dataset("sales")["chunk_list"][0]
    for bad in (token, "not-a-token"):
        user = FlightPeer(proc.flight, bad)
        with pytest.raises(fl.FlightUnauthenticatedError):
            user.fetch_chunk(chunk["sha256"])
        user.close()
        r = httpx.post(
            f"{proc.url}/internal/lake/ping", json={}, headers={"authorization": f"Bearer {bad}"}
        )
        assert r.status_code == 401
    good = FlightPeer(proc.flight, TokenSigner(SECRET).cluster_token("peer"))
    data = good.fetch_chunk(chunk["sha256"])
    good.close()
    assert hashlib.sha256(data).hexdigest() == chunk["sha256"]
    assert len(data) == chunk["bytes"]
    # A cluster token is no user token.
    cluster = Client(proc.url, TokenSigner(SECRET).cluster_token("peer"))
    with pytest.raises(UnauthorizedError, match="node-to-node"):
        cluster.datasets()
    cluster.close()


def test_the_node_logs_one_json_object_per_line(tmp_path: Path) -> None:
    """Its log format was ``"msg": %(message)r``, a Python repr, not JSON; uvicorn's own lines
    were plain text."""
    proc = start_node(
        tmp_path / "n",
        "--log-level",
        "info",
        env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0"},
    )
    try:
        httpx.get(f"{proc.url}/api/lake/datasets?auth=eyJhbGciOi.eyJzdWIi.c2ln", timeout=10)
    finally:
        stop_node(proc)
    lines = [
        line
        for line in proc.output().splitlines()
        if line.strip() and not line.startswith(("nanobind", " - ", "See https"))  # duckdb at exit
    ]
    records = [json.loads(line) for line in lines]
    assert {"lake", "uvicorn.error"} <= {r["logger"] for r in records}
    assert "eyJhbGciOi" not in proc.output()
