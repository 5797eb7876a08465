"""Break tests (issue 29): a platform removed from the election (`platform members remove`)
is started again on its old home.

Found broken: the removed first platform, started with its first command (`platform up`, no
`--join`), came up "healthy": its lake node rejoined the cluster, but the others refuse its
Raft node's connections (it is no member any more), so its Elkyn never learnt the primary and
answered every write 503 "retry in a moment" forever, its status naming a primary of a term
long over. Now it stops with `error: cannot start: ... is no member ...` naming the platform
to `--join`; started with `--join` it is admitted again and follows the current primary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from platform_cluster import FAST, Cluster, elkyn_status, join, start_cluster, wait_for
from servers import command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REFUSE_SECONDS = 60.0
"""A removed platform's `platform up` ends within this (it starts its lake and gateway
first; a loaded 2-core machine takes tens of seconds)."""


def _put(url: str, key: str, value: int, cluster: Cluster) -> httpx.Response:
    return httpx.put(f"{url}/db/{key}.json", json=value, headers=cluster.admin(), timeout=10)


def _up(home: Path, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`platform up --home HOME ARGS` as an operator runs it, expected to end by itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env.update({**FAST, "LAKE_FLIGHT_PORT": "0"})
    argv = [str(command("platform")), "up", "--home", str(home), *args]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=run_dir, timeout=REFUSE_SECONDS * 2
    )


def test_a_removed_platform_restarted_on_its_home_refuses_or_rejoins(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _removed_restart(cluster, tmp_path)
    finally:
        cluster.stop()


def _removed_restart(cluster: Cluster, tmp_path: Path) -> None:
    first, second, third = cluster.urls
    members = wait_for(
        lambda: (
            len(elkyn_status(first, cluster)["election"]["members"]) == 3
            and elkyn_status(first, cluster)["election"]["members"]
        ),
        "three members",
    )
    raft_of = {u.removesuffix("/db"): r for r, u in members.items()}
    assert _put(first, "a", 1, cluster).status_code == 200
    cluster.nodes[0].proc.send_signal(signal.SIGKILL)
    cluster.nodes[0].proc.wait()
    wait_for(
        lambda: _put(second, "b", 2, cluster).status_code == 200,
        "writes after the failover",
        30,
    )
    term = wait_for(
        lambda: elkyn_status(second, cluster)["term"] > 1 and elkyn_status(second, cluster)["term"],
        "a new term",
    )
    r = httpx.delete(
        f"{second}/db/.replication/members",
        params={"raft": raft_of[first]},
        headers=cluster.admin(),
        timeout=30,
    )
    assert r.status_code == 200, r.text

    # its first command, on its old home: a clear refusal, not a platform that never writes
    port = first.rsplit(":", 1)[1]
    started = time.monotonic()
    done = _up(cluster.homes[0], tmp_path / "p0", "--port", port)
    took = time.monotonic() - started
    print(f"refused in {took:.1f} s: {done.stderr.strip().splitlines()[-1:]}")
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot start: "), last
    assert "is no member of its cluster's election" in last, last
    assert (
        f"--join {second.split('//', 1)[1]}" in last or f"--join {third.split('//', 1)[1]}" in last
    )
    assert took < REFUSE_SECONDS, took
    assert elkyn_status(second, cluster)["term"] == term  # the others' election was not disturbed
    assert _put(third, "c", 3, cluster).status_code == 200

    # with --join it is admitted again and follows the current primary
    cluster.nodes[0] = join(tmp_path, "p0", second)
    again = cluster.nodes[0].url
    wait_for(
        lambda: elkyn_status(again, cluster)["term"] == term, "the readmitted platform to follow"
    )
    wait_for(lambda: _put(again, "d", 4, cluster).status_code == 200, "a write through it")
    want = {"a": 1, "b": 2, "c": 3, "d": 4}

    def exports_agree() -> bool:
        trees = [
            httpx.get(f"{u}/db/.json", headers=cluster.admin(), timeout=30).json()
            for u in cluster.urls
        ]
        return all({k: t.get(k) for k in want} == want for t in trees) and all(
            t == trees[0] for t in trees
        )

    wait_for(exports_agree, "every export to hold every write, and to agree")
    assert len(elkyn_status(second, cluster)["election"]["members"]) == 3
