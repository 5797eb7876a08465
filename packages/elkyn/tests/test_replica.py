"""Read replicas: follow the primary, survive restarts on both sides, resync from a snapshot."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from elkyn.testing import stop_server
from platform_core.testing import free_port


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def get(srv: Any, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{srv.url}{path}.json", headers={"Authorization": f"Bearer {token}"})


def put(srv: Any, path: str, value: Any, token: str) -> httpx.Response:
    return httpx.put(
        f"{srv.url}{path}.json", json=value, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.mark.slow
def test_replica_follows_and_catches_up_after_restarts(launch: Any, tmp_path: Path) -> None:
    port = free_port()
    primary = launch(tmp_path / "p", "--port", str(port))
    admin = primary.signer.issue("ops", admin=True)
    for i in range(30):
        assert put(primary, f"/jobs/{i}", {"state": "done", "i": i}, admin).status_code == 200
    replica = launch(tmp_path / "r", "--replica-of", primary.url)
    want = get(primary, "/", admin).json()
    wait_for(lambda: get(replica, "/", admin).json() == want)
    r = put(replica, "/jobs/x", 1, admin)  # forwarded to the primary, then read back here
    assert r.status_code == 200
    assert get(primary, "/jobs/x", admin).json() == 1 == get(replica, "/jobs/x", admin).json()

    # the primary restarts (same home, same port); the replica reconnects and catches up
    stop_server(primary.process)
    put_after: dict[str, Any] = {}
    primary = launch(tmp_path / "p", "--port", str(port))
    for i in range(30, 40):
        put(primary, f"/jobs/{i}", {"state": "new"}, admin)
        put_after[str(i)] = {"state": "new"}
    want = get(primary, "/", admin).json()
    wait_for(lambda: get(replica, "/", admin).json() == want)

    # the replica restarts and resumes from its own last sequence number
    stop_server(replica.process)
    put(primary, "/late", True, admin)
    replica = launch(tmp_path / "r", "--replica-of", primary.url)
    want = get(primary, "/", admin).json()
    wait_for(lambda: get(replica, "/", admin).json() == want)

    # rules follow the primary: a user reads on the replica only what the rules allow
    rules = {"rules": {"jobs": {"$id": {".read": "auth.uid === 'ann'"}}}}
    r = httpx.put(
        primary.url + "/.settings/rules.json",
        json=rules,
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert r.status_code == 200
    ann, bob = primary.signer.issue("ann"), primary.signer.issue("bob")
    wait_for(lambda: get(replica, "/jobs/3", ann).status_code == 200)
    assert get(replica, "/jobs/3", ann).json() == {"state": "done", "i": 3}
    assert get(replica, "/jobs/3", bob).status_code == 401
    assert get(replica, "/jobs", ann).status_code == 401


def test_replica_resyncs_from_a_snapshot_when_the_log_is_trimmed(
    launch: Any, tmp_path: Path
) -> None:
    primary = launch(tmp_path / "p", ELKYN_LOG_SIZE="5")
    admin = primary.signer.issue("ops", admin=True)
    put(primary, "/a", 1, admin)
    replica = launch(tmp_path / "r", "--replica-of", primary.url)
    wait_for(lambda: get(replica, "/a", admin).json() == 1)
    stop_server(replica.process)
    for i in range(20):  # more than the log keeps
        put(primary, f"/b/{i}", i, admin)
    httpx.delete(primary.url + "/a.json", headers={"Authorization": f"Bearer {admin}"})
    replica = launch(tmp_path / "r", "--replica-of", primary.url)
    want = get(primary, "/", admin).json()
    assert want == {"b": list(range(20))}
    wait_for(lambda: get(replica, "/", admin).json() == want)


def test_replication_log_needs_a_cluster_token(launch: Any, tmp_path: Path) -> None:
    primary = launch(tmp_path / "p")
    user = primary.signer.issue("ann", admin=True)
    r = httpx.get(
        primary.url + "/.replication/log?since=0", headers={"Authorization": f"Bearer {user}"}
    )
    assert r.status_code == 401
    assert httpx.get(primary.url + "/.replication/log?since=0").status_code == 401
    cluster = primary.signer.cluster_token("peer")
    r = httpx.get(
        primary.url + "/.replication/log?since=0", headers={"Authorization": f"Bearer {cluster}"}
    )
    assert r.status_code == 200
    assert r.json()["entries"] == []


def test_replication_log_rejects_bad_parameters(launch: Any, tmp_path: Path) -> None:
    primary = launch(tmp_path / "p")
    cluster = {"Authorization": f"Bearer {primary.signer.cluster_token('peer')}"}
    for query in ("since=abc", "since=0&wait=soon"):
        r = httpx.get(f"{primary.url}/.replication/log?{query}", headers=cluster)
        assert r.status_code == 400
        assert "error" in r.json()


@pytest.mark.slow
def test_replica_resyncs_when_the_primary_is_another_database(launch: Any, tmp_path: Path) -> None:
    """A memory primary restarted counts from 0 again: the replica must not skip or mix."""
    port = free_port()
    primary = launch(tmp_path / "p", "--memory", "--port", str(port))
    admin = primary.signer.issue("ops", admin=True)
    for i in range(5):
        put(primary, f"/k{i}", f"old{i}", admin)
    replica = launch(tmp_path / "r", "--replica-of", primary.url)
    wait_for(lambda: get(replica, "/", admin).json() == {f"k{i}": f"old{i}" for i in range(5)})
    # fewer writes than before (its sequence numbers are below the replica's) ...
    # ... then more writes than before (sequence numbers past the replica's, other data)
    for count in (3, 9):
        stop_server(primary.process)
        primary = launch(tmp_path / "p", "--memory", "--port", str(port))
        for i in range(count):
            put(primary, f"/n{i}", f"new{i}", admin)
        want = {f"n{i}": f"new{i}" for i in range(count)}
        assert get(primary, "/", admin).json() == want
        wait_for(lambda want=want: get(replica, "/", admin).json() == want)
        put(primary, "/after", count, admin)  # and it follows the new primary's log from there
        wait_for(
            lambda want=want, count=count: (
                get(replica, "/", admin).json() == {**want, "after": count}
            )
        )


def test_replica_forwards_rules_changes_to_the_primary(launch: Any, tmp_path: Path) -> None:
    """A replica takes its rules from the primary: a rules PUT goes there, and is in force
    here when the answer comes back (it used to be refused with 403)."""
    primary = launch(tmp_path / "p")
    admin = primary.signer.issue("ops", admin=True)
    replica = launch(tmp_path / "r", "--replica-of", primary.url)
    headers = {"Authorization": f"Bearer {admin}"}
    rules = {"rules": {".read": True}}
    r = httpx.put(replica.url + "/.settings/rules.json", json=rules, headers=headers)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    for srv in (primary, replica):
        got = httpx.get(srv.url + "/.settings/rules.json", headers=headers).json()
        assert got == rules


def _events(r: httpx.Response) -> Any:
    """(event, data, id) of each SSE event of a streaming response, keep-alives skipped."""
    kind, ident = "", None
    for line in r.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("data: ") and kind != "keep-alive":
            yield kind, json.loads(line[6:]), ident
            kind, ident = "", None


@pytest.mark.slow
def test_replica_streams_restart_when_the_replica_resyncs(launch: Any, tmp_path: Path) -> None:
    port = free_port()
    primary = launch(tmp_path / "p", "--memory", "--port", str(port))
    admin = primary.signer.issue("ops", admin=True)
    headers = {"Authorization": f"Bearer {admin}", "Accept": "text/event-stream"}
    for i in range(5):
        put(primary, f"/k{i}", i, admin)
    replica = launch(tmp_path / "r", "--replica-of", primary.url)
    wait_for(lambda: get(replica, "/", admin).json() == {f"k{i}": i for i in range(5)})
    put(primary, "/k0", 10, admin)
    wait_for(lambda: get(replica, "/k0", admin).json() == 10)
    with httpx.stream("GET", replica.url + "/.json", headers=headers, timeout=20) as r:
        events = _events(r)
        assert next(events)[:2] == (
            "put",
            {"path": "/", "data": {"k0": 10, "k1": 1, "k2": 2, "k3": 3, "k4": 4}},
        )
        put(primary, "/k1", 11, admin)
        kind, data, last_id = next(events)
        assert (kind, data) == ("put", {"path": "/k1", "data": 11})
        assert last_id is not None
        stop_server(primary.process)
        primary = launch(tmp_path / "p", "--memory", "--port", str(port))
        put(primary, "/fresh", True, admin)
        rest = list(events)  # the replica resyncs and ends the stream (cleanly)
    assert all(kind == "put" for kind, _, _ in rest), rest
    wait_for(lambda: get(replica, "/", admin).json() == {"fresh": True})
    # resuming with the old id gets a snapshot of the new database, not a replay
    with httpx.stream(
        "GET", replica.url + "/.json", headers={**headers, "Last-Event-ID": last_id}, timeout=20
    ) as r:
        assert next(_events(r))[:2] == ("put", {"path": "/", "data": {"fresh": True}})


@pytest.mark.parametrize("fenced_at", [1, 2])
def test_a_follower_started_after_a_newer_fence_applies_nothing(
    launch: Any, tmp_path: Path, fenced_at: int
) -> None:
    """Issue 29 (CI flake of test_break29_stray_fence): a fence at term 2 that lands while the
    elector is still starting the follower of term 1 finds no follower to halt. The follower
    must look at the fence itself, or it acknowledges the deposed primary's writes."""
    from elkyn.fencing import Fence
    from elkyn.replica import Follower
    from elkyn.store import Store

    primary = launch(tmp_path / "p", "--port", str(free_port()))
    admin = primary.signer.issue("ops", admin=True)
    assert put(primary, "/k", 1, admin).status_code == 200
    fence = Fence(sync_replicas=1, sync_timeout=1.0)
    fence.follow(1)
    fence.fenced = fenced_at  # 2: the coordinator fenced this server before it followed
    store = Store(tmp_path / "r" / "db")
    token = primary.signer.cluster_token("test", ttl_seconds=600)
    follower = Follower(store, primary.url, lambda: token, term=1, name="r", fence=fence)
    follower.start()
    try:
        if fenced_at == 1:  # the control: an unfenced follower of term 1 takes the write
            wait_for(lambda: store.last_seq() >= 1)
        else:
            follower.thread.join(5)
            assert not follower.thread.is_alive()  # it stopped on its own ...
            assert store.last_seq() == 0  # ... having applied (and acknowledged) nothing
    finally:
        follower.close()
        store.close()
