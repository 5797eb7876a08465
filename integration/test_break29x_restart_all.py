"""Break tests (issue 29): every platform of three SIGKILLed, then all started again at once
with their first commands (the first on its old port without `--join`, the others `--join`
it). One of them is SIGKILLed again while they start, and started once more.

Checked with the platforms as their own oracle: every write acknowledged before is in every
platform's whole export afterwards, the exports agree, and every platform names the same
primary for the same term.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from platform_cluster import (
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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    HELD_BREAK_TEST,
]


def test_all_three_restarted_at_once_with_their_first_commands(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _restart_all(cluster, tmp_path)
    finally:
        cluster.stop()


def _first(cluster: Cluster, tmp_path: Path, port: str) -> ServerProcess:
    argv = [str(command("platform")), "up", "--port", port, "--home", str(cluster.homes[0])]
    node: ServerProcess = launch(argv, tmp_path / "p0", env=FAST)
    return node


def _restart_all(cluster: Cluster, tmp_path: Path) -> None:
    wait_for(lambda: len(elkyn_status(cluster.urls[0], cluster)["election"]["members"]) == 3, "3")
    acked: dict[str, int] = {}
    for i, url in enumerate(cluster.urls * 3):
        if write_ok(url, f"k{i}", i, cluster):
            acked[f"k{i}"] = i
    assert len(acked) == 9, acked
    first = cluster.urls[0]
    port = first.rsplit(":", 1)[1]
    for node in cluster.nodes:
        node.proc.send_signal(signal.SIGKILL)
    for node in cluster.nodes:
        node.proc.wait()
    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(_first, cluster, tmp_path, port)] + [
            pool.submit(join, tmp_path, f"p{i}", first) for i in (1, 2)
        ]
        cluster.nodes = [f.result() for f in futures]
    print(f"all three up again in {time.monotonic() - started:.1f} s")
    # one of the joined ones is SIGKILLed while the election settles, and started again
    cluster.nodes[2].proc.send_signal(signal.SIGKILL)
    cluster.nodes[2].proc.wait()
    cluster.nodes[2] = join(tmp_path, "p2", first)
    for i, url in enumerate(cluster.urls):
        wait_for(
            lambda url=url, i=i: write_ok(url, f"after{i}", i, cluster), f"a write via {url}", 60
        )
        acked[f"after{i}"] = i
    print(f"writes through all three after {time.monotonic() - started:.1f} s")

    def exports_agree() -> bool:
        trees = [
            httpx.get(f"{u}/db/.json", headers=cluster.admin(), timeout=30).json()
            for u in cluster.urls
        ]
        held = all({k: t.get(k) for k in acked} == acked for t in trees)
        return held and all(
            {k: v for k, v in t.items() if k != "nodes"}
            == {k: v for k, v in trees[0].items() if k != "nodes"}
            for t in trees
        )

    wait_for(exports_agree, "every export to hold every acknowledged write, and to agree", 60)
    views = {(e["term"], e["leader"]) for e in (elkyn_status(u, cluster) for u in cluster.urls)}
    assert len(views) == 1, views
