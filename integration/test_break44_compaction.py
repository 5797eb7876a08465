"""Break tests (break44): three `platform up --join` processes whose election compacts its Raft
log every second (`ELKYN_ELECTION_COMPACT_SECONDS=1`), SIGKILLed and restarted in orders a
script or a crash makes. The platforms are the oracle: every write acknowledged (200) is in
every platform's export afterwards, and all agree on term and primary.
"""

from __future__ import annotations

import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from platform_cluster import (
    COMPACT,
    FAST,
    HELD_BREAK_TEST,
    Cluster,
    elkyn_status,
    join,
    start_cluster,
    wait_for,
    write_ok,
)
from servers import command, launch

from platform_core.testing import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _kill(node: ServerProcess) -> None:
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()


def _restart(cluster: Cluster, tmp_path: Path, i: int, first: str) -> ServerProcess:
    """Platform ``i`` with the command it was first started with (the first on its port)."""
    if i == 0:
        argv = [
            str(command("platform")),
            *("up", "--port", first.rsplit(":", 1)[1], "--home", str(cluster.homes[0])),
        ]
        return launch(argv, tmp_path / "p0", env={**FAST, **COMPACT})
    return join(tmp_path, f"p{i}", first, env=COMPACT)


def _agree(cluster: Cluster, want: dict[str, int]) -> None:
    """Every export holds every acknowledged write; every platform names one term and primary."""

    def check() -> bool:
        trees = [
            httpx.get(f"{u}/db/.json", headers=cluster.admin(), timeout=30).json()
            for u in cluster.urls
        ]
        states = [elkyn_status(u, cluster) for u in cluster.urls]
        named = {(s["term"], s["election"]["elected_primary"]) for s in states}
        return len(named) == 1 and all({k: t.get(k) for k in want} == want for t in trees)

    wait_for(check, "every export to hold every write, one term and primary", 90)


def _compacted(cluster: Cluster) -> None:
    """Each platform's election compacted its log (so the attack is on the snapshot)."""
    for home in cluster.homes:
        wait_for(lambda home=home: (home / "elkyn" / "election.dump").exists(), f"{home}'s dump")


def _writes(cluster: Cluster, want: dict[str, int], tag: str) -> None:
    for i, url in enumerate(cluster.urls):
        wait_for(lambda url=url, i=i: write_ok(url, f"{tag}{i}", i, cluster), f"via {url}", 90)
        want[f"{tag}{i}"] = i


@HELD_BREAK_TEST
@pytest.mark.parametrize("order", ["reversed", "at_once"])
def test_sigkill_all_after_compactions_then_restart(tmp_path: Path, order: str) -> None:
    cluster = start_cluster(tmp_path, 3, env=COMPACT)
    try:
        want: dict[str, int] = {}
        _writes(cluster, want, "before")
        first = cluster.urls[0]
        time.sleep(3)  # past compactions of each election's log
        _compacted(cluster)
        for node in cluster.nodes:
            _kill(node)
        # each launched without waiting for the one before to answer: a joined platform
        # started while none of its peers is up fails its lake's join after 30 s
        # (LAKE_JOIN_TIMEOUT_SECONDS), so "one after the other, first last" is staggered
        with ThreadPoolExecutor(3) as pool:
            started = {}
            for i in (2, 1, 0) if order == "reversed" else (0, 1, 2):
                started[i] = pool.submit(_restart, cluster, tmp_path, i, first)
                time.sleep(2 if order == "reversed" else 0)
            for i, f in started.items():
                cluster.nodes[i] = f.result()
        _writes(cluster, want, "after")
        time.sleep(3)
        _agree(cluster, want)
    finally:
        cluster.stop()


