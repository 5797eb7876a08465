"""A stream that never reads keeps the server's memory bounded in bytes (issue 11, item 7).

RSS is read from outside, from ``/proc/<pid>/status``: ``RssAnon`` (heap), not the LMDB
map's file pages, which the page cache owns.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx


def _rss_anon_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc status")


def _stalled_stream(url: str, path: str, auth: str) -> socket.socket:
    """Open an SSE stream with a tiny receive buffer and never read it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: {auth}\r\n\r\n".encode()
    )
    return sock


def test_a_never_read_stream_is_capped_in_bytes_and_resumes(launch: Any, tmp_path: Any) -> None:
    srv = launch(tmp_path / "h", ELKYN_MAP_SIZE=str(2 << 30), ELKYN_MAX_PENDING_BYTES=str(4 << 20))
    auth = f"Bearer {srv.signer.issue('ops', admin=True)}"
    pid = srv.process.proc.pid
    blob = "x" * (1 << 20)
    with httpx.Client(base_url=srv.url, headers={"Authorization": auth}, timeout=30) as c:
        # the stream's first resumable id: read the opening of a normal stream
        sock = _stalled_stream(srv.url, "/big.json", auth)
        time.sleep(0.3)
        before = _rss_anon_mib(pid)
        peak = before
        for i in range(200):  # 200 MiB of events for a client that reads nothing
            assert c.put(f"/big/{i % 4}.json", json=blob).status_code == 200
            if i % 10 == 0:
                peak = max(peak, _rss_anon_mib(pid))
        peak = max(peak, _rss_anon_mib(pid))
        # the server ended the stream instead of keeping 200 MiB for it
        assert peak - before < 80, (before, peak)
        sock.settimeout(20)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed without ending the response"
            data += chunk
        sock.close()
        ids = [ln[4:] for ln in data.decode().split("\n") if ln.startswith("id: ")]
        assert ids, "the ended stream carried no resumable id"
        assert data.count(b"event: put") < 200
        # the client resumes with Last-Event-ID and gets what it missed, or a fresh snapshot
        with c.stream(
            "GET", "/big.json", headers={"Accept": "text/event-stream", "Last-Event-ID": ids[-1]}
        ) as resp:
            assert resp.status_code == 200
            got = b""
            for chunk in resp.iter_bytes():
                got += chunk
                if b"\n\n" in got:
                    break
            assert got.startswith(b"id: ") or got.startswith(b"event: put")
        assert c.get("/big/3.json").json() == blob


def test_an_async_watcher_is_stopped_by_bytes_before_events() -> None:
    import asyncio

    from elkyn import ElkynError, Store

    async def main() -> tuple[int, str]:
        with Store(memory=True, max_pending_events=1000, max_pending_bytes=64 << 10) as db:
            stream = db.watch("/w")
            await anext(stream)
            for i in range(20):  # 20 changes of 16 KiB: far under 1000 events, over 64 KiB
                await db.aset("/w/n", f"{i:05d}" + "x" * (16 << 10))
            await asyncio.sleep(0.2)
            got = 0
            try:
                async for _ in stream:
                    got += 1
            except ElkynError as exc:
                return got, str(exc)
            return got, "no error"

    got, message = asyncio.run(main())
    assert "65536 bytes behind" in message
    assert 0 < got < 20
