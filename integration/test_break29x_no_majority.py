"""Break test (issue 29): every platform of three stopped, the first started again alone with
its first command (`platform up`, its old home and port).

Found unclear: its writes answered 503 "has not yet learnt from the election which server is
the primary (it has just started or joined); retry in a moment" for as long as the others
stayed down, with no word of why. Now the 503 says no majority of the election's members
answers and names the ones it waits for; a second one started makes writes resume, with
every write acknowledged before in both exports (held: no split brain, nothing lost).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from platform_cluster import FAST, Cluster, elkyn_status, join, start_cluster, wait_for
from servers import command, launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_platform_restarted_without_a_majority_says_so(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _alone_again(cluster, tmp_path)
    finally:
        cluster.stop()


def _alone_again(cluster: Cluster, tmp_path: Path) -> None:
    first = cluster.urls[0]
    members = wait_for(
        lambda: (
            len(elkyn_status(first, cluster)["election"]["members"]) == 3
            and elkyn_status(first, cluster)["election"]["members"]
        ),
        "three members",
    )
    r = httpx.put(f"{first}/db/a.json", json=1, headers=cluster.admin(), timeout=30)
    assert r.status_code == 200, r.text
    for node in reversed(cluster.nodes):
        node.stop()
    port = first.rsplit(":", 1)[1]
    argv = [str(command("platform")), "up", "--port", port, "--home", str(cluster.homes[0])]
    cluster.nodes[0] = launch(argv, tmp_path / "p0", env=FAST)

    def refused() -> httpx.Response | None:
        r = httpx.put(f"{first}/db/b.json", json=2, headers=cluster.admin(), timeout=30)
        return r if r.status_code == 503 and "no majority" in r.text else None

    answer = wait_for(refused, "a 503 saying no majority answers", 30)
    own = next(raft for raft, url in members.items() if url == f"{first}/db")
    for raft in sorted(set(members) - {own}):
        assert raft in answer.text, answer.text
    read = httpx.get(f"{first}/db/a.json", headers=cluster.admin(), timeout=30)
    assert (read.status_code, read.json()) == (200, 1)

    cluster.nodes[1] = join(tmp_path, "p1", first)  # a majority again: writes resume
    wait_for(
        lambda: (
            (
                httpx.put(f"{first}/db/c.json", json=3, headers=cluster.admin(), timeout=10)
            ).status_code
            == 200
        ),
        "writes to resume",
        60,
    )

    def both_hold() -> bool:
        trees = [
            httpx.get(f"{u}/db/.json", headers=cluster.admin(), timeout=30).json()
            for u in cluster.urls[:2]
        ]
        return all((t.get("a"), t.get("c")) == (1, 3) for t in trees)

    wait_for(both_hold, "both exports to hold the acknowledged writes")
