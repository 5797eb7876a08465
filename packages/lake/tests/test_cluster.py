"""Three real node processes: join, replicate, distributed queries, failures, SWIM, repair."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from lake import Client
from lake.cluster.placement import replicas
from lake.testing import NodeProcess
from platform_core.auth import TokenSigner

from .conftest import SECRET, Launch, launcher

pytestmark = pytest.mark.slow

CLUSTER = TokenSigner(SECRET).cluster_token("test")

QUERIES = [
    "SELECT grp, count(*) AS n, avg(amount) AS a, count(DISTINCT who) AS d, sum(id) AS s, "
    "min(day) AS lo, max(who) AS hi FROM sales WHERE amount > 100 GROUP BY grp "
    "HAVING count(*) > 5 ORDER BY grp",
    "SELECT count(*), count(who), avg(amount), count(DISTINCT who) FROM sales",
    "SELECT month(day) AS m, count(*) AS n FROM sales GROUP BY month(day) ORDER BY m",
    "SELECT s.grp, g.label, count(*) AS n FROM sales s JOIN groups g ON s.grp = g.grp "
    "WHERE s.amount < 500 GROUP BY ALL ORDER BY s.grp",
    "SELECT id, grp, rank() OVER (PARTITION BY grp ORDER BY amount DESC, id) AS r FROM sales "
    "QUALIFY r <= 2 ORDER BY grp, r",
    "SELECT id, amount FROM sales WHERE who = 'user7' ORDER BY id LIMIT 5",
]


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or check}")
        time.sleep(0.2)


def peer(proc: NodeProcess, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(
        method,
        f"{proc.url}/internal/lake{path}",
        headers={"authorization": f"Bearer {CLUSTER}"},
        timeout=10,
        **kw,
    )
    r.raise_for_status()
    return r.json()


def states(c: Client) -> dict[str, str]:
    """This node's view of the members (without asking the others anything)."""
    return {m["id"]: m["state"] for m in c._call("GET", "/nodes/self").json()["members"]}


