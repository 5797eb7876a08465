"""Break tests (issue 29): removing election members at the edges. All held:

- A paused member (SIGSTOP: its election port still accepts TCP) is refused as running (409),
  nothing changed.
- Hostile `raft` values (20 000 characters, non-ASCII, port 0, quotes, CR LF, empty) answer
  404 naming the members; PUT and PATCH with an admin token answer 401 (node-to-node only);
  nothing changed.
- Two concurrent removes of one stopped member: one 200, the other 200 or a 503 saying to
  retry (pysyncobj runs one membership change at a time); a third answers 404.
- Two members left, the replica SIGKILLed: a write answers 503 saying it is committed on the
  primary but not acknowledged (semi-synchronous, ELKYN_SYNC_REPLICAS=1), reads go on; the
  replica restarted with its first command (`--join` the first) makes writes resume, and
  both exports agree. Then the primary is SIGKILLed: the one left (1 of 2, no majority)
  answers writes 503 naming the unreachable primary, and serves reads.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from platform_cluster import HELD_BREAK_TEST, Cluster, elkyn_status, join, start_cluster, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    HELD_BREAK_TEST,
]


def _remove(url: str, raft: str, cluster: Cluster, method: str = "DELETE") -> httpx.Response:
    return httpx.request(
        method,
        f"{url}/db/.replication/members",
        params={"raft": raft},
        headers=cluster.admin(),
        timeout=60,
    )


def test_leaving_at_the_edges(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _edges(cluster, tmp_path)
    finally:
        for node in cluster.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)
        cluster.stop()


def _edges(cluster: Cluster, tmp_path: Path) -> None:
    first, second, third = cluster.urls
    members = wait_for(
        lambda: (
            len(elkyn_status(first, cluster)["election"]["members"]) == 3
            and elkyn_status(first, cluster)["election"]["members"]
        ),
        "three members",
    )
    raft_of = {u.removesuffix("/db"): r for r, u in members.items()}

    # a paused member looks running: refused, nothing changed
    cluster.nodes[2].proc.send_signal(signal.SIGSTOP)
    r = _remove(second, raft_of[third], cluster)
    assert r.status_code == 409, r.text
    cluster.nodes[2].proc.send_signal(signal.SIGCONT)

    # hostile values and methods
    for raft in ("x" * 20000, "h\u00e9:1", "127.0.0.1:0", "';--:1", "a\r\nb:1", ""):
        r = _remove(second, raft, cluster)
        assert 400 <= r.status_code < 500, (raft[:50], r.status_code, r.text[:300])
    for method in ("PUT", "PATCH"):
        r = _remove(second, raft_of[third], cluster, method)
        assert 400 <= r.status_code < 500, (method, r.text)
    assert elkyn_status(second, cluster)["election"]["members"] == members

    # the replica stops; two concurrent removes of it
    cluster.nodes[2].stop()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda u: _remove(u, raft_of[third], cluster), (first, second)))
    codes = sorted(a.status_code for a in answers)
    assert codes in ([200, 200], [200, 503]), [a.text for a in answers]
    wait_for(
        lambda: all(
            raft_of[third] not in elkyn_status(u, cluster)["election"]["members"]
            for u in (first, second)
        ),
        "both to forget it",
    )
    again = _remove(second, raft_of[third], cluster)
    assert again.status_code == 404, again.text

    # two members left: the replica dies, writes refuse clearly, reads go on
    assert (
        httpx.put(f"{first}/db/k.json", json=1, headers=cluster.admin(), timeout=30).status_code
        == 200
    )
    cluster.nodes[1].proc.send_signal(signal.SIGKILL)
    cluster.nodes[1].proc.wait()
    r = httpx.put(f"{first}/db/k.json", json=2, headers=cluster.admin(), timeout=60)
    assert r.status_code == 503, r.text
    assert "not acknowledged" in r.text, r.text
    read = httpx.get(f"{first}/db/k.json", headers=cluster.admin(), timeout=30)
    assert read.status_code == 200, read.text

    # the replica comes back with its first command: writes resume
    cluster.nodes[1] = join(tmp_path, "p1", first)
    wait_for(
        lambda: (
            httpx.put(
                f"{first}/db/k2.json", json=3, headers=cluster.admin(), timeout=10
            ).status_code
            == 200
        ),
        "writes to resume",
        60,
    )

    def exports_agree() -> bool:
        trees = [
            httpx.get(f"{u}/db/.json", headers=cluster.admin(), timeout=30).json()
            for u in (first, cluster.nodes[1].url)
        ]
        kept = [{k: t.get(k) for k in ("k", "k2")} for t in trees]
        return kept[0] == kept[1] == {"k": 2, "k2": 3}

    wait_for(exports_agree, "both exports to hold the writes")

    # and the primary dies: the one left has no majority (1 of 2); reads go on
    second_again = cluster.nodes[1].url
    cluster.nodes[0].proc.send_signal(signal.SIGKILL)
    cluster.nodes[0].proc.wait()
    r = httpx.put(f"{second_again}/db/k3.json", json=4, headers=cluster.admin(), timeout=60)
    assert r.status_code == 503, r.text
    assert "unreachable" in r.text, r.text
    read = httpx.get(f"{second_again}/db/k2.json", headers=cluster.admin(), timeout=30)
    assert (read.status_code, read.json()) == (200, 3), read.text
