"""Reads on a real 3-node cluster right after a dataset appears, and with corrupt copies
(issue 11, items 2 and 3).

B runs with replication paused (a pull interval of an hour), so it lists every dataset by
gossip but holds none of its chunks; C replicates as usual. A query on B must read each chunk
where it is stored, never fail with "not stored on this node". A chunk found corrupt when it is
read (served over Flight, or scanned for a fragment) is repaired then from a replica.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from lake import Client
from lake.cluster.flight import FlightPeer
from lake.cluster.placement import replicas
from lake.testing import NodeProcess
from platform_core.auth import TokenSigner

from .conftest import SECRET, Launch, make_csv
from .test_cluster import peer, same, states, wait_for

pytestmark = pytest.mark.slow

CLUSTER = TokenSigner(SECRET).cluster_token("test")
QUERIES = [
    "SELECT count(*), sum(id), count(who), avg(amount) FROM sales",
    "SELECT grp, count(*) AS n, sum(amount) AS s FROM sales GROUP BY grp ORDER BY grp",
    "SELECT id, amount FROM sales WHERE who = 'user7' ORDER BY id LIMIT 5",
]


def node_stats(proc: NodeProcess, admin: str) -> dict[str, Any]:
    r = httpx.get(
        f"{proc.url}/api/lake/nodes/self", headers={"authorization": f"Bearer {admin}"}, timeout=10
    )
    r.raise_for_status()
    return r.json()["stats"]  # type: ignore[no-any-return]


def corrupt(proc: NodeProcess, sha: str) -> Path:
    path = next((proc.home / "lake").glob(f"*/chunks/{sha}.parquet"))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def test_reads_go_to_holders_and_corrupt_copies_are_repaired_when_read(
    launch: Launch,
    client_for: Callable[[NodeProcess], Client],
    sales_csv: Path,
    token: str,
    tmp_path: Path,
) -> None:
    a = launch("a")
    b = launch("b", "--join", a.addr, LAKE_REPLICATE_INTERVAL_SECONDS="3600")
    c = launch("c", "--join", a.addr)
    ca, cb, cc = (client_for(p) for p in (a, b, c))
    ids = {p.node_id for p in (a, b, c)}
    for cl in (ca, cb, cc):
        wait_for(lambda cl=cl: set(states(cl)) == ids, what="3 members")
    ca.upload(sales_csv, "sales", part_size=1 << 20)
    everything = {ch["sha256"] for ch in ca.dataset("sales")["chunk_list"]}
    assert len(everything) >= 5
    wait_for(lambda: [d["name"] for d in cb.datasets()] == ["sales"], what="gossip to B")
    assert not set(peer(b, "GET", "/chunks")) & everything  # B lists it, holds none of it

    oracle = duckdb.connect()
    oracle.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{sales_csv}')")
    for sql in QUERIES:  # item 2: B reads every chunk where it is stored
        want = oracle.execute(sql).fetchall()
        got = cb.query(sql)["rows"]
        assert same(got, want), (sql, got[:3], want[:3])
    plan = cb.query(f"EXPLAIN {QUERIES[0]}")
    cols = [col["name"] for col in plan["columns"]]
    readers = {dict(zip(cols, r, strict=True))["node"] for r in plan["rows"]}
    assert b.node_id not in readers

    # item 3: a chunk that A and C both hold, corrupted on A, is repaired when A serves it
    wait_for(lambda: set(peer(c, "GET", "/chunks")) & everything, what="C replicates")
    shared = sorted(set(peer(a, "GET", "/chunks")) & set(peer(c, "GET", "/chunks")) & everything)
    assert shared
    sha = shared[0]
    path = corrupt(a, sha)
    before = node_stats(a, token)["repaired"]
    fetcher = FlightPeer(a.flight, CLUSTER, timeout=30)
    try:
        data = fetcher.fetch_chunk(sha)  # what a replicating peer asks for
    finally:
        fetcher.close()
    assert hashlib.sha256(data).hexdigest() == sha  # good bytes, not the corrupt copy
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha  # the file was replaced
    assert node_stats(a, token)["repaired"] == before + 1

    # a fragment that B sends to C over a chunk corrupt on C: C repairs it, B gets the
    # right answer. B holds nothing, so it asks the first of a chunk's candidates (its two
    # replicas, then the origin A) that is not B; pick a chunk for which that is C. Node ids
    # are random, so a dataset may have none (about 1 in 2**chunks): upload another then.
    live = sorted(ids)

    def first_asked(x: str) -> str:
        return next(n for n in [*replicas(x, live, 2), a.node_id] if n != b.node_id)

    name, on_c = "sales", sorted(x for x in everything if first_asked(x) == c.node_id)
    for seed in range(8, 13):
        if on_c:
            break
        name = f"sales{seed}"
        ca.upload(make_csv(tmp_path / f"{name}.csv", seed=seed), name, part_size=1 << 20)
        more = {ch["sha256"] for ch in ca.dataset(name)["chunk_list"]}
        on_c = sorted(x for x in more if first_asked(x) == c.node_id)
    assert on_c, "five datasets without a chunk that B asks C for first"
    wait_for(lambda: set(on_c) <= set(peer(c, "GET", "/chunks")), what="C holds its chunks")
    wait_for(lambda: name in {d["name"] for d in cb.datasets()}, what=f"gossip of {name}")
    bad = corrupt(c, on_c[0])
    before_c = node_stats(c, token)["repaired"]
    sql = QUERIES[0].replace("FROM sales", f"FROM {name}")
    if name != "sales":
        src = tmp_path / f"{name}.csv"
        oracle.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv('{src}')")
    total = oracle.execute(sql).fetchall()
    assert same(cb.query(sql)["rows"], total)
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == on_c[0]
    assert node_stats(c, token)["repaired"] == before_c + 1
