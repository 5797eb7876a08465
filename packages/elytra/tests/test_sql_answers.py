"""The SQL route's answers on disk (``elytra.sqlanswers``), over a real lake node and the lake's
own query routing: a SELECT's rows stream from a file that is gone once the stream ends,
however it ends; an answer far above the driver's cap streams whole and equals DuckDB; one
past ``LAKE_MAX_STREAM_BYTES`` is the lake's 413 with nothing left behind; a platform's next
run starts with no answer of the last one.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from elytra.backends import InlineBackend
from elytra.settings import ElytraSettings
from elytra.sqlanswers import ANSWERS_DIR, open_answers
from elytra.sqlroute import PlatformSQL
from lake import LakeNode, lake_settings
from lake.errors import TooLargeError
from lake.sql.routing import open_query
from platform_core import load_settings

from .conftest import norm

ROWS = 200_000
WIDE = "SELECT k, k * 2 AS k2, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' || CAST(k AS VARCHAR) AS s FROM t WHERE k % 3 <> 1"
"""An answer of about 9 MiB (133,333 rows of ~70 bytes)."""


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LakeNode, Path]]:
    root = tmp_path_factory.mktemp("answers")
    src = root / "t.parquet"
    duckdb.execute(f"COPY (SELECT range AS k FROM range({ROWS})) TO '{src}' (FORMAT parquet)")
    node = LakeNode(lake_settings(None, home=root / "home", chunk_bytes=256 * 1024))
    try:
        node.ingest(src, "t", owner="alice")
        yield node, src
    finally:
        node.stop()


def _executor(node: LakeNode, home: Path, max_bytes: int = 1 << 40, **kw: Any) -> PlatformSQL:
    """The route as a platform has it (``ELYTRA_SQL_ROUTE=always``, its answers' store)."""
    es = load_settings(ElytraSettings, home=home, backend="inline", sql_route="always", **kw)
    backend = InlineBackend(es.max_attempts)
    return PlatformSQL(node, es, lambda: backend, open_answers(es.resolved_spill_dir(), max_bytes))


def _left(ex: PlatformSQL) -> list[Path]:
    """Every file under the answers' store (committed or being written)."""
    assert ex.answers is not None
    return [p for p in ex.answers.root.rglob("*") if p.is_file()]


def _open(node: LakeNode, ex: PlatformSQL, sql: str) -> Any:
    return open_query(node.engine, ex, sql, user="alice", timeout=120.0)


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(tuple(norm(v) for v in r.values()) for r in table.to_pylist())


def _want(src: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{src}')")
    return sorted(tuple(norm(v) for v in r) for r in con.execute(sql).fetchall())


def test_a_run_query_holds_none_of_its_answer_in_memory_until_it_streams(
    lake: tuple[LakeNode, Path], tmp_path: Path
) -> None:
    """Once the query has run, its 9 MiB of rows are on disk, not in this process (a table
    in memory, as the route held it before, measures 8.4 MiB here)."""
    node, src = lake
    ex = _executor(node, tmp_path, driver_mem_cap=1 << 20)
    gc.collect()
    before = pa.total_allocated_bytes()
    stream = _open(node, ex, WIDE)
    assert pa.total_allocated_bytes() - before < 1 << 20
    assert stream.engine == "elytra"
    stream.prefetch()
    assert _left(ex), "while the stream is open, its answer is a file"
    got = stream.read_all()
    assert got.nbytes > 8 << 20
    assert _rows(got) == _want(src, WIDE)
    assert _left(ex) == [], "an answer read to its end is removed"


def test_an_answer_is_removed_when_its_stream_is_closed_early(
    lake: tuple[LakeNode, Path], tmp_path: Path
) -> None:
    node, _ = lake
    ex = _executor(node, tmp_path)
    stream = _open(node, ex, WIDE)
    first = stream.next_batch()
    assert first is not None
    assert first.num_rows > 0
    stream.close()
    assert _left(ex) == []
    stream.close()  # idempotent


def test_an_answer_past_the_stream_limit_is_the_lakes_413_with_nothing_left(
    lake: tuple[LakeNode, Path], tmp_path: Path
) -> None:
    node, _ = lake
    ex = _executor(node, tmp_path, max_bytes=1 << 20)
    with pytest.raises(TooLargeError, match="LAKE_MAX_STREAM_BYTES"):
        _open(node, ex, WIDE)
    assert _left(ex) == []


def test_a_cancelled_query_leaves_no_answer(lake: tuple[LakeNode, Path], tmp_path: Path) -> None:
    from lake.errors import QueryTimeoutError

    node, _ = lake
    ex = _executor(node, tmp_path)
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(QueryTimeoutError, match="cancelled"):
        open_query(node.engine, ex, WIDE, user="alice", timeout=120.0, cancelled=cancelled)
    assert _left(ex) == []


def test_a_platforms_next_run_starts_without_the_last_runs_answers(tmp_path: Path) -> None:
    store = open_answers(tmp_path, 1 << 30)
    w = store.writer("j-1", "alice")
    w.write(pa.record_batch({"a": [1, 2]}))
    w.commit(pa.schema({"a": pa.int64()}))
    assert (store.root / "j-1").is_dir()
    again = open_answers(tmp_path, 1 << 30)
    assert list(again.root.iterdir()) == []
    assert again.root.name == ANSWERS_DIR
