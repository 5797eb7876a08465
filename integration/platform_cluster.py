"""Several `platform up` processes on 127.0.0.1 made one platform with `--join`.

Each has its own home; all share one secret. The first is started alone, the others join it
(through its gateway's address). Gossip, suspicion and replication run fast so tests wait
seconds, not minutes; chunks and tasks are small so a small dataset spreads over every node.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from servers import command, launch

from platform_core.auth import TokenSigner
from platform_core.testing import ServerProcess, free_port

__all__ = [
    "COMPACT",
    "FAST",
    "HELD_BREAK_TEST",
    "ORACLE",
    "SECRET",
    "Cluster",
    "elkyn_status",
    "exports_hold",
    "join",
    "pipeline",
    "replication_status_once_following",
    "run_async",
    "start_cluster",
    "wait_for",
    "write_in_newer_term",
    "write_ok",
]

T = TypeVar("T")

SECRET = "cluster-test-secret-" + "k" * 24
FAST = {
    "PLATFORM_SECRET": SECRET,
    "PLATFORM_MEMORY_HEADROOM": "0",
    "LAKE_CHUNK_BYTES": str(96 * 1024),
    "LAKE_GOSSIP_INTERVAL_SECONDS": "0.2",
    "LAKE_PING_TIMEOUT_SECONDS": "0.4",
    "LAKE_SUSPECT_TIMEOUT_SECONDS": "3",
    "LAKE_REPLICATE_INTERVAL_SECONDS": "0.5",
    "ELYTRA_WORKERS": "1",
    "ELYTRA_TASK_BYTES": str(96 * 1024),
}


STEPS = [
    {"filter": "amount > 100"},
    {"group_by": ["grp"], "agg": ["count(*) AS n", "max(amount) AS top", "min(id) AS first"]},
]
"""The cluster tests' job: a filter and a group-by, so each chunk is a task and the driver
merges partial aggregates."""
ORACLE = (
    "SELECT grp, count(*) AS n, max(amount) AS top, min(id) AS first FROM t "
    "WHERE amount > 100 GROUP BY grp"
)
"""The same job in DuckDB's SQL over a table ``t``."""


def pipeline(dataset: str) -> dict[str, Any]:
    """The cluster tests' job over ``dataset``, as the jobs API takes it."""
    return {"source": {"dataset": dataset}, "steps": STEPS}


