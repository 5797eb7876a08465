"""Query limits on a real `lake node`: timeouts, the query pool, per-user limits, cancel on
disconnect, capped JSON and streamed Arrow/CSV (with the node's RSS read from outside)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from lake import Client
from lake.testing import NodeProcess, peak_rss_bytes, start_node, stop_node
from platform_core import UnavailableError
from platform_core.auth import TokenSigner

from .conftest import SECRET

ROWS = 1200
LONG = (
    "SELECT count(*) FROM t a, t b, t c, t d WHERE hash(a.id + b.id * 2 + c.id * 3 + d.id * 5) = 0"
)
"""Runs for minutes unless interrupted (1200^4 combinations)."""
MAX_TIMEOUT = 100


def make_t(path: Path, rows: int = ROWS) -> Path:
    duckdb.sql(
        f"COPY (SELECT i AS id, repeat(chr(97 + (i % 26)::INTEGER), 100) AS s "
        f"FROM range({rows}) t(i)) TO '{path}' (HEADER)"
    )
    return path


def auth(sub: str, admin: bool = False) -> dict[str, str]:
    return {"authorization": f"Bearer {TokenSigner(SECRET).issue(sub, admin=admin)}"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("limits")


@pytest.fixture(scope="module")
def t_csv(home: Path) -> Path:
    return make_t(home / "t.csv")


@pytest.fixture(scope="module")
def proc(home: Path, t_csv: Path) -> Iterator[NodeProcess]:
    node = start_node(
        home / "node",
        env={
            "PLATFORM_SECRET": SECRET,
            "LAKE_FLIGHT_PORT": "0",
            "LAKE_QUERY_WORKERS": "3",
            "LAKE_MAX_QUERIES_PER_USER": "2",
            "LAKE_MAX_RESULT_ROWS": "1000",
            "LAKE_MAX_JSON_BYTES": str(64 << 10),
            "LAKE_MAX_STREAM_BYTES": str(1 << 20),
            "LAKE_MAX_QUERY_TIMEOUT_SECONDS": str(MAX_TIMEOUT),
            "LAKE_QUERY_THREADS": "1",
        },
    )
    with Client(node.url, TokenSigner(SECRET).issue("owner", admin=True)) as c:
        c.upload(t_csv, "t")
    yield node
    stop_node(node)


def api(proc: NodeProcess, sub: str = "alice", timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=proc.url + "/api/lake", headers=auth(sub), timeout=timeout)


def query_stats(proc: NodeProcess) -> dict[str, int]:
    with httpx.Client(base_url=proc.url + "/api/lake", headers=auth("root", True)) as h:
        stats = h.get("/nodes/self").json()["stats"]
    return {k: stats[k] for k in ("queries_running", "queries_waiting")}


@pytest.fixture(autouse=True)
def cancel_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test must not leave long queries running for the next ones."""
    yield
    if "proc" in request.fixturenames:
        node = request.getfixturevalue("proc")
        with httpx.Client(base_url=node.url + "/api/lake", headers=auth("root", True)) as h:
            for qid in ["g1", "g2", *(f"long-{i}" for i in range(45))]:
                h.delete(f"/query/{qid}")


