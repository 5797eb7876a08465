"""Break test (issue 29, from outside): a replica's platform SIGKILLed and restarted with
`--join` (same home, `--port 0`: a new HTTP port, so a new Elkyn URL) while the primary
stays up.

Held: it rejoins as a replica of the same term, and writes through its `/db` are taken.

Found: the primary's `platform status` kept the killed replica's old URL among its
replicas, "N behind" and growing, beside the new one: three replicas for a cluster of three
platforms. The primary reports only the election's current members' URLs now.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from platform_cluster import FAST, replication_status_once_following, start_cluster, wait_for
from servers import command, launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def test_a_restarted_replica_replaces_its_old_url_in_the_primarys_status(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    admin = cluster.admin()
    try:
        first, second, third = cluster.urls

        def replicas() -> dict[str, dict[str, object]]:
            r = httpx.get(f"{first}/api/platform/status", headers=admin, timeout=30)
            return r.json()["self"]["plugins"]["elkyn"].get("replicas") or {}

        def write(url: str, value: int) -> bool:
            r = httpx.put(f"{url}/db/r/k.json", json=value, headers=admin, timeout=10)
            return r.status_code == 200

        assert write(second, 1)
        wait_for(lambda: set(replicas()) == {f"{second}/db", f"{third}/db"}, "two replicas")
        cluster.nodes[2].proc.send_signal(signal.SIGKILL)
        cluster.nodes[2].proc.wait()
        assert write(second, 2)  # the other replica acknowledges
        back = launch(
            [
                str(command("platform")),
                *("up", "--port", "0", "--home", str(cluster.homes[2])),
                *("--join", second.split("//", 1)[1]),
            ],
            tmp_path / "p2-again",
            env=dict(FAST),
        )
        cluster.nodes[2] = back
        st = replication_status_once_following(back.url, cluster)
        assert st["term"] == 1, st
        wait_for(lambda: write(back.url, 3), "a write through the restarted platform")
        wait_for(
            lambda: set(r := replicas()) == {f"{second}/db", f"{back.url}/db"} or print(r),
            "the primary's status to list the two live replicas only",
            timeout=20,
        )
    finally:
        cluster.stop()
