"""Break test (issue 29, from outside; this one held): the primary's `platform up` paused
(SIGSTOP) past the election's checks while four writers write through every gateway's `/db`
and five more writes wait on its own gateway, then resumed (SIGCONT).

A primary of a newer term takes writes within 10 s of the pause; the five writes the paused
primary takes on resuming answer 503 (it was deposed meanwhile) and are in no export; it
rejoins as a replica of the new term; every acknowledged write is in every export, the three
exports are equal, and no term acknowledged writes from two databases (two primaries).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from platform_cluster import start_cluster, wait_for
from test_platform_failover import Writers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]

BOUND_SECONDS = 10.0


def _waiting_writes(url: str, headers: dict[str, str]) -> tuple[list[threading.Thread], dict]:
    got: dict[int, int] = {}

    def put(j: int) -> None:
        r = httpx.put(f"{url}/db/paused/p{j}.json", json=j, headers=headers, timeout=60)
        got[j] = r.status_code

    threads = [threading.Thread(target=put, args=(j,)) for j in range(5)]
    for t in threads:
        t.start()
    return threads, got


def test_a_paused_primary_is_deposed_and_rejoins_as_a_replica(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    admin = cluster.admin()
    primary = cluster.nodes[0]
    writers = Writers(cluster.urls, admin)
    seen: set[tuple[int, str]] = set()
    original = httpx.Client.put

    def noting_put(self: httpx.Client, *args: object, **kwargs: object) -> httpx.Response:
        r = original(self, *args, **kwargs)  # type: ignore[arg-type]
        if r.status_code == 200 and "x-elkyn-database" in r.headers:
            seen.add((int(r.headers["x-elkyn-term"]), r.headers["x-elkyn-database"]))
        return r

    threads = [threading.Thread(target=writers.run, args=(i,)) for i in range(4)]
    httpx.Client.put = noting_put  # type: ignore[method-assign]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(writers.terms) > 20, "writes before the pause")
        os.kill(primary.pid, signal.SIGSTOP)
        paused = time.monotonic()
        waiting, got = _waiting_writes(cluster.urls[0], admin)
        writers.urls = cluster.urls[1:]
        wait_for(lambda: any(t > paused and term > 1 for t, term in writers.terms), "failover")
        back = min(t for t, term in writers.terms if t > paused and term > 1) - paused
        print(f"failover after SIGSTOP: {back:.2f} s")
        assert back < BOUND_SECONDS, back
        time.sleep(2)
        os.kill(primary.pid, signal.SIGCONT)
        writers.urls = cluster.urls
        for t in waiting:
            t.join(60)
        assert got == dict.fromkeys(range(5), 503), got
        st = wait_for(
            lambda: (
                (
                    s := httpx.get(
                        f"{cluster.urls[0]}/db/.replication/status", headers=admin, timeout=10
                    ).json()
                )["role"]
                == "replica"
                and s
            ),
            "the resumed platform to be a replica",
            timeout=30,
        )
        assert st["term"] >= 2, st
        time.sleep(2)  # writes through the resumed one too
    finally:
        httpx.Client.put = original  # type: ignore[method-assign]
        writers.stop.set()
        for t in threads:
            t.join(30)
        os.kill(primary.pid, signal.SIGCONT)
    try:
        _every_export_holds_every_acknowledged_write(cluster.urls, admin, writers)
        databases: dict[int, set[str]] = {}
        for term, database in seen:
            databases.setdefault(term, set()).add(database)
        assert all(len(d) == 1 for d in databases.values()), databases
    finally:
        cluster.stop()


def _every_export_holds_every_acknowledged_write(
    urls: list[str], admin: dict[str, str], writers: Writers
) -> None:
    def export(url: str) -> object:
        return httpx.get(f"{url}/db/.json", headers=admin, timeout=30).json()

    wait_for(lambda: len({repr(export(u)) for u in urls}) == 1, "the three exports to agree")
    tree = export(urls[0])
    assert isinstance(tree, dict)
    assert "paused" not in tree, tree.get("paused")
    lost = [
        (i, k)
        for i, acked in enumerate(writers.acked)
        for k, v in acked.items()
        if (tree.get(f"w{i}") or {}).get(k) != v
    ]
    assert lost == [], lost[:10]
    print(f"acknowledged writes: {sum(len(a) for a in writers.acked)}, lost: 0")
