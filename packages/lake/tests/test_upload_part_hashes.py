"""An upload's status names the SHA-256 of each part it holds, so a client resuming
after a reload can check that the file it was given again is the same file in every part it
will not send (the web UI matched only the first part: a file that differs later was mixed)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from lake.testing import NodeProcess, start_node, stop_node

from .conftest import SECRET


@pytest.fixture(scope="module")
def node_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    proc = start_node(
        tmp_path_factory.mktemp("upload-hashes"),
        env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0"},
    )
    yield proc
    stop_node(proc)


def test_the_status_names_each_received_parts_sha256(node_proc: NodeProcess, token: str) -> None:
    part = 1024
    data = b"id,v\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(800))
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    assert len(parts) >= 4
    with httpx.Client(
        base_url=node_proc.url + "/api/lake", headers={"authorization": f"Bearer {token}"}
    ) as c:
        started = c.post(
            "/uploads",
            json={"name": "hashes", "size": len(data), "part_size": part, "format": "csv"},
        )
        assert started.status_code == 201, started.text
        uid = started.json()["id"]
        assert started.json()["received_sha256"] == []
        for n in (2, 0):
            sha = hashlib.sha256(parts[n]).hexdigest()
            r = c.put(
                f"/uploads/{uid}/parts/{n}", content=parts[n], headers={"x-content-sha256": sha}
            )
            assert r.status_code == 200, r.text
        status = c.get(f"/uploads/{uid}").json()
        assert status["received"] == [0, 2]
        assert status["received_sha256"] == [
            hashlib.sha256(parts[0]).hexdigest(),
            hashlib.sha256(parts[2]).hexdigest(),
        ]
        listed = [u for u in c.get("/uploads").json() if u["id"] == uid]
        assert listed[0]["received_sha256"] == status["received_sha256"]
