"""The Cluster page: the platform's own lake node alive, replication health and the worker
pool; a second `lake node --join`ed to the platform appears alive and, after kill -9, turns
suspect then dead on the page without a reload (live over Elkyn's /nodes, no polling).

The second node gets the platform's secret (a copy of `<home>/secret`); the platform keeps
its default failure detection (gossip 1 s, suspect timeout 5 s), so the test's own time is
bounded by that and nothing is slowed for the other tests.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path

import duckdb
import httpx
import pytest
from playwright.sync_api import Page, expect
from ui_browser import UIPlatform

from lake import Client
from lake.testing import start_node, stop_node
from platform_core.auth import TokenSigner

SHOTS = Path(__file__).resolve().parents[2] / "apps" / "playground" / "docs"


def _rest_nodes(ui_platform: UIPlatform) -> dict[str, str]:
    with ui_platform.client() as c:
        return {m["id"]: m["state"] for m in c.get("/api/lake/nodes").json()["members"]}


def _row(page: Page, node_id: str):
    return page.locator(f'[data-testid="node-row"][data-node-id="{node_id}"]')


def test_the_platform_node_is_alive_with_replication_health_and_the_pool(
    page: Page, ui_platform: UIPlatform, tmp_path: Path
) -> None:
    csv = tmp_path / "cluster_page.csv"
    duckdb.sql(f"COPY (SELECT i AS id, i % 3 AS g FROM range(5000) t(i)) TO '{csv}' (HEADER)")
    name = f"cluster_page_{secrets.token_hex(4)}"
    with Client(ui_platform.url, ui_platform.token()) as lake:
        assert lake.upload(csv, name)["state"] == "committed"
    page.goto("/cluster/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cluster")
    with ui_platform.client() as c:
        report = c.get("/api/lake/nodes").json()
    for m in report["members"]:  # what the lake's REST says, the page shows
        if m["state"] != "alive":
            continue
        row = _row(page, m["id"])
        expect(row.get_by_test_id("node-state")).to_have_text("alive")
        expect(row.locator("td").nth(1)).to_have_text(f"{m['chunks']:,}")
    expect(page.get_by_test_id("replication-factor")).to_have_text(
        str(report["replication_factor"])
    )
    expect(page.get_by_test_id("live-chunks")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    expect(page.get_by_test_id("under-replicated")).to_have_text(re.compile(r"^\d+$"))
    expect(page.get_by_test_id("pool-backend")).to_have_text("local")
    expect(page.get_by_test_id("pool-workers")).to_have_text(re.compile(r"^\d+$"))
    expect(page.get_by_test_id("ray-status")).to_have_text("not attached")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    expect(page.get_by_test_id("nodes-chart").locator("canvas")).to_have_count(1)


def test_the_pool_route_is_for_signed_in_users(ui_platform: UIPlatform) -> None:
    assert httpx.get(f"{ui_platform.url}/api/jobs/pool", timeout=30).status_code == 401
    secret = (ui_platform.home / "secret").read_bytes().strip().decode()
    user = TokenSigner(secret).issue("ann")
    r = httpx.get(
        f"{ui_platform.url}/api/jobs/pool",
        headers={"authorization": f"Bearer {user}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == "local"
    assert body["busy"] + body["idle"] == body["workers"] == len(body["worker_list"])
    assert body["ray"]["attached"] is False


def test_a_joined_node_appears_alive_then_suspect_then_dead_without_a_reload(
    page: Page, ui_platform: UIPlatform, tmp_path: Path
) -> None:
    page.goto("/cluster/")
    with ui_platform.client() as c:
        own = c.get("/api/lake/nodes/self").json()["node_id"]
    # Its address is the gateway's bound port (peers ping it there), even with --port 0.
    expect(_row(page, own)).to_contain_text(ui_platform.url.removeprefix("http://"))
    page.evaluate("window.__same_document = true")  # gone if anything reloads the page
    home = tmp_path / "second"
    home.mkdir()
    shutil.copy2(ui_platform.home / "secret", home / "secret")
    node = start_node(home, "--join", ui_platform.url.removeprefix("http://"), timeout=120)
    try:
        row = _row(page, node.node_id)
        expect(row.get_by_test_id("node-state")).to_have_text("alive", timeout=15_000)
        expect(row).to_contain_text(node.flight)
        if os.environ.get("PLAYGROUND_SHOTS"):
            page.screenshot(path=str(SHOTS / "cluster.png"), full_page=True)
        node.proc.kill()  # kill -9: no goodbye, the platform's node must notice
        node.proc.wait()
        # The platform's node suspects it after a failed ping round (~1-2 s), declares it
        # dead 5 s later; the page follows each within a second.
        expect(row.get_by_test_id("node-state")).to_have_text(
            re.compile("suspect|dead"), timeout=10_000
        )
        expect(row.get_by_test_id("node-state")).to_have_text("dead", timeout=15_000)
        expect(row).to_have_attribute("data-state", "dead")
        assert page.evaluate("window.__same_document") is True
        assert _rest_nodes(ui_platform)[node.node_id] == "dead"
    finally:
        stop_node(node)


@pytest.mark.parametrize("width", [420])
def test_the_page_fits_a_narrow_window(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/cluster/")
    expect(page.get_by_test_id("node-row").first).to_be_visible()
    expect(page.get_by_test_id("pool-backend")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a {width}px window"
