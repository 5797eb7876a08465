"""Open SSE streams are bounded per caller and in total (each pins a queue of events)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

SSE = {"accept": "text/event-stream"}


LINES: list[Iterator[str]] = []
"""Open streams' line iterators: dropping one closes its response (and the stream)."""


def _open(stack: ExitStack, client: httpx.Client, path: str) -> httpx.Response:
    r = stack.enter_context(client.stream("GET", path, headers=SSE))
    if r.status_code == 200:
        lines = r.iter_lines()
        next(lines)  # the first event: the stream is registered on the server
        LINES.append(lines)
    else:
        r.read()
    return r


def test_each_user_and_the_server_hold_a_bounded_number_of_streams(
    launch: Any, tmp_path: Path
) -> None:
    srv = launch(tmp_path / "h", ELKYN_MAX_STREAMS_PER_USER="3", ELKYN_MAX_STREAMS="5")
    admin = {"authorization": f"Bearer {srv.signer.issue('ops', admin=True)}"}
    with httpx.Client(base_url=srv.url, headers=admin, timeout=30) as c:
        rules = {"rules": {".read": "auth != null", ".write": False}}
        assert c.put("/.settings/rules.json", json=rules).status_code == 200

    def user(uid: str) -> httpx.Client:
        tok = srv.signer.issue(uid)
        return httpx.Client(
            base_url=srv.url, headers={"authorization": f"Bearer {tok}"}, timeout=30
        )

    with user("alice") as alice, user("bob") as bob:
        with ExitStack() as held:
            opened = [_open(held, alice, f"/a/{i}.json") for i in range(3)]
            assert [r.status_code for r in opened] == [200, 200, 200]
            with ExitStack() as extra:
                refused = _open(extra, alice, "/a/more.json")
                assert refused.status_code == 429, refused.text
                assert "ELKYN_MAX_STREAMS_PER_USER" in refused.json()["error"]
                # another user is not held back by alice's streams, up to the server's total
                assert _open(extra, bob, "/b/0.json").status_code == 200
                assert _open(extra, bob, "/b/1.json").status_code == 200
                full = _open(extra, bob, "/b/2.json")
                assert full.status_code == 429
                assert "ELKYN_MAX_STREAMS" in full.json()["error"]
                # plain reads are not streams: never refused by these limits
                assert bob.get("/b.json").status_code == 200
        # closed streams give their places back (the server sees the disconnect)
        deadline = time.monotonic() + 10
        while True:
            with ExitStack() as again:
                got = [_open(again, alice, f"/a/{i}.json").status_code for i in range(3)]
            if got == [200, 200, 200] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == [200, 200, 200]
    LINES.clear()