def wait_for(pred: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def admitted(proc: NodeProcess) -> int:
    s = query_stats(proc)
    return s["queries_running"] + s["queries_waiting"]


@pytest.mark.parametrize(
    "timeout",
    ["1e999", "-1e999", "Infinity", "NaN", "-1", "0", str(MAX_TIMEOUT + 1), '"soon"', "true"],
)
def test_a_timeout_that_is_not_finite_positive_and_bounded_is_400(
    proc: NodeProcess, timeout: str
) -> None:
    body = '{"sql": "SELECT count(*) FROM t", "timeout": ' + timeout + "}"
    with api(proc) as h:
        r = h.post("/query", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, (timeout, r.status_code, r.text)
    assert "timeout" in r.json()["error"]
    assert r.json()["type"] == "bad_input"


def test_a_timeout_within_the_limit_is_taken(proc: NodeProcess) -> None:
    with api(proc) as h:
        r = h.post("/query", json={"sql": "SELECT count(*) FROM t", "timeout": MAX_TIMEOUT})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[ROWS]]
        slow = h.post("/query", json={"sql": LONG, "timeout": 0.5})
        assert slow.status_code == 408
        assert "timeout of 0.5 s" in slow.json()["error"]


@pytest.mark.parametrize("fmt", ["arrow", "csv", "parquet"])
def test_a_stream_that_times_out_before_its_first_batch_is_an_error_answer(
    proc: NodeProcess, fmt: str
) -> None:
    """A query that times out at once answers an error, in every streamed format (the gateway
    fuzzer saw a 2e-131 s timeout cut an Arrow stream after its headers when the query
    opened in time and its first batch did not; the first batch is now made before the
    headers go out). A fetch past the deadline raises even when the timer thread has not
    run yet: CI once saw the timer fire between the first chunk and the second, cutting a
    CSV stream after its headers."""
    with api(proc) as h:
        r = h.post("/query", json={"sql": "SELECT * FROM t", "format": fmt, "timeout": 2e-131})
        assert r.status_code == 408, (r.status_code, r.text[:200])
        assert "timeout" in r.json()["error"]


def test_catalog_and_cancel_answer_while_the_query_pool_is_full(proc: NodeProcess) -> None:
    """45 long queries (more than the pool and than Starlette's 40 threads) from 45 users."""
    n = 45
    ids = [f"long-{i}" for i in range(n)]

    def run(i: int) -> httpx.Response:
        with api(proc, f"user{i}", timeout=MAX_TIMEOUT + 30) as h:
            return h.post("/query", json={"sql": LONG, "timeout": MAX_TIMEOUT, "query_id": ids[i]})

    with ThreadPoolExecutor(n) as pool:
        answers = [pool.submit(run, i) for i in range(n)]
        wait_for(lambda: admitted(proc) == n, f"{n} queries admitted")
        assert query_stats(proc)["queries_running"] == 3  # LAKE_QUERY_WORKERS
        with api(proc, "someone", timeout=10) as h:
            listed = h.get("/datasets")
            assert listed.status_code == 200
            assert [d["name"] for d in listed.json()] == ["t"]
            assert h.get("/datasets/t").json()["rows"] == ROWS
        for i, qid in enumerate(ids):
            with api(proc, f"user{i}", timeout=10) as h:
                r = h.delete(f"/query/{qid}")
            assert r.status_code == 200
            assert r.json() == {"query_id": qid, "cancelled": True}
        results = [a.result() for a in answers]
    assert all(r.status_code == 408 for r in results), {r.status_code for r in results}
    assert all("was cancelled" in r.json()["error"] for r in results)
    wait_for(lambda: admitted(proc) == 0, "all queries released")


def test_a_user_over_the_query_limit_gets_429(proc: NodeProcess) -> None:
    def run(qid: str) -> httpx.Response:
        with api(proc, "greedy", timeout=MAX_TIMEOUT + 30) as h:
            return h.post("/query", json={"sql": LONG, "query_id": qid, "timeout": MAX_TIMEOUT})

    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(run, q) for q in ("g1", "g2")]
        wait_for(lambda: admitted(proc) == 2, "two queries admitted")
        with api(proc, "greedy") as h:
            r = h.post("/query", json={"sql": "SELECT count(*) FROM t"})
            assert r.status_code == 429, r.text
            assert int(r.headers["retry-after"]) >= 1
            assert "LAKE_MAX_QUERIES_PER_USER=2" in r.json()["error"]
            # Someone else still gets the third pool thread.
            with api(proc, "modest") as other:
                assert other.post("/query", json={"sql": "SELECT count(*) FROM t"}).json()[
                    "rows"
                ] == [[ROWS]]
            # Another user may not cancel greedy's query; greedy may.
            with api(proc, "modest") as other:
                refused = other.delete("/query/g1")
                assert refused.status_code == 403
                assert "greedy" in refused.json()["error"]
            assert h.delete("/query/g1").json()["cancelled"] is True
            assert h.delete("/query/g2").json()["cancelled"] is True
        assert [a.result().status_code for a in running] == [408, 408]
    wait_for(lambda: admitted(proc) == 0, "the slots released")
    with api(proc, "greedy") as h:
        assert h.post("/query", json={"sql": "SELECT count(*) FROM t"}).status_code == 200


def test_a_query_is_cancelled_when_its_client_leaves(proc: NodeProcess) -> None:
    with api(proc, "leaver", timeout=1) as h, pytest.raises(httpx.ReadTimeout):
        h.post("/query", json={"sql": LONG, "timeout": MAX_TIMEOUT})
    # The node stops the query (its slot and pool thread come back) long before its timeout.
    wait_for(lambda: admitted(proc) == 0, "the abandoned query cancelled", MAX_TIMEOUT / 3)
    # The same for a CSV or Arrow query whose first batch has not come yet.
    for fmt in ("csv", "arrow"):
        with api(proc, "leaver", timeout=1) as h, pytest.raises(httpx.ReadTimeout):
            h.post("/query", json={"sql": LONG, "timeout": MAX_TIMEOUT, "format": fmt})
        wait_for(lambda: admitted(proc) == 0, "the abandoned stream cancelled", MAX_TIMEOUT / 3)


