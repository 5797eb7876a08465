"""Role bypasses tried from outside against a real node (issue 11 item 14)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx

from lake.testing import start_node, stop_node
from platform_core.auth import TokenSigner

from .conftest import SECRET

PREFIX = "/api/lake"
ALICE = TokenSigner(SECRET).issue("alice")
BOB = TokenSigner(SECRET).issue("bob")


def _call(url: str, tok: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {**kw.pop("headers", {}), "authorization": f"Bearer {tok}"}
    return httpx.request(method, url + PREFIX + path, headers=headers, timeout=30, **kw)


def _start(url: str, tok: str, name: str, data: bytes, **extra: Any) -> str:
    r = _call(
        url,
        tok,
        "POST",
        "/uploads",
        json={"name": name, "size": len(data), "filename": "x.csv", **extra},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _finish(url: str, tok: str, upload_id: str, data: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    r = _call(
        url,
        tok,
        "PUT",
        f"/uploads/{upload_id}/parts/0",
        content=data,
        headers={"x-content-sha256": sha},
    )
    assert r.status_code == 200, r.text
    r = _call(url, tok, "POST", f"/uploads/{upload_id}/complete")
    if r.status_code != 202:
        return {"state": "refused", "status": r.status_code}
    deadline = time.monotonic() + 30
    while True:
        state: dict[str, Any] = _call(url, tok, "GET", f"/uploads/{upload_id}").json()
        if state["state"] not in ("open", "converting"):
            return state
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_an_upload_started_before_the_dataset_existed_cannot_replace_it(tmp_path: Path) -> None:
    """Bob starts an upload of a name nobody uses yet; Alice then creates that dataset; Bob
    completes: the owner check ran only when Bob started, so his data replaced (or, with
    ``append``, extended) Alice's dataset although only she or an admin may add a version."""
    proc = start_node(tmp_path / "n", env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0"})
    try:
        url = proc.url
        mine = b"id,v\n1,alice\n2,alice\n"
        bobs = b"id,v\n9,bob\n"
        pending_replace = _start(url, BOB, "sales", bobs)
        pending_append = _start(url, BOB, "sales", bobs, append=True)
        alice_up = _start(url, ALICE, "sales", mine)
        assert _finish(url, ALICE, alice_up, mine)["state"] == "committed"
        _finish(url, BOB, pending_replace, bobs)
        _finish(url, BOB, pending_append, bobs)
        r = _call(url, ALICE, "POST", "/query", json={"sql": "SELECT id, v FROM sales ORDER BY id"})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[1, "alice"], [2, "alice"]]
        head = _call(url, ALICE, "GET", "/datasets/sales").json()
        assert head["owner"] == "alice"
    finally:
        stop_node(proc)
