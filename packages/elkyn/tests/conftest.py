"""Fixtures: an in-memory store, and `elkyn serve` as a real child process on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from elkyn import Store
from elkyn.testing import ServerProcess, start_server, stop_server
from platform_core.auth import TokenSigner

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helper modules (election_cluster)


@pytest.fixture
def memory_store() -> Iterator[Store]:
    with Store(memory=True) as db:
        yield db


SECRET = "s" * 40


@dataclass
class Server:
    """An `elkyn serve` child process on 127.0.0.1, with clients and tokens for it."""

    process: ServerProcess
    signer: TokenSigner

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def admin(self) -> httpx.Client:
        return self.client("owner")  # the emulator's admin credential (--dev)

    def token(self, uid: str, ttl: int = 3600, **claims: object) -> str:
        return self.signer.issue(uid, ttl_seconds=ttl, extra=claims)


def serve(home: Path, *args: str, **env: str) -> Server:
    env = {"PLATFORM_SECRET": SECRET, "ELKYN_KEEPALIVE_SECONDS": "0.5", **env}
    return Server(start_server(home, *args, env=env), TokenSigner(SECRET))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = serve(tmp_path_factory.mktemp("elkyn"), "--dev", "--memory")
    yield srv
    stop_server(srv.process)


@pytest.fixture
def launch() -> Iterator[Any]:
    """Start `elkyn serve` processes (``launch(home, *args, **env)``); all stopped at the end."""
    started: list[Server] = []

    def start(home: Path, *args: str, **env: str) -> Server:
        srv = serve(home, *args, **env)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if srv.process.proc.poll() is None:
            stop_server(srv.process)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    """Three ``elkyn serve`` with ``--election-port`` (``election_cluster.start_cluster``), a
    fresh set per test (the failover tests kill, pause and restart them); stopped at the end."""
    from election_cluster import start_cluster

    c = start_cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()
