"""A platform restarted with the command it was first started with finds its cluster again,
even when the platform it was told to `--join` is the one that died (issue 29).

1. Three platforms; the first (started without `--join`) is SIGKILLed and the other two elect
   a new Elkyn primary.
2. The replica of the two is stopped and started again with its first command, `--join` to
   the dead first platform: it rejoins through the members it remembers (Elkyn's election, the lake's
   gossip), follows the current term, and takes writes.
3. The first is started again with its own first command (no `--join`, same port): it
   rejoins both too (before, the lake's other members never pinged its dead entry again, so
   it stayed alone), and every platform's export holds every write.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from platform_cluster import (
    FAST,
    Cluster,
    elkyn_status,
    exports_hold,
    join,
    start_cluster,
    wait_for,
)
from servers import command, launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _alive(url: str, cluster: Cluster) -> set[str]:
    r = httpx.get(f"{url}/api/lake/nodes", headers=cluster.admin(), timeout=10)
    return {m["http"] for m in r.json()["members"] if m["state"] == "alive"}


def _write(url: str, key: str, value: int, cluster: Cluster, above: int = 0) -> bool:
    r = httpx.put(f"{url}/db/{key}.json", json=value, headers=cluster.admin(), timeout=8)
    return r.status_code == 200 and int(r.headers["x-elkyn-term"]) > above


def _rejoined(url: str, cluster: Cluster, term: int, live: list[str]) -> None:
    """The platform at ``url`` follows the primary of ``term``, and the lake nodes of the
    ``live`` platforms all see each other alive."""
    seen: list[dict[str, Any]] = [{}]

    def follows() -> bool:
        seen[0] = e = elkyn_status(url, cluster)
        return bool(e["term"] == term and e["role"] == "replica")

    try:
        wait_for(follows, f"{url} to follow term {term}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its Elkyn status: {seen[0]}") from None
    hosts = {u.split("//", 1)[1] for u in live}
    for other in live:
        wait_for(lambda o=other: _alive(o, cluster) == hosts, f"{other} to see every node")


def test_a_restarted_platform_rejoins_even_when_its_join_platform_died(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _restart_round(cluster, tmp_path)
    finally:
        cluster.stop()


def _restart_round(cluster: Cluster, tmp_path: Path) -> None:
    first = cluster.urls[0]
    wait_for(lambda: _write(first, "a", 1, cluster), "a first write")
    cluster.nodes[0].proc.send_signal(signal.SIGKILL)
    cluster.nodes[0].proc.wait()
    wait_for(lambda: _write(cluster.urls[1], "b", 2, cluster, above=1), "the failover", 30)
    elkyn = elkyn_status(cluster.urls[1], cluster)
    term = elkyn["term"]
    # the replica of the two is restarted (stopping the new primary too would leave one
    # platform of three: no majority until it is back, and then another term)
    r = 2 if elkyn["leader"] == f"{cluster.urls[1]}/db" else 1
    cluster.nodes[r].stop()  # and started with its first command: --join the dead platform
    started = time.monotonic()
    cluster.nodes[r] = join(tmp_path, f"p{r}", first)
    print(f"restarted with --join to a dead platform in {time.monotonic() - started:.1f} s")
    _rejoined(cluster.urls[r], cluster, term, cluster.urls[1:])
    wait_for(lambda: _write(cluster.urls[r], "c", 3, cluster), "a write through it")

    port = first.rsplit(":", 1)[1]  # the first platform, with its own first command
    home = cluster.homes[0]
    argv = [str(command("platform")), "up", "--port", port, "--home", str(home)]
    cluster.nodes[0] = launch(argv, tmp_path / "p0", env=FAST)
    _rejoined(first, cluster, term, cluster.urls)
    wait_for(lambda: _write(first, "d", 4, cluster), "a write through the first platform")
    want = {"a": 1, "b": 2, "c": 3, "d": 4}

    wait_for(lambda: exports_hold(cluster, want), "every export to hold every write")
