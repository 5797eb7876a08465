"""What queries keep between runs (gate verdicts, plans, output names, sandbox views, Flight
connections) never changes an answer: DuckDB over the current data is the oracle."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from lake import LakeNode, SQLError
from lake.cluster.membership import Member
from lake.cluster.peer_link import PeerLinks
from lake.memo import Memo
from lake.sql.distributed import Coordinator, _Gather
from lake.sql.gathered import GatherBudget
from lake.storage.manifest import ChunkRef, Manifest
from platform_core.auth import TokenSigner
from platform_core.schema import Field, Schema

from .conftest import SECRET

GROUPS = "SELECT grp, count(*) AS n, sum(amount) AS s FROM sales GROUP BY grp ORDER BY grp"


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in table.to_pylist()]


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-9) if isinstance(x, float) else x == y
        for ra, rb in zip(a, b, strict=True)
        for x, y in zip(ra, rb, strict=True)
    )


def test_memo_keeps_values_and_drops_the_least_recent() -> None:
    memo: Memo[int] = Memo(size=2)
    made: list[str] = []

    def make(key: str) -> Callable[[], int]:
        return lambda: made.append(key) or len(made)

    def one(_: int) -> int:
        return 1

    assert memo.get("a", make("a"), one) == 1
    assert memo.get("a", make("a"), one) == 1  # kept: not made again
    memo.get("b", make("b"), one)
    memo.get("a", make("a"), one)  # a is now the most recent
    memo.get("c", make("c"), one)  # b goes
    assert len(memo) == 2
    memo.get("b", make("b"), one)
    assert made == ["a", "b", "c", "b"]
    with pytest.raises(ZeroDivisionError):
        memo.get("x", lambda: 1 // 0, one)
    assert memo.get("x", lambda: 5, one) == 5  # a failed make keeps nothing


def test_kept_views_follow_new_versions_and_other_datasets(
    node: LakeNode, csv_maker: Callable[..., Path], tmp_path: Path, ingest_file: Callable[..., None]
) -> None:
    first = csv_maker(tmp_path / "one.csv", rows=20_000, seed=1)
    second = csv_maker(tmp_path / "two.csv", rows=30_000, seed=2)
    ingest_file(node, first, "sales")
    oracle = duckdb.connect()
    before = oracle.execute(GROUPS.replace("sales", f"read_csv('{first}')")).fetchall()
    for _ in range(3):  # the same sandbox, its view kept
        assert same(rows(node.engine.run(GROUPS).table), before)
    ingest_file(node, second, "sales")  # a new version: other chunk files
    after = oracle.execute(GROUPS.replace("sales", f"read_csv('{second}')")).fetchall()
    assert not same(after, before)
    assert same(rows(node.engine.run(GROUPS).table), after)
    # A sandbox holds exactly the views its query was given: no view left from an earlier one.
    ingest_file(node, first, "other")
    paths = node.engine.chunk_paths(node.catalog.get("other"))
    with pytest.raises(SQLError, match="sales"):
        node.engine.execute(
            "SELECT count(*) FROM sales", {}, {"other": paths}, timeout=30, query_id="q"
        )
    got = node.engine.execute(
        "SELECT count(*) FROM other", {}, {"other": paths}, timeout=30, query_id="q"
    )
    assert got.column(0).to_pylist() == [20_000]


def test_kept_gate_verdicts_follow_the_datasets(
    node: LakeNode, csv_maker: Callable[..., Path], tmp_path: Path, ingest_file: Callable[..., None]
) -> None:
    data = csv_maker(tmp_path / "s.csv", rows=5_000)
    with pytest.raises(SQLError, match="no dataset named 'sales'"):
        node.engine.run(GROUPS)
    ingest_file(node, data, "sales")
    assert node.engine.run(GROUPS).table.num_rows == 13
    node.catalog.delete("sales")
    with pytest.raises(SQLError, match="no dataset named 'sales'"):
        node.engine.run(GROUPS)
    with pytest.raises(SQLError):  # a refusal is never kept as a pass, nor the reverse
        node.engine.gate("DROP TABLE sales")


class _Link:
    def __init__(self, peers: _Peers, addr: str) -> None:
        self.peers, self.addr = peers, addr

    def fragment(
        self, sql: str, tables: dict[str, list[str]], timeout: float, take: Any = None
    ) -> pa.Table:
        if take is not None:  # the bytes sent before a dead peer's transfer breaks
            take(self.peers.sent)
        if self.addr in self.peers.dead:
            raise fl.FlightUnavailableError("connection refused")
        self.peers.served.append(self.addr)
        shas = tables["t"]
        return pa.table({"g": [1], "__p0": pa.array([len(shas)], pa.int64())})

    def fetch_chunk(self, sha: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Peers:
    """Two members besides this one; a dead one's address is refused like a gone node's."""

    me_id = "me"

    def __init__(self) -> None:
        self.members = [Member(n, f"{n}:1", f"{n}:2", 1) for n in ("me", "b", "c")]
        self.dead: set[str] = set()
        self.sent = 0
        """Bytes each transfer sends (counted by the query's gather budget) before it ends."""
        self.forgotten: list[str] = []
        self.served: list[str] = []

    def live_ids(self) -> list[str]:
        return [m.id for m in self.members]

    def candidates(self, sha: str, origin: str = "") -> list[Member]:
        return [self.members[1], self.members[2]]  # b first, then c; never this node

    def token(self) -> str:
        return ""

    def flight(self, addr: str, timeout: float) -> _Link:
        return _Link(self, addr)

    def forget_flight(self, addr: str) -> None:
        self.forgotten.append(addr)


def test_a_peer_that_stops_answering_loses_its_kept_connection(tmp_path: Path) -> None:
    peers = _Peers()
    coordinator = Coordinator(peers, None)  # type: ignore[arg-type]
    schema = Schema([Field("g", "i64")])
    manifest = Manifest("t", 1, schema, (ChunkRef("a" * 64, 1, 1), ChunkRef("b" * 64, 1, 1)))

    def gather() -> pa.Table:
        budget = GatherBudget(1 << 30, "q")
        return _Gather(coordinator, None, "t", manifest, "SELECT", 30, [], [], budget).run()  # type: ignore[arg-type]

    got = gather()
    assert got.column("__p0").to_pylist() == [2]
    assert peers.served == ["b:2"]
    assert peers.forgotten == []
    peers.dead.add("b:2")  # b dies: its chunks are read on c, and b's connection is dropped
    got = gather()
    assert got.column("__p0").to_pylist() == [2]
    assert peers.served[-1] == "c:2"
    assert peers.forgotten == ["b:2"]


def test_peer_links_keep_one_flight_connection_per_address_until_forgotten() -> None:
    links = PeerLinks(TokenSigner(SECRET), "me", 5)
    try:
        one = links.flight("127.0.0.1:1", 5, kept=True)
        two = links.flight("127.0.0.1:1", 5, kept=True)
        assert one.client is two.client
        assert links.kept_flight() == ["127.0.0.1:1"]
        one.close()  # closing a call's link leaves the kept connection open
        assert links.kept_flight() == ["127.0.0.1:1"]
        own = links.flight("127.0.0.1:1", 5)  # a bulk copy: its own connection
        assert own.client is not one.client
        own.close()
        links.forget_flight("127.0.0.1:1")
        assert links.kept_flight() == []
        assert links.flight("127.0.0.1:1", 5, kept=True).client is not one.client
        with pytest.raises(fl.FlightUnavailableError):  # nothing listens there
            links.flight("127.0.0.1:1", 0.5, kept=True).fragment("SELECT 1", {}, 0.5)
    finally:
        links.close()
    assert links.kept_flight() == []
