"""Break test (issue 29): the first platform's home is lost (a machine replaced), a fresh
`platform up` runs on its address with the same secret, and another platform is restarted
with its first command (`--join` that address) on its old home.

Found broken: it was admitted into the fresh platform's cluster while its Raft journal kept
the old one: it followed neither (every write 503 "not yet learnt", forever) and the fresh
platform counted it as a replica that never acknowledged (its writes 503 too). Now the
restart stops with `error: cannot start: ... runs another election cluster ...`, and the
fresh platform is left alone, taking writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from platform_cluster import FAST, Cluster, elkyn_status, start_cluster, wait_for
from servers import command, launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_restart_joining_a_fresh_cluster_at_the_old_address(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _stranger(cluster, tmp_path)
    finally:
        cluster.stop()


def _stranger(cluster: Cluster, tmp_path: Path) -> None:
    first = cluster.urls[0]
    wait_for(lambda: len(elkyn_status(first, cluster)["election"]["members"]) == 3, "three members")
    r = httpx.put(f"{first}/db/k.json", json=1, headers=cluster.admin(), timeout=30)
    assert r.status_code == 200, r.text
    for node in reversed(cluster.nodes):
        node.stop()
    shutil.rmtree(cluster.homes[0])  # the first machine is replaced: a fresh platform
    port = first.rsplit(":", 1)[1]
    first_argv = [str(command("platform")), "up", "--port", port, "--home", str(cluster.homes[0])]
    cluster.nodes[0] = launch(first_argv, tmp_path / "p0", env=FAST)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env.update({**FAST, "LAKE_FLIGHT_PORT": "0"})
    join = first.split("//", 1)[1]
    argv = [str(command("platform")), "up", "--port", "0", "--home", str(cluster.homes[1])]
    done = subprocess.run(
        [*argv, "--join", join],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path / "p1",
        timeout=120,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1, done.stderr[-2000:]
    assert last.startswith("error: cannot start: "), last
    assert "runs another election cluster" in last, last
    r = httpx.put(f"{first}/db/fresh.json", json=2, headers=cluster.admin(), timeout=30)
    assert r.status_code == 200, r.text  # the fresh platform was not made to wait for it
