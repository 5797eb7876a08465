"""The cluster backend without a whole platform: placement, chunk names, the peer route.

The peer is the real ``/internal/elytra`` app served by uvicorn on 127.0.0.1 in this process,
over its own copy of the chunks; the lake cluster is a directory of chunk files (the part of
the lake the backend uses). Every pipeline's answer is DuckDB's over the same rows.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

import elytra
from elytra import PipelineError
from elytra.backends import ClusterBackend, InlineBackend
from elytra.backends.cluster import Peer, place
from elytra.backends.peerslots import PeerSlots
from elytra.chunkrefs import check_peer_task, chunk_ref, resolve_chunks
from elytra.peer_task_routes import make_peer_app
from elytra.settings import ElytraSettings
from elytra.sqlroute import RecordingBackend
from elytra.task import Task
from lake import LakeNode, lake_settings
from lake.testing import ingest
from platform_core.auth import TokenSigner
from platform_core.testing import free_port

from .conftest import rows_of

SECRET = "p" * 40
PEER_WORKERS = 3
"""The pool size the peer fixture says it has (not the default: placement's weight is asked)."""
SQL = "SELECT grp, count(*) AS n, sum(amount) AS total FROM '{csv}' WHERE amount > 50 GROUP BY grp"


class DirCluster:
    """Chunks in a directory, peers as given: the lake cluster as the backend sees it."""

    def __init__(self, me: str, chunks: Path, peers: list[Peer], holders: dict[str, list[str]]):
        self.id, self.chunks, self._peers, self._holders = me, chunks, peers, holders
        self.fetched: list[str] = []

    def me(self) -> str:
        return self.id

    def peers(self) -> list[Peer]:
        return list(self._peers)

    def holders(self, sha: str) -> list[str]:
        return self._holders.get(sha, [])

    def locate(self, sha: str) -> str | None:
        path = self.chunks / f"{sha}.parquet"
        return str(path) if path.is_file() else None

    def fetch(self, sha: str) -> bytes:
        self.fetched.append(sha)
        return (self.chunks.parent / "all" / f"{sha}.parquet").read_bytes()

    def token(self) -> str:
        return TokenSigner(SECRET).cluster_token(self.id)


@pytest.fixture(scope="module")
def lake_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(home, its chunk directory, the CSV): ``sales`` in many 64 KiB chunks."""
    base = tmp_path_factory.mktemp("cluster")
    csv = base / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, (i % 11)::INTEGER AS grp, round(i * 0.37 % 1000, 2) AS amount "
        f"FROM range(40000) t(i)) TO '{csv}' (HEADER)"
    )
    home = base / "home"
    node = LakeNode(lake_settings(None, home=home, chunk_bytes=64 * 1024, secret=SECRET))
    try:
        ingest(node, csv, "sales")
        chunks = node.catalog.chunks.root
    finally:
        node.stop()
    return home, chunks, csv


def _want(csv: Path) -> list[tuple[object, ...]]:
    return rows_of(duckdb.sql(SQL.format(csv=csv)).fetchall())


def _query(s: elytra.Session) -> list[tuple[object, ...]]:
    q = (
        s.dataset("sales")
        .filter("amount > 50")
        .group_by("grp")
        .agg("count(*) AS n", "sum(amount) AS total")
    )
    return rows_of([tuple(r.values()) for r in q.collect().to_pylist()])


def test_place_puts_tasks_where_their_chunks_are_and_balances() -> None:
    a, b = "a" * 64, "b" * 64
    tasks = [
        Task(f"t{i}", 0, "{}", 1, "/x", files=(chunk_ref(a if i % 2 else b),), bytes_in=100)
        for i in range(8)
    ]
    tasks.append(Task("local", 0, "{}", 1, "/x", files=("/spill/exchange/p0.arrow",), bytes_in=1))
    holds = {("me", a), ("p1", a), ("p2", b), ("me", b)}
    where = place(
        tasks, "me", ["p1", "p2"], lambda n, s: (n, s) in holds, {"me": 1, "p1": 1, "p2": 1}
    )
    assert where["local"] == "me"  # not chunk-only: never sent away
    for t in tasks[:8]:
        sha = a if int(t.id[1:]) % 2 else b
        assert (where[t.id], sha) in holds  # always a holder
    counts = {n: sum(1 for t in tasks[:8] if where[t.id] == n) for n in ("me", "p1", "p2")}
    assert max(counts.values()) - min(counts.values()) <= 2, counts


def test_a_broadcast_side_held_by_one_platform_does_not_draw_every_task_there() -> None:
    """Every task of a stage reads the small side's chunk, which only ``me`` holds (the tables
    were uploaded through it); each task's own chunk is on ``me`` and one peer. The tasks
    spread by their own chunks; the small side is fetched where it is missing."""
    small = "5" * 64
    own = [f"{i:064x}" for i in range(6)]
    tasks = [
        Task(f"t{i}", 0, "{}", 1, "/x", files=(chunk_ref(own[i]), chunk_ref(small)), bytes_in=100)
        for i in range(6)
    ]
    holds = {("me", small)} | {("me", c) for c in own}
    holds |= {("p1" if i % 2 else "p2", c) for i, c in enumerate(own)}
    where = place(
        tasks, "me", ["p1", "p2"], lambda n, s: (n, s) in holds, {"me": 1, "p1": 1, "p2": 1}
    )
    for i, t in enumerate(tasks):
        assert (where[t.id], own[i]) in holds  # a holder of its own chunk
    counts = {n: sum(1 for t in tasks if where[t.id] == n) for n in ("me", "p1", "p2")}
    assert counts == {"me": 2, "p1": 2, "p2": 2}, counts
    # one task alone: every chunk it reads is its own, so the node holding both wins
    (alone,) = tasks[:1]
    assert place([alone], "me", ["p1", "p2"], lambda n, s: (n, s) in holds, {})["t0"] == "me"


def test_resolve_chunks_rewrites_scans_and_checks_fetched_bytes(tmp_path: Path) -> None:
    good = b"PAR1 chunk bytes"
    sha = hashlib.sha256(good).hexdigest()
    plan = json.dumps({"op": "scan", "path": chunk_ref(sha), "format": "parquet"})
    task = Task("t", 0, plan, 1, str(tmp_path / "s"), files=(chunk_ref(sha),))
    done = resolve_chunks(task, lambda s: None, lambda s: good, tmp_path / "chunks")
    path = tmp_path / "chunks" / f"{sha}.parquet"
    assert done.files == (str(path),)
    assert json.loads(done.plan)["path"] == str(path)
    assert path.read_bytes() == good
    with pytest.raises(PipelineError, match="wrong hash"):
        resolve_chunks(task, lambda s: None, lambda s: b"evil", tmp_path / "other")
    assert not (tmp_path / "other" / f"{sha}.parquet").exists()
    plain = Task("p", 0, "{}", 1, "/x", files=("/data/a.parquet",))
    assert resolve_chunks(plain, lambda s: None, None, tmp_path) is plain


def test_a_local_chunk_the_lake_drops_while_the_task_reads_is_still_read(tmp_path: Path) -> None:
    """The lake trims a replica it no longer needs: its file goes between locating and
    reading. The task reads its own link to it; one already gone is fetched from a replica."""
    data = b"PAR1 local chunk"
    sha = hashlib.sha256(data).hexdigest()
    store = tmp_path / "lake" / f"{sha}.parquet"
    store.parent.mkdir()
    store.write_bytes(data)
    plan = json.dumps({"op": "scan", "path": chunk_ref(sha), "format": "parquet"})
    task = Task("t", 0, plan, 1, str(tmp_path / "s"), files=(chunk_ref(sha),))
    done = resolve_chunks(task, lambda s: str(store), None, tmp_path / "job" / "chunks")
    store.unlink()  # the lake drops its copy
    assert Path(done.files[0]).read_bytes() == data
    assert json.loads(done.plan)["path"] == done.files[0]
    fetched: list[str] = []

    def fetch(s: str) -> bytes:
        fetched.append(s)
        return data

    again = resolve_chunks(task, lambda s: str(store), fetch, tmp_path / "job2" / "chunks")
    assert fetched == [sha]  # located, but gone by the time it was linked
    assert Path(again.files[0]).read_bytes() == data


@pytest.mark.parametrize(
    ("plan", "files", "why"),
    [
        ({"op": "scan", "path": "/etc/passwd"}, ("/etc/passwd",), "lake chunks only"),
        ({"op": "scan", "path": "/etc/passwd"}, (chunk_ref("c" * 64),), "/etc/passwd"),
        (
            {
                "op": "pymap",
                "input": {"op": "scan", "path": chunk_ref("c" * 64)},
                "fn": {"pickle": "gAR9lC4="},
            },
            (chunk_ref("c" * 64),),
            "no 'pymap' operator",
        ),
        (
            {"op": "sink", "input": {"op": "scan", "path": chunk_ref("c" * 64)}, "path": "/tmp/x"},
            (chunk_ref("c" * 64),),
            "no 'sink' operator",
        ),
        ({"op": "scan", "path": "lake-chunk:../../x"}, ("lake-chunk:../../x",), "not a lake chunk"),
    ],
)
def test_a_peer_refuses_tasks_that_read_more_than_chunks(
    plan: dict[str, object], files: tuple[str, ...], why: str
) -> None:
    with pytest.raises(PipelineError, match=why):
        check_peer_task(Task("t", 0, json.dumps(plan), 1, "/x", files=files))


def test_one_platform_resolves_the_names_itself(lake_home: tuple[Path, Path, Path]) -> None:
    home, chunks, csv = lake_home
    cluster = DirCluster("me", chunks, [], {})
    backend = ClusterBackend(InlineBackend(), lambda: cluster, local_slots=1)
    with elytra.connect(home=home, backend=backend, task_bytes=64 * 1024) as s:
        assert _query(s) == _want(csv)
        assert s.driver.last is not None
        assert s.driver.last.tasks_total >= 4
    assert backend.stats["peer"] == 0


@pytest.fixture
def peer(lake_home: tuple[Path, Path, Path], tmp_path: Path) -> Iterator[tuple[str, DirCluster]]:
    """The peer route served on 127.0.0.1, holding every chunk; its URL and its cluster."""
    _, chunks, _ = lake_home
    mine = tmp_path / "peer" / "chunks"
    shutil.copytree(chunks, mine)
    cluster = DirCluster("p1", mine, [], {})
    settings = ElytraSettings(
        home=tmp_path / "peer", spill_dir=tmp_path / "peer" / "spill", workers=PEER_WORKERS
    )
    app = make_peer_app(lambda: (InlineBackend(), cluster, settings), lambda: TokenSigner(SECRET))
    port = free_port()
    mounted = Starlette(routes=[Mount("/internal/elytra", app)])  # where the gateway mounts it
    config = uvicorn.Config(mounted, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", cluster
    finally:
        server.should_exit = True
        thread.join(10)


def _holding_none(chunks: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A chunk directory for "me" holding none of ``chunks`` (which ``DirCluster.fetch``
    can still give, from ``all/`` beside it), and the chunks' hashes."""
    (tmp_path / "me" / "all").mkdir(parents=True)
    for p in chunks.glob("*.parquet"):
        shutil.copy(p, tmp_path / "me" / "all" / p.name)
    return tmp_path / "me" / "chunks", [p.stem for p in chunks.glob("*.parquet")]