@HELD_BREAK_TEST
def test_failover_after_compactions_then_the_killed_primary_rejoins(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3, env=COMPACT)
    try:
        want: dict[str, int] = {}
        _writes(cluster, want, "before")
        time.sleep(3)
        _compacted(cluster)
        st = elkyn_status(cluster.urls[1], cluster)
        primary = st["election"]["elected_primary"].removesuffix("/db")
        term = st["term"]
        p = cluster.urls.index(primary)
        first = cluster.urls[0]
        _kill(cluster.nodes[p])
        survivors = [u for u in cluster.urls if u != primary]
        for u in survivors:
            wait_for(lambda u=u: elkyn_status(u, cluster)["term"] > term, f"a new term at {u}")
            assert len(elkyn_status(u, cluster)["election"]["members"]) == 3
        for j, u in enumerate(survivors):
            wait_for(lambda u=u, j=j: write_ok(u, f"during{j}", j, cluster), f"via {u}")
            want[f"during{j}"] = j
        time.sleep(3)
        cluster.nodes[p] = _restart(cluster, tmp_path, p, first)  # its first command
        _writes(cluster, want, "after")
        _agree(cluster, want)
        assert elkyn_status(cluster.urls[p], cluster)["role"] != "primary"
    finally:
        cluster.stop()


@HELD_BREAK_TEST
def test_sigkill_one_while_it_writes_its_dump(tmp_path: Path) -> None:
    """Any platform, the primary's too, SIGKILLed at a random moment of a stream of writes
    (each platform's dump is rewritten every second) and restarted with its first command."""
    cluster = start_cluster(tmp_path, 3, env=COMPACT)
    rng = random.Random(44)
    try:
        want: dict[str, int] = {}
        first = cluster.urls[0]
        n = 0
        for rnd in range(5):
            victim = rng.choice([0, 1, 2])
            stop = time.monotonic() + rng.uniform(1.0, 3.0)
            while time.monotonic() < stop:
                for url in cluster.urls:
                    if write_ok(url, f"k{n}", n, cluster):
                        want[f"k{n}"] = n
                    n += 1
            _kill(cluster.nodes[victim])
            cluster.nodes[victim] = _restart(cluster, tmp_path, victim, first)
            print(f"round {rnd}: killed p{victim}, {len(want)} of {n} acknowledged")
        _writes(cluster, want, "after")
        _agree(cluster, want)
    finally:
        cluster.stop()


def _members(url: str, cluster: Cluster) -> dict[str, str]:
    found: dict[str, str] = elkyn_status(url, cluster)["election"]["members"]
    return found


@HELD_BREAK_TEST
def test_a_platform_joining_after_compactions_learns_the_record(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 2, env=COMPACT)
    try:
        want: dict[str, int] = {}
        _writes(cluster, want, "before")
        time.sleep(3)
        _compacted(cluster)
        cluster.nodes.append(join(tmp_path, "p2", cluster.urls[0], env=COMPACT))
        cluster.homes.append(tmp_path / "p2" / "home")
        new = cluster.urls[2]
        wait_for(lambda: len(_members(new, cluster)) == 3, "the joined platform's members")
        st = elkyn_status(cluster.urls[0], cluster)
        mine = elkyn_status(new, cluster)
        assert (mine["term"], mine["election"]["elected_primary"]) == (
            st["term"],
            st["election"]["elected_primary"],
        )
        _writes(cluster, want, "after")
        _agree(cluster, want)
    finally:
        cluster.stop()


@HELD_BREAK_TEST
def test_a_removed_member_stays_removed_across_compactions_and_restarts(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3, env=COMPACT)
    try:
        want: dict[str, int] = {}
        _writes(cluster, want, "before")
        first = cluster.urls[0]
        wait_for(lambda: len(_members(first, cluster)) == 3, "three members")
        raft_of = {u.removesuffix("/db"): r for r, u in _members(first, cluster).items()}
        gone = raft_of[cluster.urls[2]]
        cluster.nodes[2].stop()
        r = httpx.delete(
            f"{first}/db/.replication/members",
            params={"raft": gone},
            headers=cluster.admin(),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        time.sleep(3)  # compactions after the removal
        for node in cluster.nodes[:2]:
            _kill(node)
        cluster.nodes[0] = _restart(cluster, tmp_path, 0, first)
        cluster.nodes[1] = _restart(cluster, tmp_path, 1, first)
        del cluster.nodes[2], cluster.homes[2]
        for u in cluster.urls:
            wait_for(lambda u=u: gone not in _members(u, cluster), f"{gone} gone at {u}")
            assert len(_members(u, cluster)) == 2
        _writes(cluster, want, "after")
        time.sleep(3)
        for u in cluster.urls:
            assert gone not in _members(u, cluster)
        _agree(cluster, want)
    finally:
        cluster.stop()
