"""Small chunks a peer keeps are copied here for the planner (``elytra.planchunks``).

On three Ray platforms TPC-H q21's EXISTS group-by ran unreduced because the coordinator held
no copy of the nation table (3 KB), so the planner could not count what the outer chain
keeps. Here a lake node lacks its tiny ``nat`` chunk (moved to ``replica/``, another member's
copy as far as the job can tell): the planner fetches it once, runs the chain first, and the
answer is DuckDB's; a table past ``SMALL_SOURCE_BYTES`` is never fetched for planning."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from elytra import ElytraSettings, planchunks
from elytra.backends import InlineBackend
from elytra.session import Session
from lake import LakeNode, lake_settings
from lake.testing import ingest

from .conftest import rows_of

EXISTS = """
SELECT s.name, count(*) AS n FROM lines l1
JOIN supp s ON l1.suppkey = s.suppkey
JOIN nat ON s.nation = nat.nationkey
JOIN ords o ON o.orderkey = l1.orderkey
WHERE o.status = 'F' AND l1.late AND nat.name = 'N03'
  AND EXISTS (SELECT * FROM lines l2 WHERE l2.orderkey = l1.orderkey AND l2.suppkey <> l1.suppkey)
GROUP BY s.name
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """400,000 lines (16 an order), 1,000 suppliers of 25 nations, 25,000 orders (half
    failed), and the 25 nations: TPC-H q21's shape."""
    where = tmp_path_factory.mktemp("planner-chunks")
    rng = np.random.default_rng(54)
    n, orders = 400_000, 25_000
    tables = {
        "lines": pa.table(
            {
                "orderkey": pa.array(np.sort(rng.integers(0, orders, n)), pa.int64()),
                "suppkey": pa.array(rng.integers(0, 1000, n), pa.int64()),
                "late": pa.array(rng.random(n) < 0.5),
            }
        ),
        "supp": pa.table(
            {
                "suppkey": pa.array(range(1000), pa.int64()),
                "name": [f"s{i:04d}" for i in range(1000)],
                "nation": pa.array(rng.integers(0, 25, 1000), pa.int64()),
            }
        ),
        "ords": pa.table(
            {
                "orderkey": pa.array(range(orders), pa.int64()),
                "status": rng.choice(["F", "O"], orders).tolist(),
            }
        ),
        "nat": pa.table(
            {"nationkey": pa.array(range(25), pa.int64()), "name": [f"N{i:02d}" for i in range(25)]}
        ),
    }
    out = {}
    for name, table in tables.items():
        pq.write_table(table, where / f"{name}.parquet")
        out[name] = where / f"{name}.parquet"
    return out


@pytest.fixture
def lacking(files: dict[str, Path], tmp_path: Path) -> Iterator[tuple[LakeNode, Path]]:
    """A lake node holding every table but ``nat``, whose one chunk a replica keeps."""
    node = LakeNode(lake_settings(None, home=tmp_path / "home", chunk_bytes=1 << 20))
    for name, path in files.items():
        before = set(node.catalog.chunks.root.glob("*.parquet"))
        ingest(node, path, name)
        if name == "nat":
            replica = tmp_path / "replica"
            replica.mkdir()
            for chunk in set(node.catalog.chunks.root.glob("*.parquet")) - before:
                shutil.move(chunk, replica / chunk.name)
    try:
        yield node, tmp_path / "replica"
    finally:
        node.stop()


def _duckdb(files: dict[str, Path]) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    for name, path in files.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    return rows_of(con.execute(EXISTS).fetchall())


def _run(node: LakeNode, replica: Path, home: Path, fetched: list[str]) -> tuple[list, dict]:
    def fetch(sha: str, origin: str) -> bytes:
        fetched.append(sha)
        return (replica / f"{sha}.parquet").read_bytes()

    settings = ElytraSettings(home=home, progress=False, broadcast_bytes=128 << 10)
    with Session(settings, InlineBackend(), catalog=node.catalog, fetch=fetch) as s:  # type: ignore[arg-type]
        table = s.sql(EXISTS).collect()
        ran = s.driver.last
    assert ran is not None
    return rows_of([tuple(r.values()) for r in table.to_pylist()]), ran.stage_seconds


def test_a_tiny_chunk_elsewhere_is_copied_once_and_the_chain_runs_first(
    lacking: tuple[LakeNode, Path], files: dict[str, Path], tmp_path: Path
) -> None:
    node, replica = lacking
    fetched: list[str] = []
    got, seconds = _run(node, replica, tmp_path / "h", fetched)
    assert got == _duckdb(files)
    assert "first0 tasks" in seconds, seconds  # counted with the nations here: it keeps little
    assert len(fetched) == 1, fetched  # planned with the copy, which the job then read too
    again, _ = _run(node, replica, tmp_path / "h", fetched)
    assert again == got
    assert len(fetched) == 1, fetched  # the copy is kept: named by its hash, never stale


