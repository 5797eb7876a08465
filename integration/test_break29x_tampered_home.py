"""Break tests (issue 29): a platform restarted with its first command on a home whose
election files were tampered with or lost.

Found broken: the first platform's `platform up` (no `--join`) decided it had been alone
(and so forgot its Raft journal and served writes at once as the primary of a new term 1)
whenever ``<home>/elkyn/election.members`` was missing or held `{}`, `[]` or `""`: restarted
beside a live cluster, it became a second primary whose acknowledged writes no other
platform ever had, while its lake node rejoined the others. Now only a readable record of one
member counts as alone; anything else keeps the journal (the safe side).
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from platform_cluster import FAST, Cluster, elkyn_status, start_cluster, wait_for
from servers import command, launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _put(url: str, key: str, value: int, cluster: Cluster) -> httpx.Response:
    return httpx.put(f"{url}/db/{key}.json", json=value, headers=cluster.admin(), timeout=10)


def test_a_lost_election_record_does_not_make_a_second_primary(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _lost_record(cluster, tmp_path)
    finally:
        cluster.stop()


def _lost_record(cluster: Cluster, tmp_path: Path) -> None:
    first, second, _ = cluster.urls
    wait_for(lambda: len(elkyn_status(first, cluster)["election"]["members"]) == 3, "three members")
    assert _put(first, "a", 1, cluster).status_code == 200
    cluster.nodes[0].proc.send_signal(signal.SIGKILL)
    cluster.nodes[0].proc.wait()
    wait_for(lambda: _put(second, "b", 2, cluster).status_code == 200, "the failover", 30)
    saved = list(cluster.homes[0].rglob("election.members"))
    assert saved, list(cluster.homes[0].rglob("election*"))
    saved[0].write_text("{}")  # garbage (or the file lost: the same decision)

    port = first.rsplit(":", 1)[1]
    argv = [str(command("platform")), "up", "--port", port, "--home", str(cluster.homes[0])]
    cluster.nodes[0] = launch(argv, tmp_path / "p0", env=FAST)
    acked = {"a": 1, "b": 2}
    for i in range(10):  # every write acknowledged through the restarted platform ...
        r = _put(first, f"w{i}", i, cluster)
        if r.status_code == 200:
            acked[f"w{i}"] = i
    status = elkyn_status(first, cluster)
    print("restarted first:", status.get("role"), status.get("term"), status.get("leader"))

    def exports_hold_every_acked_write() -> bool:  # ... is in every platform's export
        trees = [
            httpx.get(f"{u}/db/.json", headers=cluster.admin(), timeout=30).json()
            for u in cluster.urls
        ]
        return all({k: t.get(k) for k in acked} == acked for t in trees)

    wait_for(exports_hold_every_acked_write, f"every export to hold {sorted(acked)}", 45)
    terms = {elkyn_status(u, cluster)["term"] for u in cluster.urls}
    assert len(terms) == 1, terms