def test_tasks_over_chunks_a_peer_holds_run_there(
    lake_home: tuple[Path, Path, Path], peer: tuple[str, DirCluster], tmp_path: Path
) -> None:
    home, chunks, csv = lake_home
    url, _ = peer
    mine, shas = _holding_none(chunks, tmp_path)
    here = DirCluster("me", mine, [Peer("p1", url)], {sha: ["p1"] for sha in shas})
    backend = ClusterBackend(InlineBackend(), lambda: here, local_slots=1, peer_slots=2)
    with elytra.connect(home=home, backend=backend, task_bytes=64 * 1024) as s:
        assert _query(s) == _want(csv)
        tasks = s.driver.last.tasks_total if s.driver.last else 0
    assert tasks >= len(shas)
    assert backend.stats["peer"] == tasks  # every task reads chunks only p1 holds
    assert backend.stats["local"] == 0
    assert here.fetched == []  # nothing came here: the peer read its own copies
    # the run weighed p1 by the workers it said (kept: not asked again at a dead address)
    assert backend.slots.of([Peer("p1", "http://127.0.0.1:9")], here.token) == {"p1": PEER_WORKERS}


def test_analyze_names_the_peer_that_ran_each_task(
    lake_home: tuple[Path, Path, Path], peer: tuple[str, DirCluster], tmp_path: Path
) -> None:
    """EXPLAIN ANALYZE's ``nodes`` (the SQL route's recording backend): a task a peer ran is
    that peer's, not the driver's (it named the driver for every task)."""
    home, chunks, csv = lake_home
    url, _ = peer
    mine, shas = _holding_none(chunks, tmp_path)
    here = DirCluster("me", mine, [Peer("p1", url)], {sha: ["p1"] for sha in shas})
    backend = ClusterBackend(InlineBackend(), lambda: here, local_slots=1, peer_slots=2)
    recording = RecordingBackend(backend, "me")
    with elytra.connect(home=home, backend=recording, task_bytes=64 * 1024) as s:  # type: ignore[arg-type]
        assert _query(s) == _want(csv)
    ran = [r for r in recording.records if r.stage == 0]
    assert len(ran) >= len(shas)
    assert {r.node for r in ran} == {"p1"}