def test_json_is_capped_and_csv_and_arrow_stream(proc: NodeProcess, t_csv: Path) -> None:
    oracle = duckdb.sql(f"SELECT * FROM read_csv('{t_csv}') ORDER BY id").to_arrow_table()
    with api(proc) as h:
        r = h.post("/query", json={"sql": "SELECT * FROM t ORDER BY id"})
        assert r.status_code == 413, r.text
        message = r.json()["error"]
        assert "LAKE_MAX_RESULT_ROWS" in message
        assert "'arrow' or 'csv'" in message
        r = h.post("/query", json={"sql": "SELECT * FROM t ORDER BY id LIMIT 900"})
        assert r.status_code == 413, r.text
        assert "LAKE_MAX_JSON_BYTES" in r.json()["error"]
        small = h.post("/query", json={"sql": "SELECT * FROM t ORDER BY id LIMIT 5"})
        assert small.json()["rows"] == [list(x.values()) for x in oracle.slice(0, 5).to_pylist()]
        csv = h.post("/query", json={"sql": "SELECT * FROM t ORDER BY id", "format": "csv"})
        assert csv.status_code == 200
        assert pa_csv.read_csv(io.BytesIO(csv.content)).equals(oracle)
        arrow = h.post("/query", json={"sql": "SELECT * FROM t ORDER BY id", "format": "arrow"})
        assert pa.ipc.open_stream(arrow.content).read_all().equals(oracle)
        empty = h.post("/query", json={"sql": "SELECT * FROM t WHERE id < 0", "format": "arrow"})
        got = pa.ipc.open_stream(empty.content).read_all()
        assert (got.num_rows, got.schema.names) == (0, ["id", "s"])


