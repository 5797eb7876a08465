"""Streaming conformance (Firebase's EventSource protocol) against a real `elkyn serve`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest


@dataclass
class SSE:
    event: str
    data: Any
    id: str | None


class Stream:
    """Reads SSE events from a streaming response on a background thread."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[SSE] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event, data, ident = "message", "", None
        try:
            for line in self.response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line == "":
                    with self.cond:
                        self.events.append(SSE(event, json.loads(data), ident))
                        self.cond.notify_all()
                    event, data, ident = "message", "", None
        except httpx.HTTPError:
            pass
        with self.cond:
            self.events.append(SSE("<closed>", None, None))
            self.cond.notify_all()

    def next(self, skip_keepalive: bool = True, timeout: float = 10) -> SSE:
        with self.cond:
            while True:
                while not self.events:
                    if not self.cond.wait(timeout):
                        raise AssertionError("no SSE event in time")
                ev = self.events.pop(0)
                if not (skip_keepalive and ev.event == "keep-alive"):
                    return ev


@contextmanager
def open_stream(
    client: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> Iterator[Stream]:
    with client.stream(
        "GET", path, headers={"Accept": "text/event-stream", **(headers or {})}, timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        yield Stream(response)


@pytest.fixture
def admin(server: Any) -> Iterator[httpx.Client]:
    with server.admin() as client:
        yield client
        client.put("/.settings/rules.json", json={"rules": {".read": False, ".write": False}})
        client.delete("/.json")


def test_snapshot_then_relative_put_and_patch(admin: httpx.Client) -> None:
    admin.put("/rooms.json", json={"a": {"topic": "x"}})
    with open_stream(admin, "/rooms.json") as s:
        first = s.next()
        assert (first.event, first.data) == ("put", {"path": "/", "data": {"a": {"topic": "x"}}})
        admin.put("/rooms/a/topic.json", json="y")
        ev = s.next()
        assert (ev.event, ev.data) == ("put", {"path": "/a/topic", "data": "y"})
        admin.patch("/rooms.json", json={"b/topic": "z", "a/n": [1, 2]})
        ev = s.next()
        assert (ev.event, ev.data) == (
            "patch",
            {"path": "/", "data": {"b/topic": "z", "a/n": [1, 2]}},
        )
        admin.put("/elsewhere.json", json=1)
        admin.put(".json", json={"rooms": {"c": 1}})  # a write above the streamed path
        ev = s.next()
        assert (ev.event, ev.data) == ("put", {"path": "/", "data": {"c": 1}})
        admin.delete("/rooms/c.json")
        ev = s.next()
        assert (ev.event, ev.data) == ("put", {"path": "/c", "data": None})


def test_keep_alive_and_watch_alias(admin: httpx.Client) -> None:
    admin.put("/w.json", json=1)
    with open_stream(admin, "/w/.watch") as s:
        assert s.next().data == {"path": "/", "data": 1}
        ev = s.next(skip_keepalive=False, timeout=5)  # ELKYN_KEEPALIVE_SECONDS=0.5
        assert (ev.event, ev.data) == ("keep-alive", None)


def test_last_event_id_resumes_from_the_log(admin: httpx.Client) -> None:
    admin.put("/r.json", json={"v": 0})
    with open_stream(admin, "/r.json") as s:
        s.next()
        admin.put("/r/v.json", json=1)
        ev = s.next()
        assert ev.id is not None
        last_id = ev.id
    admin.put("/r/v.json", json=2)
    admin.patch("/r.json", json={"w": 3})
    admin.put("/other.json", json=4)
    with open_stream(admin, "/r.json", {"Last-Event-ID": last_id}) as s:
        got = [s.next(), s.next()]
        assert [(e.event, e.data) for e in got] == [
            ("put", {"path": "/v", "data": 2}),
            ("patch", {"path": "/", "data": {"w": 3}}),
        ]
        admin.put("/r/v.json", json=5)
        assert s.next().data == {"path": "/v", "data": 5}
    with open_stream(admin, "/r.json", {"Last-Event-ID": "999999"}) as s:
        assert s.next().data == {"path": "/", "data": {"v": 5, "w": 3}}  # unknown id: snapshot


def test_denied_stream_is_refused_and_revoked_stream_cancelled(
    server: Any, admin: httpx.Client
) -> None:
    rules = {"rules": {"pub": {".read": "root.child('open').val() === true"}}}
    admin.put("/.settings/rules.json", json=rules)
    admin.put("/pub.json", json={"x": 1})
    with server.client(server.token("ann")) as ann:
        r = ann.get("/pub.json", headers={"Accept": "text/event-stream"})
        assert r.status_code == 401
        admin.put("/open.json", json=True)
        with open_stream(ann, "/pub.json") as s:
            assert s.next().data == {"path": "/", "data": {"x": 1}}
            admin.put("/pub/x.json", json=2)
            assert s.next().data == {"path": "/x", "data": 2}
            admin.put("/open.json", json=False)
            admin.put("/pub/x.json", json=3)
            ev = s.next()
            assert (ev.event, ev.data) == ("cancel", None)
            assert s.next().event == "<closed>"


def test_rules_change_cancels_an_idle_stream(server: Any, admin: httpx.Client) -> None:
    admin.put("/.settings/rules.json", json={"rules": {"q": {".read": True}}})
    with server.client() as anon, open_stream(anon, "/q.json") as s:
        assert s.next().data == {"path": "/", "data": None}
        admin.put("/.settings/rules.json", json={"rules": {}})
        ev = s.next()
        assert (ev.event, ev.data) == ("cancel", None)


def test_expired_token_gets_auth_revoked(server: Any, admin: httpx.Client) -> None:
    admin.put("/.settings/rules.json", json={"rules": {".read": "auth != null"}})
    with server.client(server.token("ann", ttl=2)) as ann, open_stream(ann, "/.json") as s:
        assert s.next().event == "put"
        ev = s.next(timeout=6)
        assert (ev.event, ev.data) == ("auth_revoked", "credential is no longer valid")
        assert s.next().event == "<closed>"


def test_a_stalled_stream_is_ended_not_buffered_forever(launch: Any, tmp_path: Any) -> None:
    import socket
    import time

    srv = launch(tmp_path / "h", "--memory", ELKYN_MAX_PENDING_EVENTS="20")
    admin = {"Authorization": f"Bearer {srv.signer.issue('ops', admin=True)}"}
    sock = socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1])))
    sock.sendall(
        b"GET /big.json HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
        + f"Authorization: {admin['Authorization']}\r\n\r\n".encode()
    )
    time.sleep(0.3)
    blob = "x" * 65536
    with httpx.Client(base_url=srv.url, headers=admin) as c:
        for i in range(300):  # ~20 MB of events for a client that reads nothing
            assert c.put(f"/big/{i % 5}.json", json=blob).status_code == 200
        sock.settimeout(20)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):  # read until the response's last chunk
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed without ending the response"
            data += chunk
        sock.close()
        assert len(data) < 300 * 65536  # ended early: not every event was kept for it
        assert data.count(b"event: put") < 300
        assert c.get("/health").status_code == 200
        assert c.get("/big/0.json").json() == blob


