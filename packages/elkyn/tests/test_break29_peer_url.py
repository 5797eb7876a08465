"""The URL a peer list gives a server is the one it answers to (issue 29, break test).

A server used to call itself ``http://<--host>:<port>`` whatever the list said: named by the
list's URL (``http://localhost:P``, or a machine's address while it binds ``0.0.0.0``) it did
not know itself and followed itself, and naming itself it wrote into the record a URL the
others were never told (``http://0.0.0.0:P`` reaches each follower's own machine)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from election_cluster import SECRET, wait_for

from platform_core.auth import TokenSigner
from platform_core.testing import ServerProcess, free_port, launch

pytestmark = pytest.mark.slow


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[tuple[str, ServerProcess]]]:
    """Two election servers on 127.0.0.1 that the peer list names ``http://localhost:P``."""
    ports = [(free_port(), free_port()) for _ in range(2)]
    peers = [f"--peer=127.0.0.1:{raft}=http://localhost:{port}" for port, raft in ports]
    started: list[tuple[str, ServerProcess]] = []
    try:
        for i, (port, raft) in enumerate(ports):
            home = tmp_path / f"s{i}"
            home.mkdir()
            argv = [sys.executable, "-m", "elkyn", "serve", "--port", str(port)]
            argv += ["--election-port", str(raft), *peers]
            env = {"PLATFORM_SECRET": SECRET, "PLATFORM_HOME": str(home)}
            url = f"http://127.0.0.1:{port}"
            proc = launch(argv, env=env, url=url, timeout=30, stderr=home / "stderr.log")
            started.append((f"http://localhost:{port}", proc))
        yield started
    finally:
        for _, proc in started:
            proc.stop(10)


def test_the_elected_primary_is_named_by_the_peer_lists_url(
    servers: list[tuple[str, ServerProcess]],
) -> None:
    signer = TokenSigner(SECRET)
    cluster = {"Authorization": f"Bearer {signer.cluster_token('t', ttl_seconds=600)}"}
    admin = {"Authorization": f"Bearer {signer.issue('root', admin=True)}"}
    listed = {name for name, _ in servers}

    def named() -> str | None:
        r = httpx.get(f"{servers[0][1].url}/.replication/status", headers=cluster, timeout=5)
        primary = r.json()["election"]["elected_primary"] if r.status_code == 200 else None
        return primary if isinstance(primary, str) else None

    primary = wait_for(named, "a primary named", timeout=30)
    assert primary in listed, f"the record names {primary}, which no peer list gives"
    serving = wait_for(
        lambda: next(
            (
                name
                for name, proc in servers
                if httpx.get(f"{proc.url}/.replication/status", headers=cluster).json()["serving"]
            ),
            None,
        ),
        "a serving primary",
    )
    assert serving == primary, "the server the record names is not the one that serves"
    for i, (_, proc) in enumerate(servers):
        r = httpx.put(f"{proc.url}/via/s{i}.json", json=i, headers=admin, timeout=15)
        assert r.status_code == 200, r.text