@dataclass
class Cluster:
    """The platforms (the first one started alone) and tokens signed with their secret."""

    nodes: list[ServerProcess]
    homes: list[Path]
    signer: TokenSigner
    verify: ssl.SSLContext | bool = True
    """The CA a client checks these platforms with (``PLATFORM_TLS_CA``), when they serve TLS."""

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.signer.issue('admin', admin=True)}"}

    def user(self, sub: str = "alice") -> dict[str, str]:
        return {"authorization": f"Bearer {self.signer.issue(sub)}"}

    def cluster_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.signer.cluster_token('test')}"}

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.proc.poll() is None:
                node.stop()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` in a thread of its own: a test may run where a loop is already
    running in this thread (Playwright's sync API leaves one behind)."""
    with ThreadPoolExecutor(1, thread_name_prefix="test-loop") as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """``check()``'s first truthy answer; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


COMPACT = {"ELKYN_ELECTION_COMPACT_SECONDS": "1"}
"""Each platform's election compacts its Raft log every second (its record then lives in
``election.dump``, not in the journal's entries)."""


def write_ok(url: str, key: str, value: int, cluster: Cluster, timeout: float = 8.0) -> bool:
    """Whether a PUT of ``value`` at ``key`` through the platform at ``url`` was acknowledged
    (200); False on any other answer or none (the platform is down or restarting)."""
    try:
        r = httpx.put(f"{url}/db/{key}.json", json=value, headers=cluster.admin(), timeout=timeout)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def exports_hold(cluster: Cluster, want: dict[str, Any]) -> bool:
    """Whether every platform's whole Elkyn export holds every key of ``want`` with its value
    (the platforms as their own oracle after kills and restarts)."""
    trees = [
        httpx.get(f"{u}/db/.json", headers=cluster.admin(), timeout=30).json() for u in cluster.urls
    ]
    return all({k: t.get(k) for k in want} == want for t in trees)


def elkyn_status(url: str, cluster: Cluster) -> dict[str, Any]:
    """The Elkyn part of ``GET /api/platform/status`` at ``url``: role, term, leader and the
    election's state (members, quorum)."""
    report = httpx.get(f"{url}/api/platform/status", headers=cluster.admin(), timeout=30).json()
    elkyn: dict[str, Any] = report["self"]["plugins"]["elkyn"]
    return elkyn


HELD_BREAK_TEST = pytest.mark.skipif(
    os.environ.get("PLATFORM_TESTS_LONG") != "1", reason="a held break test: nox -s chaos"
)
"""A break test that found nothing to fix: `nox -s chaos` runs it, the default run does not."""


def replication_status_once_following(url: str, cluster: Cluster) -> dict[str, Any]:
    """``/db/.replication/status`` of the (re)started platform at ``url`` once it follows the
    elected primary: for a moment after `platform up` prints its URL its Elkyn is still
    fenced, waiting for its Raft node to sync (seen under CI load)."""

    def status() -> dict[str, Any] | None:
        r = httpx.get(f"{url}/db/.replication/status", headers=cluster.admin(), timeout=10)
        st: dict[str, Any] = r.json()
        return st if st.get("role") == "replica" else None

    found: dict[str, Any] = wait_for(status, f"{url} to follow the elected primary", 30)
    return found


def write_in_newer_term(
    url: str, path: str, value: Any, cluster: Cluster, above: int = 1, timeout: float = 30
) -> None:
    """Write ``value`` at ``/db/{path}.json`` through ``url`` until a primary of a term above
    ``above`` acknowledges it (a failover, or writes resuming); AssertionError after
    ``timeout``."""

    def write() -> bool:
        r = httpx.put(f"{url}/db/{path}.json", json=value, headers=cluster.admin(), timeout=8)
        return r.status_code == 200 and int(r.headers["x-elkyn-term"]) > above

    wait_for(write, f"a write acknowledged by a primary of a term above {above}", timeout)


def join(base: Path, name: str, through: str, env: dict[str, str] | None = None) -> ServerProcess:
    """Start a platform in ``base/name`` joining the one at ``through`` (its URL), on a port
    below the ephemeral range (``free_port``): tests restart a platform on its port, which a
    port-0 pick would share with every process's outgoing connections."""
    address = through.split("//", 1)[1]
    home = base / name / "home"
    port = str(free_port())
    return launch(
        [str(command("platform")), "up", "--port", port, "--home", str(home), "--join", address],
        base / name,
        env={**FAST, **(env or {})},
    )


def start_cluster(base: Path, n: int = 3, env: dict[str, str] | None = None) -> Cluster:
    """``n`` platforms, the others joined to the first; returns once each sees all ``n``."""
    first_home = base / "p0" / "home"
    port = str(free_port())  # kept over restarts: see join()
    nodes = [
        launch(
            [str(command("platform")), "up", "--port", port, "--home", str(first_home)],
            base / "p0",
            env={**FAST, **(env or {})},
        )
    ]
    ca = (env or {}).get("PLATFORM_TLS_CA")
    trust = ssl.create_default_context(cafile=ca) if ca else True
    cluster = Cluster(nodes, [first_home], TokenSigner(SECRET), trust)
    try:
        for i in range(1, n):
            nodes.append(join(base, f"p{i}", nodes[0].url, env))
            cluster.homes.append(base / f"p{i}" / "home")
        for url in cluster.urls:
            wait_for(lambda url=url: members_alive(url, cluster) == n, f"{n} members at {url}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def members_alive(url: str, cluster: Cluster) -> int:
    r = httpx.get(
        f"{url}/api/lake/nodes", headers=cluster.admin(), timeout=10, verify=cluster.verify
    )
    return sum(1 for m in r.json()["members"] if m["state"] == "alive")


def user_cli(home: Path, *args: str, stdin: str = "") -> None:
    """``platform user ARGS --home HOME`` as an operator runs it (no PLATFORM_* of the test
    process); fails the test with its stderr unless it exits 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    done = subprocess.run(
        [str(command("platform")), "user", *args, "--home", str(home)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def status_cli(url: str, token: str, *args: str, timeout: float = 120) -> str:
    """``platform status --url URL --token TOKEN [args]`` as a user runs it (no ``PLATFORM_*``
    of this process), asserted to succeed; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    done = subprocess.run(
        [str(command("platform")), "status", "--url", url, "--token", token, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
