"""Replicas take writes: forwarded to the primary (which decides), read back at once here.

Real `elkyn serve` processes on 127.0.0.1: a primary, replicas of it, a replica of a replica.
"""

from __future__ import annotations

import json
import queue
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from elkyn import ReplicaWriteError, Store, replication_status
from platform_core.testing import free_port

from .conftest import Server

RULES = {
    "rules": {
        "open": {".read": True, ".write": True},
        "num": {".read": True, ".write": True, "$n": {".validate": "newData.isNumber()"}},
        "users": {
            ".read": "auth != null",
            "$uid": {".write": "auth != null && auth.uid === $uid"},
        },
    }
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pair(
    launch: Any, tmp_path: Path, *replica_args: str, **replica_env: str
) -> tuple[Server, Server]:
    primary = launch(tmp_path / "p", "--port", str(free_port()))
    admin = primary.signer.issue("ops", admin=True)
    r = httpx.put(primary.url + "/.settings/rules.json", json=RULES, headers=bearer(admin))
    assert r.status_code == 200, r.text
    replica = launch(tmp_path / "r", "--replica-of", primary.url, *replica_args, **replica_env)
    return primary, replica


def test_writes_through_the_replica_are_read_back_at_once_on_both(
    launch: Any, tmp_path: Path
) -> None:
    primary, replica = pair(launch, tmp_path)
    admin = bearer(primary.signer.issue("ops", admin=True))
    with httpx.Client(base_url=replica.url, headers=admin, timeout=10) as rc:
        r = rc.put("/open/a.json", json={"x": 1})
        assert r.status_code == 200
        assert r.json() == {"x": 1}
        assert int(r.headers["x-elkyn-seq"]) >= 1
        assert "x-elkyn-caught-up" not in r.headers
        assert rc.get("/open/a.json").json() == {"x": 1}  # no wait: read-your-writes
        assert rc.patch("/open/a.json", json={"y": 2}).json() == {"y": 2}
        assert rc.get("/open/a.json").json() == {"x": 1, "y": 2}
        name = rc.post("/open/list.json", json="first").json()["name"]
        assert rc.get(f"/open/list/{name}.json").json() == "first"
        assert rc.delete("/open/a/x.json").status_code == 200
        assert rc.get("/open/a.json").json() == {"y": 2}
        assert rc.put("/open/q.json?print=silent", json=3).status_code == 204
        assert rc.get("/open/q.json").json() == 3
    want = {"a": {"y": 2}, "list": {name: "first"}, "q": 3}
    assert httpx.get(primary.url + "/open.json", headers=admin).json() == want
    assert httpx.get(replica.url + "/open.json", headers=admin).json() == want


def test_the_primary_decides_on_rules_for_a_forwarded_write(launch: Any, tmp_path: Path) -> None:
    primary, replica = pair(launch, tmp_path)
    admin = bearer(primary.signer.issue("ops", admin=True))
    ann = bearer(primary.signer.issue("ann"))
    assert httpx.put(replica.url + "/users/ann.json", json={"n": 1}, headers=ann).status_code == 200
    denied = httpx.put(replica.url + "/users/bob.json", json={"n": 1}, headers=ann)
    assert denied.status_code == 401
    assert denied.json() == {"error": "Permission denied"}
    bad = httpx.put(replica.url + "/num/k.json", json="text", headers=ann)
    assert bad.status_code == 401  # .validate failed on the primary
    for srv in (primary, replica):
        assert httpx.get(srv.url + "/users.json", headers=admin).json() == {"ann": {"n": 1}}
        assert httpx.get(srv.url + "/num.json", headers=admin).json() is None
    # the rules endpoint: a user may not replace the rules through the replica either
    r = httpx.put(
        replica.url + "/.settings/rules.json", json={"rules": {".write": True}}, headers=ann
    )
    assert r.status_code == 401
    assert httpx.get(primary.url + "/.settings/rules.json", headers=admin).json() == RULES
    # an admin may, and the replica enforces the new rules when the answer comes back
    loose = {"rules": {".read": True, ".write": True}}
    r = httpx.put(replica.url + "/.settings/rules.json", json=loose, headers=admin)
    assert r.status_code == 200
    assert "x-elkyn-seq" in r.headers
    assert httpx.get(replica.url + "/.settings/rules.json", headers=admin).json() == loose
    assert httpx.put(replica.url + "/users/bob.json", json=1, headers=ann).status_code == 200


def test_a_user_token_is_refused_on_the_replication_routes(launch: Any, tmp_path: Path) -> None:
    primary, replica = pair(launch, tmp_path)
    user, admin = primary.signer.issue("ann"), primary.signer.issue("ops", admin=True)
    cluster = primary.signer.cluster_token("node")
    for srv in (primary, replica):
        for route in ("/.replication/log?since=0", "/.replication/status"):
            assert httpx.get(srv.url + route).status_code == 401
            r = httpx.get(srv.url + route, headers=bearer(user))
            assert r.status_code in (401, 403)
            assert "error" in r.json()
        assert (
            httpx.get(srv.url + "/.replication/log?since=0", headers=bearer(admin)).status_code
            == 401
        )
        status = httpx.get(srv.url + "/.replication/status", headers=bearer(admin)).json()
        assert status == httpx.get(
            srv.url + "/.replication/status", headers=bearer(cluster)
        ).json() | {"lag_seconds": status["lag_seconds"]}
    p = httpx.get(primary.url + "/.replication/status", headers=bearer(cluster)).json()
    assert p["role"] == "primary"
    assert p["primary"] is None
    assert p["primary_seq"] is None
    r = httpx.get(replica.url + "/.replication/status", headers=bearer(cluster)).json()
    assert r["role"] == "replica"
    assert r["primary"] == primary.url
    assert r["database"] != p["database"]  # a replica has its own id


def test_a_replica_of_a_replica_follows_the_primary(launch: Any, tmp_path: Path) -> None:
    primary, middle = pair(launch, tmp_path)
    last = launch(tmp_path / "r2", "--replica-of", middle.url)
    cluster = bearer(primary.signer.cluster_token("node"))
    status = httpx.get(last.url + "/.replication/status", headers=cluster).json()
    assert status["role"] == "replica"
    assert status["primary"] == primary.url
    r = httpx.get(middle.url + "/.replication/log?since=0", headers=cluster)
    assert r.status_code == 409
    assert primary.url in r.json()["error"]
    admin = bearer(primary.signer.issue("ops", admin=True))
    assert httpx.put(last.url + "/open/z.json", json=7, headers=admin).status_code == 200
    assert httpx.get(last.url + "/open/z.json", headers=admin).json() == 7
    assert httpx.get(primary.url + "/open/z.json", headers=admin).json() == 7


def test_the_forwards_body_bounds(launch: Any, tmp_path: Path) -> None:
    primary, replica = pair(launch, tmp_path, ELKYN_MAX_WRITE_BYTES="1000")
    admin = bearer(primary.signer.issue("ops", admin=True))
    r = httpx.put(replica.url + "/open/big.json", json="x" * 2000, headers=admin)
    assert r.status_code == 400
    assert "write size limit of 1000 bytes" in r.json()["error"]
    assert httpx.get(primary.url + "/open/big.json", headers=admin).json() is None  # not sent
    # the primary's answer is bounded too: a replica taking at most 100 bytes of it
    small = launch(
        tmp_path / "r3", "--replica-of", primary.url, ELKYN_FORWARD_MAX_ANSWER_BYTES="100"
    )
    r = httpx.put(small.url + "/open/mid.json", json="y" * 500, headers=admin)
    assert r.status_code == 503
    assert "answered more than 100 bytes" in r.json()["error"]


@contextmanager
def sse(url: str, token: str) -> Iterator[queue.Queue[tuple[str, Any]]]:
    """An open SSE stream read on a thread: its (event, data) pairs arrive in the queue."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    client = httpx.Client(timeout=httpx.Timeout(10, read=30))
    done = threading.Event()

    def read() -> None:
        event = ""
        try:
            with client.stream(
                "GET", url, headers={**bearer(token), "Accept": "text/event-stream"}
            ) as resp:
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        events.put((event, json.loads(line[6:])))
                    if done.is_set():
                        return
        except httpx.HTTPError as exc:
            events.put(("closed", str(exc)))
        events.put(("closed", None))

    threading.Thread(target=read, daemon=True).start()
    try:
        yield events
    finally:
        done.set()
        client.close()


def next_data(events: queue.Queue[tuple[str, Any]], keep_alives: bool = False) -> tuple[str, Any]:
    while True:
        event, data = events.get(timeout=15)
        if keep_alives or event != "keep-alive":
            return event, data


@pytest.mark.slow
def test_primary_killed_reads_and_streams_go_on_writes_fail_until_it_is_back(
    launch: Any, tmp_path: Path
) -> None:
    port = free_port()
    primary = launch(tmp_path / "p", "--port", str(port))
    url = primary.url
    admin_token = primary.signer.issue("ops", admin=True)
    admin = bearer(admin_token)
    assert httpx.put(url + "/room.json", json={"a": 1}, headers=admin).status_code == 200
    replica = launch(tmp_path / "r", "--replica-of", url)
    assert httpx.put(replica.url + "/room/b.json", json=2, headers=admin).status_code == 200
    with sse(replica.url + "/room.json", admin_token) as events:
        assert next_data(events) == ("put", {"path": "/", "data": {"a": 1, "b": 2}})
        primary.process.proc.kill()  # SIGKILL: no goodbye
        primary.process.proc.wait()
        assert httpx.get(replica.url + "/room.json", headers=admin).json() == {"a": 1, "b": 2}
        r = httpx.put(replica.url + "/room/c.json", json=3, headers=admin)
        assert r.status_code == 503
        error = r.json()["error"]
        assert url in error
        assert "writes fail until it is back" in error
        assert "reads continue" in error
        assert set(r.json()) == {"error"}
        assert next_data(events, keep_alives=True)[0] == "keep-alive"  # the stream goes on
        # the primary comes back (same home, same port): writes through the replica work again
        launch(tmp_path / "p", "--port", str(port))
        r = httpx.put(replica.url + "/room/c.json", json=3, headers=admin)
        assert r.status_code == 200, r.text
        assert httpx.get(replica.url + "/room/c.json", headers=admin).json() == 3
        assert next_data(events) == ("put", {"path": "/c", "data": 3})


def test_forwarded_answers_equal_the_primarys_own(launch: Any, tmp_path: Path) -> None:
    """The same generated requests, to one primary directly and to another through its
    replica, get the same statuses and bodies."""
    direct = launch(tmp_path / "d")
    _primary, replica = pair(launch, tmp_path)
    admin = bearer(direct.signer.issue("ops", admin=True))
    assert (
        httpx.put(direct.url + "/.settings/rules.json", json=RULES, headers=admin).status_code
        == 200
    )
    ann, bob = direct.signer.issue("ann"), direct.signer.issue("bob")
    rng = random.Random(20261123)
    paths = ["/open/a", "/open/a/b", "/num/n", "/users/ann", "/users/bob", "/open/bad$key", "/"]
    bodies: list[Callable[[], bytes]] = [
        lambda: json.dumps(
            rng.choice([1, "s", None, True, {"k": [1, 2]}, {"x": {"y": 1}}])
        ).encode(),
        lambda: b"{not json",
        lambda: b"",
        lambda: json.dumps({"b": rng.randint(0, 9)}).encode(),
    ]
    tokens = [None, ann, bob, direct.signer.issue("ops", admin=True)]
    for _ in range(60):
        method = rng.choice(["PUT", "PATCH", "POST", "DELETE", "GET"])
        path = rng.choice(paths) + ".json"
        query = rng.choice(["", "?print=silent", "?writeSizeLimit=tiny", "?writeSizeLimit=huge"])
        headers = {"Content-Type": "application/json"}
        token = rng.choice(tokens)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if rng.random() < 0.2:
            headers["X-Firebase-ETag"] = "true"
        if rng.random() < 0.1:
            headers["if-match"] = "stale"
        body = b"" if method in ("GET", "DELETE") else rng.choice(bodies)()
        answers = [
            httpx.request(method, srv.url + path + query, content=body, headers=headers)
            for srv in (direct, replica)
        ]
        want, got = answers
        described = f"{method} {path}{query} {headers} {body[:40]!r}"
        assert got.status_code == want.status_code, described
        if method == "POST" and want.status_code == 200:  # push ids differ; their shape not
            assert set(got.json()) == set(want.json()) == {"name"}, described
            continue
        assert got.content == want.content, described
        assert got.headers.get("etag") == want.headers.get("etag"), described
    whole = [httpx.get(s.url + "/.json", headers=admin).json() for s in (direct, replica)]
    assert without_push_ids(whole[0]) == without_push_ids(whole[1])


def without_push_ids(value: Any) -> Any:
    """``value`` with the children under push ids (which differ per server) listed by value."""
    if not isinstance(value, dict):
        return value
    pushed = sorted(json.dumps(v, sort_keys=True) for k, v in value.items() if k.startswith("-"))
    kept = {k: without_push_ids(v) for k, v in value.items() if not k.startswith("-")}
    return {**kept, "<pushed>": pushed} if pushed else kept


def test_a_replicas_store_refuses_local_writes_and_reserves_in_memory() -> None:
    with Store(memory=True) as store:
        store.set("/a", 1)
        status = replication_status(store)
        assert status["role"] == "primary"
        assert status["seq"] == 1
        assert status["primary"] is None
        store.replica_of = "http://127.0.0.1:1"
        seq = store.last_seq()
        with pytest.raises(ReplicaWriteError, match="DB_WRITER"):
            store.set("/a", 2)
        with pytest.raises(ReplicaWriteError):
            store.update("/", {"b": 1})
        store.reserve("jobs", {".read": False, ".write": False})
        assert store.reserved == ["jobs"]
        assert store.last_seq() == seq
        assert store.get("/a") == 1


def test_the_plugins_forwarding_writer_writes_on_the_primary_and_reads_back_here(
    launch: Any, tmp_path: Path
) -> None:
    from elkyn.forward import follow
    from elkyn.plugin_writers import ForwardingWriter
    from elkyn.server import ElkynApp
    from elkyn.settings import elkyn_settings

    from .conftest import SECRET

    primary = launch(tmp_path / "p")
    settings = elkyn_settings(secret=SECRET, home=tmp_path / "r", memory=True)
    with Store(memory=True) as store:
        app = ElkynApp(settings, store)
        follower = follow(app, primary.url, settings)
        writer = ForwardingWriter(follower, follower.token_fn, settings)
        try:
            assert writer.role == "replica"
            writer.set("/jobs/j1", {"state": "running"})
            writer.update("/jobs/j1", {"state": "done"})
            key = writer.push("/log", "x")
            assert store.get("/jobs/j1") == {"state": "done"}  # applied here before returning
            assert store.get(f"/log/{key}") == "x"
            writer.delete("/log")
            assert store.get("/log") is None
            admin = bearer(primary.signer.issue("ops", admin=True))
            assert httpx.get(primary.url + "/jobs.json", headers=admin).json() == {
                "j1": {"state": "done"}
            }
            # ``get`` reads at the primary: a value this replica may not have yet
            r = httpx.put(primary.url + "/jobs/j2.json", json={"state": "ok"}, headers=admin)
            assert r.status_code == 200, r.text
            assert writer.get("/jobs/j2") == {"state": "ok"}
            assert writer.get("/jobs/none") is None
            status = replication_status(store, follower)
            assert status["role"] == "replica"
            assert status["primary"] == primary.url
        finally:
            writer.close()
            follower.close()
