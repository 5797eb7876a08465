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
from lake.sql.gathered import GatherBudget
from platform_core import OverBudgetError

from .conftest import CHUNK
from .test_cluster import peer, wait_for
from .test_distributed_sql import three_nodes

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


def test_a_tighter_bound_from_the_executor_is_its_error() -> None:
    budget = GatherBudget(1 << 30, "q2", _Bound())
    assert budget.limit == 1000
    budget.take(1000)
    with pytest.raises(RuntimeError, match="the executor's own error at 1001"):
        budget.take(1)
    looser = GatherBudget(500, "q3", _Bound())  # the lake's own is tighter: the lake's error
    with pytest.raises(TooLargeError):
        looser.take(501)
