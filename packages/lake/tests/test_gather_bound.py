"""A query across nodes gathers at most LAKE_MAX_GATHER_BYTES of rows into its coordinator,
counted in Arrow bytes as they arrive (not in the bytes their files took), on three real
nodes; under the bound the answer is DuckDB's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from lake import Client, TooLargeError
from lake.sql.distributed import Coordinator, _Gather
from lake.sql.gathered import GatherBudget
from lake.storage.manifest import ChunkRef, Manifest
from platform_core import OverBudgetError
from platform_core.schema import Field, Schema

from .conftest import CHUNK
from .test_cluster import peer, wait_for
from .test_distributed_sql import three_nodes
from .test_query_reuse import _Peers

pytestmark = pytest.mark.slow

LIMIT = 4 << 20
ROWS = 60_000
WIDE = 150  # one long string, repeated: next to nothing in Parquet, 9 MB in Arrow


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Path]]:
    root = tmp_path_factory.mktemp("gather")
    src = root / "wide.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 7 AS g, repeat('x', {WIDE}) AS s FROM range({ROWS}) t(i)) "
        f"TO '{src}' (HEADER)"
    )
    env = {"LAKE_MAX_GATHER_BYTES": str(LIMIT)}
    with three_nodes(root, CHUNK, timeout=60, env=env) as (procs, clients):
        clients[0].upload(src, "wide", part_size=1 << 20)
        chunks = {c["sha256"] for c in clients[0].dataset("wide")["chunk_list"]}
        wait_for(lambda: len(clients[2].datasets()) == 1, what="gossip")
        wait_for(
            lambda: sum(bool(set(peer(p, "GET", "/chunks")) & chunks) for p in procs) >= 2,
            what="chunks on several nodes",
        )
        yield clients[2], src


def test_a_query_past_the_bound_fails_naming_it(wide: tuple[Client, Path]) -> None:
    """A window needs every row where it is computed: 60,000 rows of a 150-byte string
    gathered (about 9 MiB in Arrow, a few KiB in their files) stop at the 4 MiB bound."""
    client, _ = wide
    stored = sum(c["bytes"] for c in client.dataset("wide")["chunk_list"])
    assert stored < LIMIT // 4, stored  # the files are far below the bound: not what counts
    with pytest.raises(OverBudgetError) as caught:  # 413
        client.query("SELECT id, s, rank() OVER (ORDER BY id) AS r FROM wide LIMIT 5")
    assert caught.value.status == 413
    message = caught.value.message
    assert "LAKE_MAX_GATHER_BYTES" in message, message
    assert "4 MiB" in message, message


def test_the_final_steps_result_counts_too(wide: tuple[Client, Path]) -> None:
    """The final step runs in the coordinator over what was gathered, and its result is held
    there too: 2,000 rows gathered (0.3 MiB) make 11 MiB of result through ``repeat``
    (found from outside: 16 MiB gathered made a 574 MiB result under a 64 MiB bound)."""
    client, _ = wide
    sql = (
        "SELECT id, repeat(s, 40) AS big, rank() OVER (ORDER BY id) AS r FROM wide WHERE id < 2000"
    )
    with pytest.raises(OverBudgetError, match="LAKE_MAX_GATHER_BYTES"):
        client.query(sql)
    small = (
        "SELECT id, repeat(s, 2) AS big, rank() OVER (ORDER BY id) AS r FROM wide WHERE id < 2000"
    )
    assert client.query(small)["row_count"] == 2000


def test_under_the_bound_the_answer_is_duckdbs(wide: tuple[Client, Path]) -> None:
    client, src = wide
    sql = "SELECT g, id, rank() OVER (PARTITION BY g ORDER BY id) AS r FROM wide ORDER BY g, id"
    got = client.query_arrow(sql)
    oracle = duckdb.connect()
    oracle.execute(f"CREATE TABLE wide AS SELECT * FROM read_csv('{src}')")
    want = oracle.execute(sql).to_arrow_table()
    assert got.to_pylist() == want.to_pylist()
    # and the partial-aggregate plan gathers a few rows per node, whatever the string's width
    assert client.query("SELECT count(DISTINCT s) AS n FROM wide")["rows"] == [[1]]


class _Bound:
    """An executor's bound (``lake.interfaces.GatherBound``), as elytra's failed run sets."""

    limit = 1000

    def exceeded(self, gathered: int) -> Exception:
        return RuntimeError(f"the executor's own error at {gathered}")


def test_a_budget_counts_from_every_thread_and_keeps_the_error() -> None:
    budget = GatherBudget(10_000, "q1")
    threads = [
        threading.Thread(target=lambda: [budget.take(10) for _ in range(100)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.taken == 8000
    assert budget.over is None
    with pytest.raises(TooLargeError, match="LAKE_MAX_GATHER_BYTES"):
        budget.take(2001)
    assert isinstance(budget.over, TooLargeError)


def test_a_transfer_cut_by_a_lost_node_is_counted_once() -> None:
    """A peer killed mid-transfer: its rows are dropped and its chunks read on another
    replica, so its bytes are given back (found from outside: a query gathering 464 MiB
    under a 512 MiB bound was refused at '512.2 MiB' when a peer was killed mid-query)."""
    peers = _Peers()  # b first, then c
    peers.dead.add("b:2")  # b breaks after sending its bytes
    peers.sent = 600
    coordinator = Coordinator(peers, None)  # type: ignore[arg-type]
    manifest = Manifest("t", 1, Schema([Field("g", "i64")]), (ChunkRef("a" * 64, 1, 1),))
    budget = GatherBudget(1000, "q")  # 600 fits once, not twice
    got = _Gather(coordinator, None, "t", manifest, "SELECT", 30, [], [], budget).run()  # type: ignore[arg-type]
    assert got.column("__p0").to_pylist() == [1]
    assert peers.served == ["c:2"]
    assert budget.taken == 600


def test_a_tighter_bound_from_the_executor_is_its_error() -> None:
    budget = GatherBudget(1 << 30, "q2", _Bound())
    assert budget.limit == 1000
    budget.take(1000)
    with pytest.raises(RuntimeError, match="the executor's own error at 1001"):
        budget.take(1)
    looser = GatherBudget(500, "q3", _Bound())  # the lake's own is tighter: the lake's error
    with pytest.raises(TooLargeError):
        looser.take(501)
