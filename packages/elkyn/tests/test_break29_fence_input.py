"""``POST /.replication/fence`` from outside (issue 29, break test): only a cluster token may
fence, and only with a positive integer term; anything else is a clear 4xx that fences
nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from election_cluster import SECRET

from platform_core.auth import TokenSigner
from platform_core.testing import ServerProcess, free_port, launch


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """One server of a three-server election whose two peers never start (so none is named
    and nothing but this test fences it)."""
    port, raft = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    peers = [f"--peer=127.0.0.1:{raft}={url}"]
    peers += [f"--peer=127.0.0.1:{free_port()}=http://127.0.0.1:{free_port()}" for _ in range(2)]
    argv = [sys.executable, "-m", "elkyn", "serve", "--port", str(port)]
    argv += ["--election-port", str(raft), *peers]
    env = {"PLATFORM_SECRET": SECRET, "PLATFORM_HOME": str(tmp_path)}
    proc = launch(argv, env=env, url=url, timeout=30, stderr=tmp_path / "stderr.log")
    try:
        yield proc
    finally:
        proc.stop(10)


def fenced(server: ServerProcess, cluster: dict[str, str]) -> int:
    r = httpx.get(f"{server.url}/.replication/status", headers=cluster, timeout=5)
    r.raise_for_status()
    return int(r.json()["fenced"])


def test_fence_needs_a_cluster_token_and_a_positive_integer_term(server: ServerProcess) -> None:
    signer = TokenSigner(SECRET)
    cluster = {"Authorization": f"Bearer {signer.cluster_token('t', ttl_seconds=60)}"}
    stranger = TokenSigner("x" * 40).cluster_token("t", ttl_seconds=60)
    tokens = {
        "none": {},
        "another secret's cluster token": {"Authorization": f"Bearer {stranger}"},
        "an admin user's token": {"Authorization": f"Bearer {signer.issue('root', admin=True)}"},
        "garbage": {"Authorization": "Bearer abc.def.ghi"},
    }
    for what, headers in tokens.items():
        r = httpx.post(f"{server.url}/.replication/fence", json={"term": 5}, headers=headers)
        assert r.status_code in (401, 403), (what, r.status_code, r.text)
        assert "error" in r.json()
    bodies = [
        b'{"term": 0}',
        b'{"term": -3}',
        b'{"term": "7"}',
        b'{"term": 2.0}',
        b'{"term": true}',  # a JSON boolean is no term (Python's True == 1)
        b'{"term": false}',
        b'{"term": null}',
        b'{"term": [2]}',
        b"{}",
        b"[]",
        b"not json",
    ]
    for body in bodies:
        r = httpx.post(f"{server.url}/.replication/fence", content=body, headers=cluster)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert "term" in r.json()["error"], r.text
    r = httpx.post(f"{server.url}/.replication/fence", content=b"x" * 10_000, headers=cluster)
    assert r.status_code == 413, r.text
    assert fenced(server, cluster) == 0, "a refused fence request fenced the server"
    r = httpx.get(f"{server.url}/.replication/fence", headers=cluster)
    assert r.status_code in (400, 405), r.text
    r = httpx.post(f"{server.url}/.replication/fence", json={"term": 3}, headers=cluster)
    assert r.status_code == 200, r.text
    assert set(r.json()) >= {"seq", "database", "own_database", "term"}
    assert fenced(server, cluster) == 3
