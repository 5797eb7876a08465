"""Leaving the election (issue 29): a stopped platform is removed with `platform members
remove`, a new one joins, and the cluster again survives losing its primary's platform.

Without the removal the election would count four members with two alive (no majority, no
failover ever again); with it, three members of which two are alive elect a new primary.
Removal refuses clearly what it must not do: a running member, the primary, this platform,
an unknown address, a user's token.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from platform_cluster import (
    Cluster,
    elkyn_status,
    join,
    start_cluster,
    wait_for,
    write_in_newer_term,
)
from servers import command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BOUND_SECONDS = 10.0


def _members_cli(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``platform members ARGS`` as an operator runs it against the gateway at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    return subprocess.run(
        [str(command("platform")), "members", *args, "--url", url, "--token", token],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_stopped_platform_is_removed_and_a_new_one_keeps_the_majority(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _leave_and_fail_over(cluster, tmp_path)
    finally:
        cluster.stop()


def _leave_and_fail_over(cluster: Cluster, tmp_path: Path) -> None:
    first, second, third = cluster.urls
    admin = cluster.admin()["authorization"][7:]
    election = wait_for(
        lambda: (
            len(elkyn_status(first, cluster)["election"]["members"]) == 3
            and elkyn_status(first, cluster)
        ),
        "three election members",
    )
    members: dict[str, str] = election["election"]["members"]
    raft_of = {url.removesuffix("/db"): raft for raft, url in members.items()}
    assert election["leader"] == f"{first}/db"  # the first platform is the primary

    listed = _members_cli(second, admin)
    assert listed.returncode == 0, listed.stderr
    assert f"{raft_of[first]}  {first}/db  (primary)" in listed.stdout
    assert raft_of[third] in listed.stdout

    # refused, with nothing changed: a user, an unknown address, itself, the primary, running
    for headers, status in (({}, 401), (cluster.user(), 403)):
        r = httpx.delete(
            f"{second}/db/.replication/members",
            params={"raft": raft_of[third]},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == status, r.text
    refused = {
        "127.0.0.1:1": (4, "not a member of this election"),
        raft_of[second]: (5, "is this platform"),
        raft_of[first]: (5, "is the elected primary of term 1"),
        raft_of[third]: (5, "still answers on its election port"),
    }
    for raft, (code, why) in refused.items():
        done = _members_cli(second, admin, "remove", raft)
        assert (done.returncode, why in done.stderr) == (code, True), (raft, done.stderr)
    assert elkyn_status(second, cluster)["election"]["members"] == members

    # the third platform stops for good, and is removed through the second
    cluster.nodes[2].stop()
    done = _members_cli(second, admin, "remove", raft_of[third])
    assert done.returncode == 0, done.stderr
    head, *left = done.stdout.splitlines()
    assert head == f"removed {raft_of[third]}; the members now:"
    assert sorted(line.split()[0] for line in left) == sorted([raft_of[first], raft_of[second]])
    for url in (first, second):
        wait_for(
            lambda url=url: raft_of[third] not in elkyn_status(url, cluster)["election"]["members"],
            f"{url} to forget the removed platform",
        )

    # a new platform joins: three members again, two of which survive the primary's loss
    cluster.nodes[2] = join(tmp_path, "p3", second)
    fourth = cluster.nodes[2].url
    wait_for(
        lambda: len(elkyn_status(first, cluster)["election"]["members"]) == 3,
        "the new platform in the election",
    )
    wait_for(lambda: elkyn_status(fourth, cluster)["term"] == 1, "the new platform to follow")
    r = httpx.put(f"{fourth}/db/before.json", json=1, headers=cluster.admin(), timeout=30)
    assert r.status_code == 200, r.text
    cluster.nodes[0].proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    cluster.nodes[0].proc.wait()

    write_in_newer_term(fourth, "after", 2, cluster)
    back = time.monotonic() - killed
    print(f"failover after a removal and a join: {back:.2f} s")
    assert back < BOUND_SECONDS, back
    for url in (second, fourth):
        tree = httpx.get(f"{url}/db/.json", headers=cluster.admin(), timeout=30).json()
        assert (tree["before"], tree["after"]) == (1, 2), (url, tree)
