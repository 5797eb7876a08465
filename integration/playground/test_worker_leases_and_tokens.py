"""The /worker page's protocol side (lib/worker/client.ts): leases after pause and resume,
verified results, tokens kept in the tab, no leaked web workers. A break-test, live: a real
`platform up` with ELYTRA_BACKEND=browser (fixtures as in test_worker_page.py), headless Chromium,
DuckDB as the oracle. A tab paused (hidden) while a chunk fetch is in flight and shown again
gets the same task re-offered; the stale fetch of the ended lease must not answer for it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Route, expect
from ui_browser import UIPlatform, sign_in
from worker_tabs import (
    AGGREGATE,
    AGGREGATE_SQL,
    CHUNK_ROUTE,
    duck,
    lend,
    result,
    run_job,
    same_rows,
    stats,
    submit,
    worker_token,
)

pytestmark = pytest.mark.timeout(360)  # a shared machine: platform up, Chromium, jobs


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
