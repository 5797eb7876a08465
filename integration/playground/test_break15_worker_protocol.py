"""Break-test of the /worker page's protocol side (lib/worker/client.ts), live: a real
`platform up` with ELYTRA_BACKEND=browser (fixtures as in test_worker_page.py), headless Chromium,
DuckDB as the oracle. A tab paused (hidden) while a chunk fetch is in flight and shown again
gets the same task re-offered; the stale fetch of the ended lease must not answer for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from servers import command, launch
from ui_browser import VIEWPORT, BrowserErrors, UIPlatform, sign_in, ui_built

from lake import Client

TABS = 3
pytestmark = pytest.mark.timeout(360)  # a shared machine: platform up, Chromium, jobs
ROWS = 40_000
CHUNK_ROUTE = "**/api/workers/chunks/**"

AGGREGATE = {
    "source": {"dataset": "sales"},
    "steps": [
        {"filter": "amount > 100 AND id % 7 <> 3"},
        {
            "group_by": ["grp"],
            "agg": [
                "count(*) AS n",
                "sum(id) AS total",
                "avg(amount) AS mean",
                "min(amount) AS lo",
                "max(amount) AS hi",
            ],
        },
        {"sort": ["grp"]},
    ],
}
AGGREGATE_SQL = (
    "SELECT grp, count(*) AS n, sum(id) AS total, avg(amount) AS mean, min(amount) AS lo, "
    "max(amount) AS hi FROM sales WHERE amount > 100 AND id % 7 <> 3 GROUP BY grp ORDER BY grp"
)
TOP_K = {
    "source": {"dataset": "sales"},
    "steps": [{"filter": "grp <> 2"}, {"top_k": 25, "by": ["amount DESC", "id"]}],
}
TOP_K_SQL = "SELECT * FROM sales WHERE grp <> 2 ORDER BY amount DESC, id LIMIT 25"


@pytest.fixture(scope="module")
def worker_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIPlatform]:
    """`platform up` with the browser backend: small chunks (many tasks), every browser result
    checked, tasks wait for a browser up to a minute before the local pool takes them."""
    ui_built()
    run_dir = tmp_path_factory.mktemp("worker-platform")
    home = run_dir / "home"
    env = {
        "ELYTRA_BACKEND": "browser",
        "ELYTRA_WORKERS": "1",
        "ELYTRA_BROWSER_WAIT_SECONDS": "60",
        "ELYTRA_BROWSER_VERIFY_FRACTION": "1.0",
        "LAKE_CHUNK_BYTES": str(16 * 1024),
        "ELYTRA_TASK_BYTES": "1",
    }
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)], run_dir, env
    )
    platform = UIPlatform(server, home, run_dir)
    yield platform
    server.stop()


@pytest.fixture(scope="module")
def sales(worker_platform: UIPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset `sales` (many chunks), uploaded once; its CSV for DuckDB."""
    csv = tmp_path_factory.mktemp("sales") / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 5 AS grp, round(i * 0.37 % 1000, 2) AS amount "
        f"FROM range({ROWS}) t(i)) TO '{csv}' (HEADER)"
    )
    with Client(worker_platform.url, worker_platform.token()) as client:
        assert client.upload(csv, "sales", part_size=1 << 20)["chunks"] >= 8
    return csv


@pytest.fixture
def tabs(
    browser: Browser, worker_platform: UIPlatform, browser_errors: BrowserErrors
) -> Iterator[BrowserContext]:
    """A browser profile on the worker platform whose pages are watched for errors. A chunk
    whose lease ended (a cancelled or banned task) answers 404 by design."""
    browser_errors.allowed.append("/api/workers/chunks/")
    ctx = browser.new_context(viewport=VIEWPORT, base_url=worker_platform.url)
    ctx.set_default_timeout(30_000)
    ctx.on("page", lambda p: browser_errors.watch(p, worker_platform.url))
    yield ctx
    ctx.close()
    bad = browser_errors.unexpected()
    assert not bad, "the browser reported errors:\n" + "\n".join(bad)


def worker_token(platform: UIPlatform, sub: str = "tab") -> str:
    r = httpx.post(
        f"{platform.url}/api/workers/tokens",
        json={"sub": sub},
        params={"auth": platform.token()},
        timeout=60,
    )
    r.raise_for_status()
    return str(r.json()["token"])


def lend(ctx: BrowserContext, token: str, before: Callable[[Page], None] | None = None) -> Page:
    """A new tab on /worker, lent with `token`; returns once it is connected."""
    page = ctx.new_page()
    if before is not None:
        before(page)
    sign_in(page, "/worker/")
    page.get_by_label("Worker token").fill(token)
    page.get_by_role("button", name="Lend this tab").click()
    state = page.get_by_test_id("worker-state")
    expect(state).not_to_have_attribute("data-state", "checking")
    if state.get_attribute("data-state") == "refused":  # say why (the self-check's words)
        pytest.fail(page.get_by_test_id("worker-error").inner_text())
    expect(state).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("worker-selfcheck")).to_contain_text("passed")
    return page


def stats(page: Page) -> dict[str, Any]:
    return dict(page.evaluate("window.elytraWorker.stats()"))


