"""Break test (issue 29, from outside): hostile calls to ``/db/.replication/members`` of a
three-platform cluster started with ``platform up --join``, then the primary SIGKILLed.

Found: ``POST /db/.replication/members`` (cluster token) with ``{"raft": "x:notaport"}``
answered 500 *after* committing the bogus member's URL to the Raft record, and a member
whose Raft address nothing listens on was committed too. Every server counts the recorded
members as the election's servers, so the cluster became one of four (or five) with a
phantom: when one real platform then died, two of four answered the fence, "no majority",
and writes stayed refused for good. A member must be a valid ``host:port`` whose election
port answers before anything is recorded.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
from platform_cluster import start_cluster, write_in_newer_term

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

BOUND_SECONDS = 10.0


def test_hostile_member_calls_are_refused_and_failover_still_works(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, 3)
    try:
        _first, second, third = cluster.urls
        members = f"{second}/db/.replication/members"
        bogus = {"raft": "127.0.0.1:1", "url": "http://elsewhere.example/db"}
        for headers in ({}, cluster.user(), cluster.admin()):  # no token, a user's, an admin's
            assert httpx.get(members, headers=headers, timeout=10).status_code == 401
            assert httpx.post(members, json=bogus, headers=headers, timeout=10).status_code == 401
        huge = httpx.post(members, content=b"x" * (20 << 20), timeout=30)
        assert huge.status_code == 413, huge.text
        cl = cluster.cluster_headers()
        for body in (b"{not json", b"[1, 2]", b'{"raft": 1}'):
            r = httpx.post(members, content=body, headers=cl, timeout=10)
            assert r.status_code == 400, r.text
        bad_port = httpx.post(
            members, json={"raft": "x:notaport", "url": "http://evil/db"}, headers=cl, timeout=20
        )
        assert bad_port.status_code == 400, bad_port.text
        nobody = httpx.post(members, json=bogus, headers=cl, timeout=30)
        assert nobody.status_code == 400, nobody.text
        assert "election port" in nobody.json()["error"], nobody.text
        listed = httpx.get(members, headers=cl, timeout=10).json()["members"]
        assert len(listed) == 3, listed
        assert "http://elsewhere.example/db" not in listed.values(), listed

        # the election still counts three servers: losing the primary's platform fails over
        cluster.nodes[0].proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        cluster.nodes[0].proc.wait()

        write_in_newer_term(third, "after/k", 1, cluster)
        back = time.monotonic() - killed
        print(f"failover after the hostile calls: {back:.2f} s")
        assert back < BOUND_SECONDS, back
    finally:
        cluster.stop()