def test_a_member_without_elytra_or_another_secret_costs_no_attempt(
    lake_home: tuple[Path, Path, Path], peer: tuple[str, DirCluster], tmp_path: Path
) -> None:
    home, chunks, csv = lake_home
    url, _ = peer
    mine, shas = _holding_none(chunks, tmp_path)
    nowhere = DirCluster(
        "me",
        mine,
        [Peer("p1", url + "/not-here"), Peer("p2", url)],
        {sha: ["p1", "p2"] for sha in shas},
    )
    nowhere.token = lambda: TokenSigner("w" * 40).cluster_token("me")  # type: ignore[method-assign]
    backend = ClusterBackend(InlineBackend(), lambda: nowhere, local_slots=1, max_attempts=1)
    with elytra.connect(home=home, backend=backend, task_bytes=64 * 1024) as s:
        # max_attempts=1: a refusal that spent the attempt would fail the job
        assert _query(s) == _want(csv)
    assert backend.stats["peer"] == 0
    assert sorted(set(nowhere.fetched)) == sorted(shas)


@pytest.mark.timeout(90)
def test_a_hung_peer_that_leaves_the_cluster_loses_its_tasks_before_the_lease(
    lake_home: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A peer that takes the tasks and then hangs (a stopped process: its socket accepts and
    nothing answers) is dropped by the lake's gossip in seconds; its tasks then run here,
    not after the lease (600 s, past this test's timeout), and the answer is DuckDB's."""
    home, chunks, csv = lake_home
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # never accepted: every request waits for an answer
    mine, shas = _holding_none(chunks, tmp_path)
    here = DirCluster("me", mine, [Peer("p1", f"http://127.0.0.1:{hung.getsockname()[1]}")], {})
    here._holders = {sha: ["p1"] for sha in shas}
    gone = threading.Timer(1.0, lambda: setattr(here, "_peers", []))  # gossip: p1 is dead
    backend = ClusterBackend(InlineBackend(), lambda: here, local_slots=1, peer_slots=2)
    try:
        gone.start()
        with elytra.connect(home=home, backend=backend, task_bytes=64 * 1024) as s:
            assert _query(s) == _want(csv)
    finally:
        gone.cancel()
        hung.close()
    assert backend.stats["peer"] == 0
    assert backend.stats["peer_failed"] >= 1
    assert sorted(set(here.fetched)) == sorted(shas)  # every chunk's task ran here


HAVING_SQL = (
    "SELECT grp, count(*) AS n FROM {t} WHERE grp IN "
    "(SELECT grp FROM {t} GROUP BY grp HAVING sum(amount) > 1798750) GROUP BY grp"
)


def test_a_side_run_first_on_the_cluster_backend(
    lake_home: tuple[Path, Path, Path], peer: tuple[str, DirCluster], tmp_path: Path
) -> None:
    """A HAVING side runs first, its rows into a file in the job's directory, which the
    cluster backend's results never made (they come back as rows): the file's directory is
    made for it (it was not, and every such query failed on three platforms)."""
    home, chunks, csv = lake_home
    url, _ = peer
    mine, shas = _holding_none(chunks, tmp_path)
    here = DirCluster("me", mine, [Peer("p1", url)], {sha: ["p1"] for sha in shas})
    backend = ClusterBackend(InlineBackend(), lambda: here, local_slots=1, peer_slots=2)
    with elytra.connect(
        home=home, backend=backend, task_bytes=64 * 1024, spill_dir=tmp_path / "spill"
    ) as s:
        got = s.sql(HAVING_SQL.format(t="sales")).collect()
        ran = s.driver.last.stage_seconds if s.driver.last else {}
    want = duckdb.sql(HAVING_SQL.format(t=f"'{csv}'")).fetchall()
    assert "first0 tasks" in ran, ran
    assert rows_of([tuple(r.values()) for r in got.to_pylist()]) == rows_of(want)
    assert 0 < len(want) < 11  # the HAVING keeps some groups, not all
    assert backend.stats["peer"] > 0


def test_one_task_stages_spread_over_the_holders_of_their_own_chunk() -> None:
    """TPC-H q02 on three platforms: two stages of one task each read partsupp's chunk (on
    two platforms) and broadcast sides that only one of them holds. Counted as their own
    chunks, the small sides drew both tasks to that platform's one worker; as broadcast
    sides (``shared_files``) they only break ties, and the tasks go to both holders."""
    big, smalls = "b" * 64, [f"{i:064x}" for i in range(4)]
    tasks = [
        Task(
            f"s{stage}",
            stage,
            "{}",
            1,
            "/x",
            files=(chunk_ref(big), *(chunk_ref(c) for c in smalls)),
            shared_files=len(smalls),
            bytes_in=100,
        )
        for stage in range(2)
    ]
    holds = {("p1", big), ("p2", big)} | {("p1", c) for c in smalls}
    slots = {"me": 1, "p1": 1, "p2": 1}
    where = place(tasks, "me", ["p1", "p2"], lambda n, s: (n, s) in holds, slots)
    assert sorted(where.values()) == ["p1", "p2"], where
    assert "shared_files" not in json.loads(tasks[0].to_json())  # the coordinator's only
    counted = [replace(t, shared_files=0) for t in tasks]  # the small sides as its own
    where = place(counted, "me", ["p1", "p2"], lambda n, s: (n, s) in holds, slots)
    assert sorted(where.values()) == ["p1", "p1"], where


def test_a_peer_says_its_workers_and_a_silent_one_counts_as_peer_slots(
    peer: tuple[str, DirCluster],
) -> None:
    """Placement weighs each peer by its pool (``backends.peerslots``); it counted every peer
    as ``ELYTRA_PEER_SLOTS`` (2), so three platforms of one worker each sent the peers twice
    the coordinator's share. An answer is kept ``SLOTS_TTL``; a peer without the route, or
    of another secret, counts as the default."""
    url, _ = peer
    token = DirCluster("me", Path("."), [], {}).token
    slots = PeerSlots(default=2)
    asked = slots.of([Peer("p1", url), Peer("p2", url + "/not-here")], token)
    assert asked == {"p1": PEER_WORKERS, "p2": 2}
    strange = PeerSlots(default=2).of(
        [Peer("p1", url)], lambda: TokenSigner("w" * 40).cluster_token("me")
    )
    assert strange == {"p1": 2}
    # kept: p1 gone from that address is not asked again within the TTL
    assert slots.of([Peer("p1", "http://127.0.0.1:9")], token) == {"p1": PEER_WORKERS}
