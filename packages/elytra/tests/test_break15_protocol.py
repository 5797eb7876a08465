"""Break-15: protocol abuse on a real WebSocket (uvicorn on 127.0.0.1, the worker routes).

Before: JSON nested deeper than Python's recursion limit and an ``error`` whose ``attempt`` is
not an integer raised out of the handler (an "Exception in ASGI application" traceback in the
platform's error log per message, close 1011) instead of the documented 1008; and a text frame
could be as large as the server's WebSocket limit (16 MiB): its JSON was parsed on the event
loop, so one worker sending large heartbeats stalled every route of the gateway for seconds.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from elytra.browser import WorkerHub
from elytra.browser.protocol import MAX_TEXT_BYTES
from platform_core.auth import LEEWAY_SECONDS

from .test_browser import SIGNER, _worker_token, serving

DEEP = "[" * 200_000 + "]" * 200_000


def _drain(conn: ClientConnection) -> None:
    while True:
        conn.recv(timeout=20)


def _closed_with(conn: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        _drain(conn)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_deep_json_and_large_text_frames_close_1008(tmp_path: Path) -> None:
    hub = WorkerHub()
    with serving(hub, tmp_path) as url:
        ws_url = url.replace("http", "ws") + f"/ws?auth={_worker_token()}"
        with ws_connect(ws_url) as conn:
            conn.send(DEEP)  # as the hello
            assert _closed_with(conn)[0] == 1008
        with ws_connect(ws_url) as conn:
            conn.send('{"type": "hello"}')
            conn.recv(timeout=20)
            conn.send(DEEP)
            assert _closed_with(conn)[0] == 1008
        with ws_connect(ws_url, max_size=None) as conn:
            conn.send('{"type": "hello"}')
            conn.recv(timeout=20)
            pad = "x" * MAX_TEXT_BYTES
            conn.send(json.dumps({"type": "heartbeat", "pad": pad}))
            code, reason = _closed_with(conn)
            assert code == 1008
            assert "too large" in reason


@pytest.mark.parametrize("attempt", ['"abc"', "[1]", "1e400", "null"])
def test_an_error_with_a_bad_attempt_is_stale_not_a_crash(tmp_path: Path, attempt: str) -> None:
    hub = WorkerHub()
    with serving(hub, tmp_path) as url:
        ws_url = url.replace("http", "ws") + f"/ws?auth={_worker_token()}"
        with ws_connect(ws_url) as conn:
            conn.send('{"type": "hello"}')
            conn.recv(timeout=20)
            conn.send('{"type": "error", "task_id": "t", "attempt": ' + attempt + "}")
            # still served: a result for a task it does not hold is answered "rejected"
            conn.send('{"type": "result", "task_id": "t", "attempt": 1, "bytes": 1}')
            conn.send(b"x")
            reply = json.loads(conn.recv(timeout=20))
            assert reply["type"] == "rejected"


def _beat(conn: ClientConnection, seconds: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        conn.send('{"type": "heartbeat"}')
        with contextlib.suppress(TimeoutError):
            conn.recv(timeout=0.5)


def test_a_connection_ends_when_its_worker_token_expires(tmp_path: Path) -> None:
    """A token is checked at the handshake only: a socket opened just before the token expired
    stayed open for ever (getting tasks, sending results). It now closes 1008 at the token's
    expiry (plus the same leeway the check allows)."""
    hub = WorkerHub(heartbeat_seconds=0.5)
    token = SIGNER.worker_token("tab", ttl_seconds=1)
    with serving(hub, tmp_path) as url:
        ws_url = url.replace("http", "ws") + f"/ws?auth={token}"
        with ws_connect(ws_url) as conn:
            conn.send('{"type": "hello"}')
            conn.recv(timeout=20)
            with pytest.raises(ConnectionClosed) as closed:
                _beat(conn, LEEWAY_SECONDS + 30)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            assert "expired" in closed.value.rcvd.reason
        assert not hub.workers()
