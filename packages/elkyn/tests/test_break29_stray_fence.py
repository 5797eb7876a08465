"""A coordinator that fenced the replicas and died before naming a primary (issue 29, break
test): the fenced replicas had stopped following, the old primary still answered its health
check, so nothing ever named a new term and every write was refused (no replica acknowledged
it) until the primary itself failed. Simulated by fencing both replicas from outside as that
coordinator would have: writes must be accepted again, in a newer term, with nothing lost."""

from __future__ import annotations

import httpx
import pytest
from election_cluster import ElectionCluster, wait_for

pytestmark = pytest.mark.slow


def test_a_fence_never_followed_by_a_new_primary_is_healed(cluster: ElectionCluster) -> None:
    primary = wait_for(lambda: cluster.primary(), "a primary")
    term = cluster.status(primary)["term"]  # type: ignore[index]
    url = cluster.members[primary].url

    def put(value: int) -> httpx.Response | None:
        try:
            return httpx.put(f"{url}/k.json", json=value, headers=cluster.admin(), timeout=15)
        except httpx.HTTPError:
            return None

    wait_for(lambda: (r := put(1)) is not None and r.status_code == 200, "a first write")
    for i in range(len(cluster.members)):
        if i != primary:  # what the dead coordinator did before it could name anybody
            r = httpx.post(
                f"{cluster.members[i].url}/.replication/fence",
                json={"term": term + 1},
                headers=cluster.headers(),
            )
            assert r.status_code == 200, r.text

    def accepted() -> httpx.Response | None:
        r = put(2)
        return r if r is not None and r.status_code == 200 else None

    r = wait_for(accepted, "a write accepted again after the stray fence", timeout=25)
    assert int(r.headers["x-elkyn-term"]) > term
    wait_for(
        lambda: all(cluster.export(i) == {"k": 2} for i in range(len(cluster.members))),
        "every server to hold the write",
    )