def test_without_the_copy_the_chain_cannot_be_counted_and_does_not_run_first(
    lacking: tuple[LakeNode, Path],
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound: a table past ``SMALL_SOURCE_BYTES`` is not fetched for planning (only for
    the job), and then the planner cannot count the chain (what the fix changed)."""
    monkeypatch.setattr(planchunks, "SMALL_SOURCE_BYTES", 16)
    node, replica = lacking
    fetched: list[str] = []
    got, seconds = _run(node, replica, tmp_path / "h", fetched)
    assert got == _duckdb(files)
    assert "first0 tasks" not in seconds, seconds
    assert len(fetched) == 1, fetched  # by the job, after planning


def test_a_copy_with_the_wrong_bytes_is_left_out(tmp_path: Path) -> None:
    from elytra.sources import LakeSource

    src = LakeSource(name="t", schema=pa.schema([]), chunks=(("ab" * 32, "", 100),))
    got = planchunks.planner_copies([src], lambda sha, origin: b"not that chunk", tmp_path, 1 << 20)
    assert got == {}
    assert not list(tmp_path.glob("*.parquet"))


def _cache(home: Path) -> Path:
    return home / "spill" / "elytra" / "chunk-cache"


@pytest.mark.parametrize("damage", ["other rows", "garbage", "cut short", "empty"])
def test_a_copy_changed_in_the_cache_is_fetched_again_never_read(
    lacking: tuple[LakeNode, Path], files: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    """A copy is trusted only as checked against its hash (found from outside: a Parquet
    file of other nations put in the cache gave 44 rows where DuckDB gives 55, and a damaged
    one failed every later query, never fetched again)."""
    node, replica = lacking
    fetched: list[str] = []
    home = tmp_path / "h"
    assert _run(node, replica, home, fetched)[0] == _duckdb(files)
    (copy,) = _cache(home).glob("*.parquet")
    good = copy.read_bytes()
    if damage == "other rows":
        other = pa.table({"nationkey": pa.array(range(25), pa.int64()), "name": ["N03"] * 25})
        pq.write_table(other, copy)
    else:
        copy.write_bytes(
            {"garbage": b"x" * len(good), "cut short": good[:100], "empty": b""}[damage]
        )
    assert _run(node, replica, home, fetched)[0] == _duckdb(files)
    assert len(fetched) == 2, fetched  # fetched again, once
    assert copy.read_bytes() == good


def test_a_hung_replica_holds_one_query_s_planning_at_most_once(
    lacking: tuple[LakeNode, Path], files: dict[str, Path], tmp_path: Path
) -> None:
    """The planner waits for its copies at most ``WAIT_SECONDS`` once; a later query does
    not wait for the same hung fetch again, and the fetch's thread does not hold the process
    (found from outside: 8.3 s a query, four more threads each, and no exit)."""
    import threading
    import time

    node, replica = lacking
    release = threading.Event()

    def fetch(sha: str, origin: str) -> bytes:
        if threading.current_thread().name.startswith("elytra-plan-fetch"):
            release.wait(60)  # the planner's replica: a SIGSTOPped member
        return (replica / f"{sha}.parquet").read_bytes()

    settings = ElytraSettings(home=tmp_path / "h", progress=False, broadcast_bytes=128 << 10)
    try:
        took = []
        with Session(settings, InlineBackend(), catalog=node.catalog, fetch=fetch) as s:  # type: ignore[arg-type]
            for _ in range(3):
                start = time.monotonic()
                got = rows_of([tuple(r.values()) for r in s.sql(EXISTS).collect().to_pylist()])
                took.append(time.monotonic() - start)
                assert got == _duckdb(files)
        hung = [t for t in threading.enumerate() if t.name.startswith("elytra-plan-fetch")]
        assert len(hung) == 1, hung
        assert hung[0].daemon
        assert planchunks.WAIT_SECONDS <= took[0] < planchunks.WAIT_SECONDS + 3, took
        assert max(took[1:]) < 1.5, took
    finally:
        release.set()
        for t in threading.enumerate():
            if t.name.startswith("elytra-plan-fetch"):
                t.join(10)  # the other tests plan the same chunk: not left "under way"


def test_a_cache_that_is_not_a_directory_is_gone_without(
    lacking: tuple[LakeNode, Path], files: dict[str, Path], tmp_path: Path
) -> None:
    node, replica = lacking
    home = tmp_path / "h"
    _cache(home).parent.mkdir(parents=True)
    _cache(home).write_text("not a directory")
    fetched: list[str] = []
    assert _run(node, replica, home, fetched)[0] == _duckdb(files)
    assert _run(node, replica, home, fetched)[0] == _duckdb(files)