def submit(platform: UIPlatform, pipeline: dict[str, Any]) -> str:
    with platform.client() as http:
        r = http.post("/api/jobs", json={"pipeline": pipeline})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def result(platform: UIPlatform, job: str, timeout: float = 240) -> list[Any]:
    """The rows of `job` once it succeeded."""
    with platform.client() as http:
        deadline = time.monotonic() + timeout
        while (record := http.get(f"/api/jobs/{job}").json())["state"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, record["state"]
            time.sleep(0.3)
        assert record["state"] == "succeeded", record
        return list(http.get(f"/api/jobs/{job}/result").json()["rows"])


def run_job(platform: UIPlatform, pipeline: dict[str, Any]) -> list[Any]:
    return result(platform, submit(platform, pipeline))


def duck(csv: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{csv}')")
    return [tuple(r) for r in con.execute(sql).fetchall()]


def same_rows(got: list[Any], want: list[tuple[Any, ...]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        for a, b in zip(g, w, strict=True):
            if isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9)
            else:
                assert a == b


def test_a_stale_reply_after_pause_and_resume_is_not_sent_for_the_new_lease(
    tabs: BrowserContext, worker_platform: UIPlatform, sales: Path
) -> None:
    delayed = {"n": 0}

    def slow(route: Route) -> None:
        delayed["n"] += 1
        if delayed["n"] <= 4:
            time.sleep(2.5)  # the fetch is in flight while the tab pauses and comes back
        route.continue_()

    page = lend(
        tabs, worker_token(worker_platform, "pausing"), before=lambda p: p.route(CHUNK_ROUTE, slow)
    )
    hide = """(hidden) => {
        Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    job = submit(worker_platform, AGGREGATE)
    deadline = time.monotonic() + 60
    while stats(page)["busy"] == 0:
        assert time.monotonic() < deadline, stats(page)
        time.sleep(0.05)
    page.evaluate(hide, True)
    state = page.get_by_test_id("worker-state")
    expect(state).to_have_attribute("data-state", "paused")
    page.evaluate(hide, False)
    expect(state).to_have_attribute("data-state", "connected")
    page.unroute(CHUNK_ROUTE)
    with worker_platform.client() as http:  # Playwright's sync calls let the routes run
        deadline = time.monotonic() + 180
        while http.get(f"/api/jobs/{job}").json()["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            page.wait_for_timeout(300)
    same_rows(result(worker_platform, job), duck(sales, AGGREGATE_SQL))
    s = stats(page)
    # the first fetches (their leases ended with the connection) answered 404 in their Web
    # Workers: those replies belong to no task now, so nothing is sent for them
    assert s["errors"] == 0, s
    assert s["rejected"] == 0, s
    assert not s["banned"], s
    assert s["tasksDone"] > 0, s


def test_a_verified_result_with_huge_floats_does_not_fail_the_job(
    tabs: BrowserContext, worker_platform: UIPlatform, sales: Path
) -> None:
    """Every browser result is re-run and compared (verify fraction 1.0): the comparison must
    not break on finite floats near f64's maximum (rounding them to 6 places overflows)."""
    lend(tabs, worker_token(worker_platform, "huge"))
    pipeline = {
        "source": {"dataset": "sales"},
        "steps": [
            {"filter": "amount > 900"},
            {"with_columns": {"big": "amount * 1e300"}},
            {"top_k": 5, "by": ["big DESC", "id"]},
        ],
    }
    want = duck(
        sales,
        "SELECT *, amount * 1e300 AS big FROM sales WHERE amount > 900 "
        "ORDER BY big DESC, id LIMIT 5",
    )
    same_rows(run_job(worker_platform, pipeline), want)


def test_tokens_stay_in_the_tab_and_pause_cycles_leak_no_web_workers(
    tabs: BrowserContext, worker_platform: UIPlatform
) -> None:
    # a user (admin) token pasted as the worker token: refused before any connection
    page = tabs.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    sign_in(page, "/worker/")
    page.get_by_label("Worker token").fill(worker_platform.token())
    page.get_by_role("button", name="Lend this tab").click()
    expect(page.get_by_test_id("worker-state")).to_have_attribute("data-state", "refused")
    page.wait_for_timeout(500)
    assert sockets == []
    page.close()
    # a worker token: never stored, never in the page's address; pause cycles reuse the slots
    token = worker_token(worker_platform, "cycles")
    page = lend(tabs, token)
    hide = """(hidden) => {
        Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    state = page.get_by_test_id("worker-state")
    slots = stats(page)["slots"]
    for _ in range(6):
        page.evaluate(hide, True)
        expect(state).to_have_attribute("data-state", "paused")
        page.evaluate(hide, False)
        expect(state).to_have_attribute("data-state", "connected")
    assert 1 <= len(page.workers) <= slots, (len(page.workers), slots)
    stored = page.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie, location.href])"
    )
    assert token not in stored
    other = sign_in(tabs.new_page(), "/")
    assert token not in other.content()
    assert token not in other.evaluate(
        "() => JSON.stringify([{...localStorage}, {...sessionStorage}])"
    )