def test_parquet_is_a_streamed_file_equal_to_duckdb(proc: NodeProcess, t_csv: Path) -> None:
    sql = "SELECT id, s, id % 7 AS g, id / 3 AS q FROM t ORDER BY id"
    oracle = duckdb.sql(sql.replace("FROM t", f"FROM read_csv('{t_csv}')")).to_arrow_table()
    with api(proc) as h:
        r = h.post("/query", json={"sql": sql, "format": "parquet"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/vnd.apache.parquet"
        assert r.headers["content-disposition"].endswith('.parquet"')
        got = pq.read_table(io.BytesIO(r.content))
        assert got.equals(oracle)
        # DuckDB itself reads the file the lake wrote.
        again = duckdb.sql("SELECT * FROM got ORDER BY id").to_arrow_table()
        assert again.equals(oracle)
        empty = h.post("/query", json={"sql": "SELECT * FROM t WHERE id < 0", "format": "parquet"})
        got = pq.read_table(io.BytesIO(empty.content))
        assert (got.num_rows, got.schema.names) == (0, ["id", "s"])
        # About 46 MB of hashes Parquet cannot compress away; the limit is 1 MiB.
        big = "SELECT md5(a.id::VARCHAR || '-' || b.id::VARCHAR) AS h FROM t a, t b"
        with h.stream("POST", "/query", json={"sql": big, "format": "parquet"}) as r:
            assert r.status_code == 200
            sizes: list[int] = []
            with pytest.raises(httpx.RemoteProtocolError):
                sizes.extend(len(piece) for piece in r.iter_bytes())
        assert sum(sizes) <= 2 << 20
    wait_for(lambda: admitted(proc) == 0, "the cut-off stream released")


def test_a_stream_past_its_byte_limit_is_cut_off(proc: NodeProcess) -> None:
    big = "SELECT a.id, a.s, b.id AS id2 FROM t a, t b"  # about 160 MB, the limit is 1 MiB
    with api(proc, "streamer") as h:
        with h.stream("POST", "/query", json={"sql": big, "format": "arrow"}) as r:
            assert r.status_code == 200
            got: list[int] = []
            with pytest.raises(httpx.RemoteProtocolError):
                got.extend(len(piece) for piece in r.iter_bytes())
        assert sum(got) <= 2 << 20
    with (
        Client(proc.url, TokenSigner(SECRET).issue("streamer")) as c,
        pytest.raises(UnavailableError, match="LAKE_MAX_STREAM_BYTES"),
    ):
        c.query_arrow(big)
    wait_for(lambda: admitted(proc) == 0, "the cut stream released")


class _Body(io.RawIOBase):
    """A streamed HTTP body as a file for pyarrow's IPC reader, read slowly at first."""

    def __init__(self, pieces: Iterator[bytes], slow_bytes: int) -> None:
        self.pieces = pieces
        self.rest = b""
        self.read_bytes = 0
        self.slow_bytes = slow_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if not self.rest:
            self.rest = next(self.pieces, b"")
            if self.read_bytes < self.slow_bytes:
                time.sleep(0.01)  # a slow reader at first: the node must not run ahead
        n = min(len(buf), len(self.rest))
        buf[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        self.read_bytes += n
        return n


@pytest.mark.slow
def test_large_arrow_and_csv_results_stream_in_bounded_memory(tmp_path: Path) -> None:
    """About 300 MB of Arrow and of CSV through the node; its RSS, read from /proc, stays low."""
    t_csv = make_t(tmp_path / "t.csv")
    node = start_node(
        tmp_path / "node",
        env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0", "LAKE_QUERY_THREADS": "2"},
    )
    try:
        headers = auth("reader")
        with Client(node.url, TokenSigner(SECRET).issue("reader")) as c:
            c.upload(t_csv, "t")
            c.query("SELECT count(*) FROM t a, t b WHERE a.id = b.id")  # warm up
        sql = "SELECT a.id, a.s, b.id AS id2, b.s AS s2 FROM t a, t b"
        want = duckdb.sql(
            f"SELECT count(*), sum(a.id + b.id) FROM read_csv('{t_csv}') a, read_csv('{t_csv}') b"
        ).fetchall()[0]
        baseline, _ = peak_rss_bytes(node.proc.pid)
        url = node.url + "/api/lake/query"
        with httpx.Client(headers=headers, timeout=120) as h:
            with h.stream("POST", url, json={"sql": sql, "format": "arrow"}) as r:
                assert r.status_code == 200
                body = _Body(r.iter_bytes(1 << 20), slow_bytes=20 << 20)
                reader = pa.ipc.open_stream(io.BufferedReader(body, 1 << 20))
                rows = total = 0
                for batch in reader:
                    rows += batch.num_rows
                    total += pa.compute.sum(
                        pa.compute.add(batch.column("id"), batch.column("id2"))
                    ).as_py()
            arrow_bytes = body.read_bytes
            assert (rows, total) == want
            assert arrow_bytes > 250 << 20
            with h.stream("POST", url, json={"sql": sql, "format": "csv"}) as r:
                assert r.status_code == 200
                csv_bytes = lines = 0
                for piece in r.iter_bytes(1 << 20):
                    csv_bytes += len(piece)
                    lines += piece.count(b"\n")
            assert lines == want[0] + 1  # the header
            assert csv_bytes > 250 << 20
        _, peak = peak_rss_bytes(node.proc.pid)
        grown = peak - baseline
        assert grown < 128 << 20, (baseline >> 20, peak >> 20, arrow_bytes >> 20)
        # A client that stops reading midway: the node closes the query and frees its slot.
        with (
            httpx.Client(headers=headers, timeout=120) as h,
            h.stream("POST", url, json={"sql": sql, "format": "arrow"}) as r,
        ):
            pieces = r.iter_bytes(1 << 20)
            for _ in range(5):
                next(pieces)
        root = auth("root", admin=True)
        with httpx.Client(base_url=node.url + "/api/lake", headers=root, timeout=10) as h:
            wait_for(
                lambda: h.get("/nodes/self").json()["stats"]["queries_running"] == 0,
                "the abandoned stream closed",
            )
    finally:
        stop_node(node)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "(" * 400 + "1" + ")" * 400 + " AS x FROM t",
        "SELECT " + " + ".join(["1"] * 600) + " AS x FROM t",
    ],
    ids=["parentheses", "operators"],
)
def test_a_query_nested_past_the_parser_is_400_and_the_node_answers_on(
    proc: NodeProcess, sql: str
) -> None:
    """sqlglot parses and walks recursively: past Python's stack this was a 500."""
    with api(proc) as h:
        r = h.post("/query", json={"sql": sql})
        assert r.status_code == 400, (r.status_code, r.text[:300])
        assert r.json()["type"] == "bad_input"
        assert "nested too deeply" in r.json()["error"]
        assert h.post("/query", json={"sql": "SELECT count(*) FROM t"}).status_code == 200


def test_a_long_flat_condition_is_answered_as_duckdb_answers(
    proc: NodeProcess, t_csv: Path
) -> None:
    where = " OR ".join(f"id = {i * 7}" for i in range(900))
    with api(proc) as h:
        r = h.post("/query", json={"sql": f"SELECT count(*) AS n FROM t WHERE {where}"})
    assert r.status_code == 200, r.text[:300]
    want = duckdb.sql(f"SELECT count(*) FROM read_csv('{t_csv}') WHERE {where}").fetchall()
    assert r.json()["rows"] == [list(want[0])]
