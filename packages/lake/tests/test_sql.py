"""SQL on one node: results equal DuckDB over the original files; read-only for real."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lake import LakeNode, SQLError, check_read_only
from lake.errors import QueryTimeoutError
from lake.sql.engine import ResultStream
from lake.sql.readonly import sandboxed_connection

QUERIES = [
    "SELECT count(*), sum(amount), min(day), max(who) FROM sales",
    "SELECT grp, count(*) AS n, avg(amount) AS a, count(DISTINCT who) AS d FROM sales "
    "WHERE amount > 250 GROUP BY grp HAVING count(*) > 10 ORDER BY grp",
    "SELECT id, amount FROM sales WHERE who = 'user5' ORDER BY amount DESC, id LIMIT 7",
    "SELECT s.grp, g.label, sum(s.amount) AS total FROM sales s JOIN groups g ON s.grp = g.grp "
    "GROUP BY ALL ORDER BY s.grp",
    "SELECT id, grp, rank() OVER (PARTITION BY grp ORDER BY amount DESC, id) AS r FROM sales "
    "QUALIFY r <= 2 ORDER BY grp, r",
    "WITH big AS (SELECT * FROM sales WHERE amount > 900) SELECT month(day) AS m, count(*) "
    "FROM big GROUP BY m ORDER BY m",
    "SELECT grp FROM sales WHERE id < 5 UNION ALL SELECT grp FROM groups ORDER BY 1",
]


@pytest.fixture
def loaded(
    node: LakeNode, sales_csv: Path, tmp_path: Path, ingest_file: Callable[..., None]
) -> tuple[LakeNode, duckdb.DuckDBPyConnection]:
    groups = tmp_path / "groups.csv"
    groups.write_text("grp,label\n" + "".join(f"{g},label{g}\n" for g in range(13)))
    ingest_file(node, sales_csv, "sales")
    ingest_file(node, groups, "groups")
    oracle = duckdb.connect()
    oracle.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{sales_csv}')")
    oracle.execute(f"CREATE VIEW groups AS SELECT * FROM read_csv('{groups}')")
    return node, oracle


def close(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


@pytest.mark.parametrize("sql", QUERIES)
def test_queries_equal_duckdb_over_the_original(
    loaded: tuple[LakeNode, duckdb.DuckDBPyConnection], sql: str
) -> None:
    node, oracle = loaded
    ours = [tuple(r.values()) for r in node.engine.run(sql).table.to_pylist()]
    theirs = oracle.execute(sql).fetchall()
    assert ours
    assert close(ours, theirs), (ours[:3], theirs[:3])


def test_show_describe_explain(loaded: tuple[LakeNode, duckdb.DuckDBPyConnection]) -> None:
    node, _ = loaded
    assert node.engine.run("SHOW TABLES").table.column("name").to_pylist() == ["groups", "sales"]
    desc = node.engine.run("DESCRIBE sales").table.to_pylist()
    assert [(d["column_name"], d["column_type"]) for d in desc] == [
        ("id", "i64"),
        ("grp", "i64"),
        ("amount", "f64"),
        ("who", "utf8"),
        ("day", "date"),
    ]
    plan = node.engine.run("EXPLAIN SELECT count(*) FROM sales").table.to_pylist()
    manifest = node.catalog.get("sales")
    assert [p["chunk"] for p in plan] == [c.sha256 for c in manifest.chunks]
    assert sum(p["bytes"] for p in plan) == manifest.size
    assert {p["node"] for p in plan} == {node.node_id}


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("COPY sales TO '/tmp/x.csv'", "COPY is not allowed"),
        ("ATTACH '/tmp/x.db' AS x", "ATTACH is not allowed"),
        ("INSTALL httpfs", "INSTALL is not allowed"),
        ("PRAGMA version", "PRAGMA is not allowed"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table function"),
        ("SELECT * FROM '/etc/passwd'", "no dataset named '/etc/passwd'"),
        ("SELECT * FROM sales; DROP TABLE sales", "exactly one statement"),
        ("CREATE TABLE t AS SELECT 1", "CREATE is not allowed"),
        ("SET enable_external_access = true", "SET is not allowed"),
        ("SELECT * FROM main.sales", "qualified table name"),
        ("DELETE FROM sales", "DELETE is not allowed"),
        ("SELECT * FROM (SELECT * FROM read_parquet('/etc/x.parquet'))", "table function"),
    ],
)
def test_gate_refuses_anything_but_reads(
    loaded: tuple[LakeNode, duckdb.DuckDBPyConnection], sql: str, needle: str
) -> None:
    node, _ = loaded
    with pytest.raises(SQLError, match=needle):
        node.engine.run(sql)


def test_sandbox_holds_even_without_the_gate(tmp_path: Path) -> None:
    allowed = tmp_path / "chunks"
    allowed.mkdir()
    conn = sandboxed_connection([allowed], threads=1, memory_limit="256MB", temp_dir=tmp_path / "t")
    for sql in [
        "SELECT * FROM read_csv('/etc/passwd')",
        f"COPY (SELECT 1) TO '{tmp_path}/out.csv'",
        f"ATTACH '{tmp_path}/x.db'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
    ]:
        with pytest.raises(duckdb.Error):
            conn.execute(sql)
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "x.db").exists()


def test_errors_give_the_position(loaded: tuple[LakeNode, duckdb.DuckDBPyConnection]) -> None:
    node, _ = loaded
    with pytest.raises(SQLError) as syntax:
        node.engine.run("SELECT grp,\n  count(*\nFROM sales")
    assert syntax.value.details["line"] in (2, 3)
    with pytest.raises(SQLError, match="line 2, column 3") as binder:
        node.engine.run("SELECT grp,\n  nope FROM sales")
    assert "nope" in binder.value.message
    with pytest.raises(SQLError, match=r"no dataset named 'salez' \(datasets: groups, sales\)"):
        node.engine.run("SELECT * FROM salez")
    with pytest.raises(SQLError, match="line 1, column 15"):
        check_read_only("SELECT * FROM read_csv('/etc/passwd')", ["sales"])


def test_timeout_and_cancel(loaded: tuple[LakeNode, duckdb.DuckDBPyConnection]) -> None:
    node, _ = loaded
    slow = "SELECT sum(a.amount * b.amount) FROM sales a, sales b"
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match=r"timeout of 0\.5 s"):
        node.engine.run(slow, timeout=0.5)
    assert time.monotonic() - started < 20
    errors: list[Exception] = []

    def run() -> None:
        try:
            node.engine.run(slow, query_id="q-cancel-me", timeout=60)
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 10
    while not node.engine.cancel("q-cancel-me"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t.join(20)
    assert not t.is_alive()
    assert isinstance(errors[0], QueryTimeoutError)
    assert "cancelled" in errors[0].message
    assert node.engine.cancel("q-cancel-me") is False


def test_a_fetch_past_the_deadline_raises_before_the_timer_thread_runs() -> None:
    """The deadline is checked on each fetch, not only by the timer thread: CI saw a timer
    fire between a stream's first chunk and its second, cutting a CSV answer after its
    headers instead of answering 408. Here no timer exists at all."""
    batch = pa.record_batch({"x": pa.array([1, 2, 3])})
    stream = ResultStream(batch.schema, iter([batch, batch]), "q-late", "select", started=0.0)
    stream.limit, stream.deadline = 1.0, time.monotonic() + 3600
    assert stream.next_batch() == batch  # before the deadline
    stream.deadline = time.monotonic() - 1e-9
    with pytest.raises(QueryTimeoutError, match=r"timeout of 1 s"):
        stream.next_batch()
    assert stream.timed_out


def test_a_cancel_at_any_moment_of_the_start_stops_the_query(
    loaded: tuple[LakeNode, duckdb.DuckDBPyConnection],
) -> None:
    """A cancel that lands while the query is being set up, before DuckDB runs it, still ends
    it (DuckDB drops an interrupt sent before its query starts; the stream re-sends it)."""
    node, _ = loaded
    slow = "SELECT sum(a.amount * b.amount) FROM sales a, sales b"
    for attempt in range(8):
        query_id = f"q-early-{attempt}"
        errors: list[Exception] = []

        def run(qid: str = query_id, out: list[Exception] = errors) -> None:
            try:
                node.engine.run(slow, query_id=qid, timeout=120)
            except Exception as exc:
                out.append(exc)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 10
        while not node.engine.cancel(query_id):  # as soon as it is registered: no sleep
            assert time.monotonic() < deadline
        t.join(20)
        assert not t.is_alive(), f"attempt {attempt}: the cancelled query kept running"
        assert isinstance(errors[0], QueryTimeoutError)
        assert "cancelled" in errors[0].message


def test_corrupt_chunk_is_refused(loaded: tuple[LakeNode, duckdb.DuckDBPyConnection]) -> None:
    node, _ = loaded
    chunk = node.catalog.get("sales").chunks[2]
    path = node.chunks.path(chunk.sha256)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x55
    time.sleep(0.01)
    path.write_bytes(bytes(raw))
    from lake import CorruptChunkError

    with pytest.raises(CorruptChunkError, match=chunk.sha256):
        node.engine.run("SELECT count(*) FROM sales")


def test_integer_sums_are_duckdbs_hugeint_in_type_value_and_json(
    node: LakeNode, tmp_path: Path, ingest_file: Callable[..., None]
) -> None:
    """SUM over integers near int64's limits and over booleans: DuckDB's HUGEINT, as Arrow
    decimal128(38, 0), exact past int64; in JSON a whole number (decimals are exact)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from platform_core.jsoncells import json_rows

    rng = np.random.default_rng(33)
    n = 5000
    top, bottom = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    x = rng.choice(np.array([top, top - 1, bottom, bottom + 1, 0, 1, -1], np.int64), n)
    path = tmp_path / "big.parquet"
    pq.write_table(
        pa.table(
            {
                "k": pa.array(rng.integers(0, 5, n), pa.int64()),
                "x": pa.array(x, mask=rng.random(n) < 0.1),
                "y": pa.array(np.full(n, top), mask=np.arange(n) % 5 == 4),
                "i": pa.array(rng.integers(-(2**31), 2**31, n).astype(np.int32)),
                "b": pa.array(rng.random(n) < 0.5, mask=rng.random(n) < 0.1),
            }
        ),
        path,
    )
    ingest_file(node, path, "big")
    oracle = duckdb.connect()
    oracle.execute(f"CREATE VIEW big AS SELECT * FROM read_parquet('{path}')")
    for sql in [
        "SELECT k, sum(x) AS s, sum(y) AS sy, sum(i) AS si, sum(b) AS sb, avg(x) AS a "
        "FROM big GROUP BY k ORDER BY k",
        "SELECT sum(x) AS s, sum(y) AS sy, sum(b) AS sb FROM big",
        "SELECT sum(x) AS s, sum(b) AS sb FROM big WHERE k > 100",
        "SELECT k, sum(y) AS sy FROM big WHERE y IS NULL GROUP BY k ORDER BY k",  # all NULL
    ]:
        ours = node.engine.run(sql).table
        theirs = oracle.sql(sql).to_arrow_table()
        assert ours.schema == theirs.schema, sql
        assert ours.schema.field("s" if "sum(x)" in sql else "sy").type == pa.decimal128(38, 0)
        assert ours.equals(theirs), sql
        # JSON: a sum is a whole number, the same integer as DuckDB's own Python value
        assert json_rows(ours) == [list(r) for r in oracle.execute(sql).fetchall()], sql
    totals = json_rows(node.engine.run("SELECT k, sum(y) FROM big GROUP BY k").table)
    assert all(isinstance(t, int) and t > top for _, t in totals)  # past int64, as a number
