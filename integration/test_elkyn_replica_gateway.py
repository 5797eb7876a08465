"""Two real `platform up` processes (separate homes, one secret): the second's Elkyn is a
replica of the first's (``ELKYN_REPLICA_OF``), takes writes by forwarding them, and reports
its role at ``/db/.replication/status``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from platform_core.auth import TokenSigner
from platform_core.testing import ServerProcess, launch

SECRET = "g" * 40


@pytest.fixture
def start_gateway() -> Iterator[object]:
    started: list[ServerProcess] = []

    def start(home: Path, **env: str) -> ServerProcess:
        command = Path(sys.executable).parent / "platform"
        clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PLATFORM_")}
        clean.update(
            {"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0", "ELYTRA_WORKERS": "1", **env}
        )
        argv = [str(command), "up", "--port", "0", "--home", str(home)]
        server = launch(argv, env=clean, timeout=90, cwd=home.parent)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.mark.slow
def test_a_gateway_replica_takes_writes_and_says_its_role(
    start_gateway: object, tmp_path: Path
) -> None:
    start = start_gateway
    assert callable(start)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start(tmp_path / "a" / "home")
    second = start(tmp_path / "b" / "home", ELKYN_REPLICA_OF=f"{first.url}/db")
    signer = TokenSigner(SECRET)
    admin = {"Authorization": f"Bearer {signer.issue('ops', admin=True)}"}
    cluster = {"Authorization": f"Bearer {signer.cluster_token('node')}"}
    user = {"Authorization": f"Bearer {signer.issue('ann')}"}

    r = httpx.put(f"{second.url}/db/notes/n1.json", json={"text": "hi"}, headers=admin)
    assert r.status_code == 200, r.text
    assert "x-elkyn-caught-up" not in r.headers
    for node in (second, first):  # read-your-writes on the replica, and the primary has it
        got = httpx.get(f"{node.url}/db/notes/n1.json", headers=admin)
        assert got.json() == {"text": "hi"}
    # the primary's rules decide: a user without a grant is refused through the replica too
    denied = httpx.put(f"{second.url}/db/notes/n2.json", json=1, headers=user)
    assert denied.status_code == 401
    assert httpx.get(f"{first.url}/db/notes/n2.json", headers=admin).json() is None

    status = httpx.get(f"{second.url}/db/.replication/status", headers=cluster).json()
    assert status["role"] == "replica"
    assert status["primary"] == f"{first.url}/db"
    assert status["seq"] >= 1
    assert status["primary_seq"] is not None
    primary = httpx.get(f"{first.url}/db/.replication/status", headers=admin).json()
    assert primary["role"] == "primary"
    assert primary["primary"] is None
    # the primary serves its log to cluster tokens only, without --replicate
    assert httpx.get(f"{first.url}/db/.replication/log?since=0", headers=cluster).status_code == 200
    assert httpx.get(f"{first.url}/db/.replication/log?since=0", headers=user).status_code == 401
    # the platform's reserved subtree (/jobs, elytra's) is reserved on the replica too
    rules = httpx.get(f"{second.url}/db/.settings/rules.json", headers=admin)
    assert "jobs" in rules.headers["x-elkyn-reserved"].split(",")
