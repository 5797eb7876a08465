"""The lake's live state in Elkyn, as a browser sees it: a real `platform up`, a dataset
upload appearing under /db/datasets and its delete removing it, a second `lake node --join`
appearing under /db/nodes as alive and, after kill -9, becoming suspect then dead — each
observed over Elkyn's SSE stream within a bounded time. The rules: any signed-in user reads,
no user writes (the platform writes as the admin)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from live_tree import LiveTree
from servers import Server, command, launch

from lake import Client
from lake.testing import start_node, stop_node
from platform_core import escape_key
from platform_core.auth import TokenSigner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    run_dir = tmp_path_factory.mktemp("live")
    home = run_dir / "home"
    server = launch([str(command("platform")), "up", "--port", "0", "--home", str(home)], run_dir)
    yield server, home
    server.stop()


def _token(server: Server) -> str:
    r = httpx.post(f"{server.url}/api/login", json={}, timeout=30)
    r.raise_for_status()
    return str(r.json()["token"])


def test_datasets_appear_and_go_within_a_second_with_the_list_fields_and_replicas(
    platform: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = platform
    token = _token(server)
    csv = tmp_path / "live_sales.csv"
    duckdb.sql(f"COPY (SELECT i AS id, i % 5 AS g FROM range(1000) t(i)) TO '{csv}' (HEADER)")
    auth = {"authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=server.url, headers=auth, timeout=60) as c,
        LiveTree(server.url, "/datasets", token) as tree,
    ):
        tree.wait_for(lambda v: tree.events >= 1, 5, "the stream's first event")
        with Client(server.url, token) as lake:
            assert lake.upload(csv, "live_sales")["state"] == "committed"
        listed = {d["name"]: d for d in c.get("/api/lake/datasets").json()}["live_sales"]
        t0 = time.monotonic()
        seen = tree.wait_for(lambda v: v["live_sales"], 5, "live_sales under /datasets")
        assert time.monotonic() - t0 < 1.5
        for key in ("name", "version", "rows", "bytes", "chunks", "origin", "created"):
            assert seen[key] == listed[key], key
        assert [col["name"] for col in seen["columns"]] == ["id", "g"]
        assert seen["rows"] == 1000
        tree.wait_for(lambda v: v["live_sales"]["replicas"] == 1, 5, "one replica of each chunk")
        assert seen["under_replicated"] == 0

        c.delete("/api/lake/datasets/live_sales").raise_for_status()
        t0 = time.monotonic()
        tree.wait_for(lambda v: not v or "live_sales" not in v, 5, "live_sales gone")
        assert time.monotonic() - t0 < 1.5


def test_the_live_subtrees_are_readable_by_users_and_writable_by_nobody(
    platform: tuple[Server, Path],
) -> None:
    server, home = platform
    admin = {"authorization": f"Bearer {_token(server)}"}
    user = TokenSigner((home / "secret").read_bytes().strip().decode()).issue("ann")
    for key in ("nodes", "cluster", "datasets"):
        r = httpx.get(f"{server.url}/db/{key}.json", headers={"authorization": f"Bearer {user}"})
        assert r.status_code == 200, r.text
        assert httpx.get(f"{server.url}/db/{key}.json").status_code in (401, 403)
        w = httpx.put(
            f"{server.url}/db/{key}/x.json", json=1, headers={"authorization": f"Bearer {user}"}
        )
        assert w.status_code in (401, 403), w.text
    cluster = httpx.get(f"{server.url}/db/cluster.json", headers=admin).json()
    assert cluster["replication_factor"] == 1


def test_a_joined_node_is_alive_then_suspect_then_dead_after_kill_9(
    platform: tuple[Server, Path], tmp_path: Path
) -> None:
    server, home = platform
    token = _token(server)
    other_home = tmp_path / "other"
    other_home.mkdir()
    shutil.copy2(home / "secret", other_home / "secret")
    addr = server.url.removeprefix("http://")
    with LiveTree(server.url, "/nodes", token) as tree:
        mine = tree.wait_for(lambda v: list(v), 5, "the platform's own node")
        assert len(mine) == 1
        assert tree.value[mine[0]]["state"] == "alive"
        node = start_node(other_home, "--join", addr, timeout=120)
        try:
            key = escape_key(node.node_id)
            got = tree.wait_for(
                lambda v: v[key]["state"] == "alive" and v[key], 15, "the joined node alive"
            )
            assert got["id"] == node.node_id
            assert got["flight"] == node.flight
            assert got["incarnation"] > 0
            node.proc.kill()  # kill -9
            node.proc.wait()
            t0 = time.monotonic()
            tree.wait_for(lambda v: v[key]["state"] in ("suspect", "dead"), 10, "suspect")
            tree.wait_for(lambda v: v[key]["state"] == "dead", 15, "dead")
            # suspect_timeout (5 s) plus a gossip round or two
            assert time.monotonic() - t0 < 20
            assert tree.value[mine[0]]["state"] == "alive"
        finally:
            stop_node(node)