def test_async_watcher_that_stops_reading_is_ended() -> None:
    from elkyn import ElkynError, Store

    async def main() -> str:
        with Store(memory=True, max_pending_events=20) as db:
            stream = db.watch("/w")
            await anext(stream)
            for i in range(60):
                await db.aset("/w/n", i)
            await asyncio.sleep(0.2)
            try:
                async for _ in stream:
                    pass
            except ElkynError as exc:
                return str(exc)
            return "no error"

    import asyncio

    assert "fell 20 events or" in asyncio.run(main())


def test_streaming_a_query_is_refused(admin: httpx.Client) -> None:
    r = admin.get(
        "/rooms.json",
        params={"orderBy": '"$key"', "limitToFirst": "1"},
        headers={"Accept": "text/event-stream"},
    )
    assert r.status_code == 400
    assert "stream the location" in r.json()["error"]


def _resume_id(client: httpx.Client, path: str, write: Any) -> str:
    """The resume id a stream of ``path`` gives ``client`` for the change ``write()`` makes."""
    with open_stream(client, path) as s:
        s.next()
        write()
        ev = s.next()
        assert ev.id is not None
        return ev.id


def test_resume_ids_are_signed_per_caller_and_path(server: Any, admin: httpx.Client) -> None:
    admin.put("/.settings/rules.json", json={"rules": {".read": "auth != null"}})
    admin.put("/r.json", json={"v": 0})
    admin.put("/q.json", json={"v": 0})
    with server.client(server.token("alice", ttl=600)) as alice:
        last_id = _resume_id(alice, "/r.json", lambda: admin.put("/r/v.json", json=1))
    seq = int(last_id.split(".")[0])
    admin.put("/r/v.json", json=2)
    admin.put("/q/v.json", json=2)
    snapshot_r = {"path": "/", "data": {"v": 2}}
    replayed = ("put", {"path": "/v", "data": 2})
    # the same caller (a refreshed token: other expiry) on the same path resumes from the log
    with server.client(server.token("alice", ttl=900)) as alice2:
        with open_stream(alice2, "/r.json", {"Last-Event-ID": last_id}) as s:
            ev = s.next()
            assert (ev.event, ev.data) == replayed
        # the same id on another path, a bare sequence number, a forged MAC: a snapshot
        for path, resume in [
            ("/q.json", last_id),
            ("/r.json", str(seq)),
            ("/r.json", "0"),
            ("/r.json", f"{seq}.AAAAAAAAAAAAAAAAAAAAAAAA"),
            ("/r.json", f"{seq - 1}.{last_id.split('.')[1]}"),
        ]:
            with open_stream(alice2, path, {"Last-Event-ID": resume}) as s:
                ev = s.next()
                assert (ev.event, ev.data["path"]) == ("put", "/"), (path, resume)
    # another user, or alice with other claims, cannot use that id either
    for client in (server.client(server.token("bob")), server.client(server.token("alice", x=1))):
        with client, open_stream(client, "/r.json", {"Last-Event-ID": last_id}) as s:
            ev = s.next()
            assert (ev.event, ev.data) == ("put", snapshot_r)