def same(a: list[list[Any]], b: list[tuple[Any, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(y, float):
                if x is None or not math.isclose(float(x), y, rel_tol=1e-9):
                    return False
            elif isinstance(y, int) and isinstance(x, int | str) and not isinstance(y, bool):
                if int(x) != y:
                    return False
            elif str(x) != str(y) and x != y:
                return False
    return True


def start_trio(
    launch: Launch, client_for: Callable[[NodeProcess], Client]
) -> tuple[list[NodeProcess], list[Client]]:
    """Three `lake node` processes, B and C joined through A, once all see 3 alive members."""
    a = launch("a")
    b = launch("b", "--join", a.addr)
    c = launch("c", "--join", a.addr)
    procs = [a, b, c]
    clients = [client_for(p) for p in procs]
    ids = {p.node_id for p in procs}
    for cl in clients:
        wait_for(
            lambda cl=cl: set(states(cl)) == ids and set(states(cl).values()) == {"alive"},
            what="3 alive members",
        )
    return procs, clients


@pytest.fixture
def trio(
    launch: Launch, client_for: Callable[[NodeProcess], Client]
) -> tuple[list[NodeProcess], list[Client]]:
    """A fresh cluster of three, for a test that kills one of them."""
    return start_trio(launch, client_for)


@pytest.fixture(scope="module")
def shared_trio(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[NodeProcess], list[Client]]]:
    """One cluster of three for the tests that leave every node alive and the links whole
    (each test ends with its faults cleared and its dataset deleted)."""
    token = TokenSigner(SECRET).issue("tester", admin=True)
    clients: list[Client] = []

    def client_for(proc: NodeProcess) -> Client:
        clients.append(Client(proc.url, token, timeout=30))
        return clients[-1]

    with launcher(tmp_path_factory.mktemp("trio")) as launch:
        try:
            yield start_trio(launch, client_for)
        finally:
            for cl in clients:
                cl.close()


def test_three_nodes_replicate_and_query_like_duckdb(
    trio: tuple[list[NodeProcess], list[Client]], sales_csv: Path, tmp_path: Path
) -> None:
    (a, b, c), (ca, _cb, cc) = trio
    groups = tmp_path / "groups.csv"
    groups.write_text("grp,label\n" + "".join(f"{g},label{g}\n" for g in range(13)))
    ca.upload(sales_csv, "sales", part_size=1 << 20)
    ca.upload(groups, "groups")
    total = ca.dataset("sales")
    assert total["chunks"] >= 5
    # C learns the datasets by gossip and every chunk gets two replicas.
    wait_for(lambda: {d["name"] for d in cc.datasets()} == {"sales", "groups"}, what="gossip")
    wait_for(lambda: cc._call("GET", "/nodes").json()["under_replicated"] == 0, what="replication")
    oracle = duckdb.connect()
    oracle.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{sales_csv}')")
    oracle.execute(f"CREATE VIEW groups AS SELECT * FROM read_csv('{groups}')")
    expected = {sql: oracle.execute(sql).fetchall() for sql in QUERIES}
    for sql in QUERIES:
        got = cc.query(sql)["rows"]
        assert same(got, expected[sql]), (sql, got[:3], expected[sql][:3])
    plan = cc.query(f"EXPLAIN {QUERIES[0]}")
    cols = [col["name"] for col in plan["columns"]]
    rows = [dict(zip(cols, r, strict=True)) for r in plan["rows"]]
    readers = {r["node"] for r in rows if r["kind"] == "read"}
    assert len(readers) >= 2, readers
    assert sorted(r["chunk"] for r in rows if r["kind"] == "read") == sorted(
        ch["sha256"] for ch in total["chunk_list"]
    )
    # A few-group GROUP BY ships partial states, not rows: a tiny fraction of the data.
    few = cc.query("EXPLAIN SELECT grp, count(*), avg(amount), sum(id) FROM sales GROUP BY grp")
    few_rows = [dict(zip(cols, r, strict=True)) for r in few["rows"]]
    moves = [r for r in few_rows if r["kind"] == "moved"]
    moved = sum(r["bytes"] for r in moves)
    assert len({r["node"] for r in few_rows if r["kind"] == "read"}) >= 2
    assert sum(r["rows"] for r in moves) <= 13 * 3
    assert moved < 0.01 * total["bytes"], (moved, total["bytes"])

    # Placement is real: once the replicas have them, every chunk lives on exactly its two
    # rendezvous replicas, and the ingesting node A has dropped its spare copies.
    everything = {ch["sha256"] for ch in total["chunk_list"]}
    nodes = {n.node_id: n for n in (a, b, c)}

    def placed() -> bool:
        held = {nid: set(peer(n, "GET", "/chunks")) & everything for nid, n in nodes.items()}
        return all(
            {nid for nid, h in held.items() if sha in h} == set(replicas(sha, nodes, 2))
            for sha in everything
        )

    wait_for(placed, what="each chunk on its two rendezvous replicas")
    for sql in QUERIES[:2]:
        assert same(cc.query(sql)["rows"], expected[sql]), sql

    # Node B is SIGKILLed: same answers, then B is declared dead and RF is restored.
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    # B is still a member for a while: its fragments fail and are retried on other replicas.
    retried = cc.query(f"EXPLAIN {QUERIES[0]}")
    still_listed = states(cc).get(b.node_id) == "alive"  # then it was asked, and failed
    retried_rows = [dict(zip(cols, r, strict=True)) for r in retried["rows"]]
    assert b.node_id not in {r["node"] for r in retried_rows}
    # B was asked first for the chunks whose first replica it is (if any: node ids are
    # random), unless on a loaded machine SWIM dropped it before the query ran
    b_first = any(replicas(sha, nodes, 2)[0] == b.node_id for sha in everything)
    if still_listed and b_first:
        assert max(r["attempt"] for r in retried_rows) >= 2
    assert sorted(r["chunk"] for r in retried_rows if r["kind"] == "read") == sorted(
        ch["sha256"] for ch in total["chunk_list"]
    )
    for sql in QUERIES[:3]:
        assert same(cc.query(sql)["rows"], expected[sql]), sql
    wait_for(lambda: states(cc)[b.node_id] == "dead", what="B declared dead")
    wait_for(
        lambda: cc._call("GET", "/nodes").json()["under_replicated"] == 0,
        timeout=40,
        what="RF restored",
    )
    held_a, held_c = set(peer(a, "GET", "/chunks")), set(peer(c, "GET", "/chunks"))
    for ch in total["chunk_list"]:
        assert ch["sha256"] in held_a
        assert ch["sha256"] in held_c
    for sql in QUERIES:
        assert same(ca.query(sql)["rows"], expected[sql]), sql


def test_indirect_ping_prevents_false_death_and_suspects_refute(
    shared_trio: tuple[list[NodeProcess], list[Client]],
) -> None:
    (a, b, _c), (ca, cb, cc) = shared_trio
    # Drop the A-B link both ways: A reaches B only through C (indirect ping).
    peer(a, "POST", "/fault", json={"drop": [b.node_id]})
    peer(b, "POST", "/fault", json={"drop": [a.node_id]})
    wait_for(
        lambda: ca._call("GET", "/nodes/self").json()["stats"]["indirect_ok"] >= 3,
        what="indirect acks",
    )
    time.sleep(4)  # longer than the suspicion timeout
    for cl in (ca, cb, cc):
        # Nobody was declared dead; a slow machine may briefly suspect someone, who refutes.
        assert cl._call("GET", "/nodes/self").json()["stats"]["dead"] == 0
        wait_for(lambda cl=cl: set(states(cl).values()) == {"alive"}, timeout=10, what="all alive")
    peer(a, "POST", "/fault", json={"drop": []})
    peer(b, "POST", "/fault", json={"drop": []})

    # Freeze B past the ping timeout (not past suspicion): it is suspected, wakes and refutes.
    before = {m["id"]: m["incarnation"] for m in ca._call("GET", "/nodes/self").json()["members"]}
    b.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(
            lambda: "suspect" in (states(ca)[b.node_id], states(cc)[b.node_id]),
            timeout=10,
            what="suspicion",
        )
    finally:
        b.proc.send_signal(signal.SIGCONT)
    wait_for(
        lambda: all(states(cl)[b.node_id] == "alive" for cl in (ca, cc)),
        timeout=10,
        what="refutation",
    )

    def refuted() -> bool:
        members = ca._call("GET", "/nodes/self").json()["members"]
        mine = next(m for m in members if m["id"] == b.node_id)
        return mine["incarnation"] > before[b.node_id] and mine["state"] == "alive"

    wait_for(refuted, timeout=10, what="B's higher incarnation at A")
    assert cb._call("GET", "/nodes/self").json()["stats"]["refutations"] >= 1
    assert all(s == "alive" for s in states(cc).values())


def test_corrupt_chunk_is_repaired_from_a_replica(
    shared_trio: tuple[list[NodeProcess], list[Client]], sales_csv: Path
) -> None:
    (a, b, c), (ca, cb, cc) = shared_trio
    ca.upload(sales_csv, "sales", part_size=1 << 20)
    wait_for(
        lambda: cc._call("GET", "/nodes").json()["under_replicated"] == 0 and cc.datasets(),
        what="replication",
    )
    everything = {ch["sha256"] for ch in ca.dataset("sales")["chunk_list"]}

    def placed() -> bool:  # replication and trimming have settled: two copies per chunk
        held = [set(peer(p, "GET", "/chunks")) & everything for p in (a, b, c)]
        return all(sum(sha in h for h in held) == 2 for sha in everything)

    wait_for(placed, what="two replicas per chunk")
    # corrupt a chunk on a node that holds one (which nodes do depends on the random node ids)
    c = next(n for n in (c, b, a) if set(peer(n, "GET", "/chunks")) & everything)
    sha = sorted(set(peer(c, "GET", "/chunks")) & everything)[0]
    path = next((c.home / "lake").glob(f"*/chunks/{sha}.parquet"))
    import hashlib

    good = path.read_bytes()
    for _ in range(3):  # a reader of the node (it repairs what it finds corrupt) may come first
        raw = bytearray(good)
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
        report = peer(c, "POST", "/scrub")
        if report["corrupt"]:
            break
        # none found: then another reader found and repaired it, and the file is whole again
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert report["corrupt"] == 1
    assert report["repaired"] == 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    expected = duckdb.sql(f"SELECT count(*), sum(id) FROM read_csv('{sales_csv}')").fetchall()
    assert same(cc.query("SELECT count(*), sum(id) FROM sales")["rows"], expected)
    # A delete on A is a tombstone that every peer honours.
    ca.delete("sales")
    for cl in (cb, cc):
        wait_for(lambda cl=cl: cl.datasets() == [], what="tombstone gossip")
