"""Stalled SSE streams, many at once: what each one keeps in the server (issue 11 item 7).

A stream whose client stopped reading is blocked sending; it never takes the OVERFLOW marker
from its queue, so before the fix every such stream kept its whole backlog (up to
``ELKYN_MAX_PENDING_BYTES`` of events, different ones per stream) alive for as long as the
client held the connection: 25 stalled streams took the server from 58 to 385 MiB.
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
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: {auth}\r\n\r\n".encode()
    )
    return sock


def test_overflowed_stalled_streams_do_not_pin_their_backlogs(launch: Any, tmp_path: Any) -> None:
    srv = launch(tmp_path / "h", ELKYN_MAP_SIZE=str(2 << 30))  # default 8 MiB per stream
    auth = f"Bearer {srv.signer.issue('ops', admin=True)}"
    pid = srv.process.proc.pid
    value = {f"k{i}": "x" * 1000 for i in range(1000)}  # ~1 MiB
    socks = []
    with httpx.Client(base_url=srv.url, headers={"Authorization": auth}, timeout=60) as c:
        assert c.put("/warm.json", json=value).status_code == 200
        before = _rss_anon_mib(pid)
        for s in range(6):
            # each stream stalls on its own window of changes, 20 MiB: well past its 8 MiB bound
            # (the kernel's socket buffers take a few MiB before the server blocks)
            socks.append(_stalled_stream(srv.url, f"/big/{s}.json", auth))
            time.sleep(0.3)
            for _ in range(20):
                assert c.put(f"/big/{s}.json", json=value).status_code == 200
        time.sleep(0.5)
        grown = _rss_anon_mib(pid) - before
    for sock in socks:
        sock.close()
    # each overflowed stream may keep what it was sending (a few MiB here), not 8 MiB of backlog more
    assert grown < 6 * 6, f"6 stalled streams grew the server by {grown:.0f} MiB"
