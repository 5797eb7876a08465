"""HTTP helpers for tests against a real ``lake node``: signed calls, and a one-part upload
started and finished through the upload protocol."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx

from platform_core.auth import TokenSigner

from .conftest import SECRET

PREFIX = "/api/lake"
ALICE = TokenSigner(SECRET).issue("alice")
BOB = TokenSigner(SECRET).issue("bob")


def call(url: str, tok: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {**kw.pop("headers", {}), "authorization": f"Bearer {tok}"}
    return httpx.request(method, url + PREFIX + path, headers=headers, timeout=30, **kw)


def start_upload(url: str, tok: str, name: str, data: bytes, **extra: Any) -> str:
    r = call(
        url,
        tok,
        "POST",
        "/uploads",
        json={"name": name, "size": len(data), "filename": "x.csv", **extra},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def finish_upload(url: str, tok: str, upload_id: str, data: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    r = call(
        url,
        tok,
        "PUT",
        f"/uploads/{upload_id}/parts/0",
        content=data,
        headers={"x-content-sha256": sha},
    )
    assert r.status_code == 200, r.text
    r = call(url, tok, "POST", f"/uploads/{upload_id}/complete")
    if r.status_code != 202:
        return {"state": "refused", "status": r.status_code}
    deadline = time.monotonic() + 30
    while True:
        state: dict[str, Any] = call(url, tok, "GET", f"/uploads/{upload_id}").json()
        if state["state"] not in ("open", "converting"):
            return state
        assert time.monotonic() < deadline
        time.sleep(0.05)
