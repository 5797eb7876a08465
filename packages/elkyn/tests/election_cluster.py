"""Test helper: N ``elkyn serve --election-port`` processes on 127.0.0.1 that elect a primary.

Each server has a fixed HTTP and Raft port (picked free at the start and kept over restarts,
since the peers name each other by address) and a durable LMDB directory of its own.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from platform_core.auth import TokenSigner
from platform_core.testing import ServerProcess, free_port, launch

SECRET = "e" * 40


@dataclass
class Member:
    """One server: its ports, directory and (while it runs) its process."""

    port: int
    raft: int
    home: Path
    proc: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ElectionCluster:
    members: list[Member]
    env: dict[str, str] = field(default_factory=dict)
    signer: TokenSigner = field(default_factory=lambda: TokenSigner(SECRET))

    def peers(self) -> list[str]:
        return [f"--peer=127.0.0.1:{m.raft}={m.url}" for m in self.members]

    def start(self, i: int) -> None:
        m = self.members[i]
        argv = [sys.executable, "-m", "elkyn", "serve", "--port", str(m.port)]
        argv += ["--log-level", "info", "--election-port", str(m.raft), *self.peers()]
        env = {"PLATFORM_SECRET": SECRET, "PLATFORM_HOME": str(m.home), **self.env}
        m.proc = launch(argv, env=env, url=m.url, timeout=30, stderr=m.home / "stderr.log")

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        m = self.members[i]
        assert m.proc is not None
        m.proc.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            m.proc.proc.wait()
            m.proc = None

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None:
                m.proc.proc.send_signal(signal.SIGCONT)
                m.proc.stop(10)
                m.proc = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signer.cluster_token('test', ttl_seconds=3600)}"}

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signer.issue('root', admin=True)}"}

    def status(self, i: int) -> dict[str, Any] | None:
        try:
            r = httpx.get(
                f"{self.members[i].url}/.replication/status", headers=self.headers(), timeout=2
            )
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def primary(self, among: list[int] | None = None) -> int | None:
        """The index of the serving primary of the highest term among ``among`` (None: none)."""
        best: tuple[int, int] | None = None
        for i in among if among is not None else range(len(self.members)):
            s = self.status(i)
            if s is not None and s.get("serving") and (best is None or s["term"] > best[0]):
                best = (s["term"], i)
        return None if best is None else best[1]

    def export(self, i: int) -> Any:
        r = httpx.get(f"{self.members[i].url}/.json", headers=self.admin(), timeout=30)
        r.raise_for_status()
        return r.json()


def start_cluster(tmp: Path, n: int = 3, **env: str) -> ElectionCluster:
    members = [Member(free_port(), free_port(), tmp / f"s{i}") for i in range(n)]
    for m in members:
        m.home.mkdir(parents=True)
    cluster = ElectionCluster(members, env=dict(env))
    for i in range(n):
        cluster.start(i)
    return cluster


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got is not None and got is not False:  # an index 0 is an answer
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