def test_no_replay_when_read_rules_look_at_data(server: Any, admin: httpx.Client) -> None:
    """The reviewer's case: a message deleted before the reader was let in is never replayed."""
    member_rule = "auth != null && root.child('members/' + $r + '/' + auth.uid).exists()"
    admin.put("/.settings/rules.json", json={"rules": {"rooms": {"$r": {".read": member_rule}}}})
    admin.put("/members/r1/mallory.json", json=True)
    admin.put("/rooms/r1/hello.json", json="hi")
    with server.client(server.token("mallory")) as mallory:
        last_id = _resume_id(
            mallory, "/rooms/r1.json", lambda: admin.put("/rooms/r1/n.json", json=1)
        )
        admin.delete("/members/r1/mallory.json")  # out of the room ...
        admin.put("/rooms/r1/m1.json", json="layoffs on friday, do not share")
        admin.delete("/rooms/r1/m1.json")
        admin.put("/members/r1/mallory.json", json=True)  # ... and back in
        with open_stream(mallory, "/rooms/r1.json", {"Last-Event-ID": last_id}) as s:
            ev = s.next()
            assert (ev.event, ev.data) == ("put", {"path": "/", "data": {"hello": "hi", "n": 1}})
            admin.put("/rooms/r1/later.json", json=2)
            ev = s.next()
            assert (ev.event, ev.data) == ("put", {"path": "/later", "data": 2})


def test_no_replay_across_a_rules_change(server: Any, admin: httpx.Client) -> None:
    admin.put("/.settings/rules.json", json={"rules": {".read": "auth != null"}})
    admin.put("/r.json", json={"v": 0})
    with server.client(server.token("alice")) as alice:
        last_id = _resume_id(alice, "/r.json", lambda: admin.put("/r/v.json", json=1))
        admin.put("/.settings/rules.json", json={"rules": {".read": False}})
        admin.put("/r/secret.json", json="written while alice could not read")
        admin.put("/.settings/rules.json", json={"rules": {".read": "auth != null"}})
        with open_stream(alice, "/r.json", {"Last-Event-ID": last_id}) as s:
            ev = s.next()
            assert (ev.event, ev.data["path"]) == ("put", "/")
