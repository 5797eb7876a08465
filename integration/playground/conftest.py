"""The playground in a real browser: one `platform up` (its gateway, Elkyn and a lake node, as
a user starts it) and one headless Chromium (Debian's, driven by Playwright) per test session.

Every page a test opens records the browser's console errors, uncaught exceptions and failed
requests of our origin; a test fails if any appear (`browser_errors` says which), so a broken
script or a Content-Security-Policy violation never passes unseen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from servers import command, launch
from ui_browser import (
    CHROMIUM_FLAGS,
    VIEWPORT,
    BrowserErrors,
    UIPlatform,
    chromium_path,
    sign_in,
    ui_built,
)
from worker_tabs import ROWS, browser_backend_env

from lake import Client


@pytest.fixture(scope="session")
def ui_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIPlatform]:
    """`platform up --port 0` in a fresh home, shared by every test of the playground."""
    ui_built()
    run_dir = tmp_path_factory.mktemp("ui-platform")
    home = run_dir / "home"
    # The jobs pages draw a multi-stage job: a join of two datasets through the hash exchange.
    # The test datasets are small enough to be broadcast (one stage, one task), which elytra's
    # own suite tests; here every join is exchanged.
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        run_dir,
        # the SQL page's plan tree draws Elytra's stages: on one platform the route runs them
        # only when asked (ELYTRA_SQL_ROUTE's default, cluster, leaves SQL to the lake alone)
        {"ELYTRA_BROADCAST_BYTES": "0", "ELYTRA_SQL_ROUTE": "always"},
    )
    yield UIPlatform(server, home, run_dir)
    server.stop()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the session (each test gets its own context)."""
    b = playwright_driver.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS
    )
    yield b
    b.close()


@pytest.fixture
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


@pytest.fixture
def context(
    browser: Browser, ui_platform: UIPlatform, browser_errors: BrowserErrors
) -> Iterator[BrowserContext]:
    """A fresh browser profile (no session) at 1280x800; every page in it is watched."""
    ctx = browser.new_context(viewport=VIEWPORT, base_url=ui_platform.url)
    ctx.set_default_timeout(15_000)
    ctx.on("page", lambda p: browser_errors.watch(p, ui_platform.url))
    yield ctx
    ctx.close()
    bad = browser_errors.unexpected()
    assert not bad, "the browser reported errors:\n" + "\n".join(bad)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A signed-in page (dev mode, admin) at the start page."""
    p = context.new_page()
    return sign_in(p)


# The /worker page's tests (test_worker_page.py, test_worker_leases_and_tokens.py): one
# `platform up` with the browser backend for both (it was one per module: a start and an
# upload more). Each test lends its own tabs under its own token subject and waits for its
# jobs to end, so none leaves work or a ban behind for the next.


@pytest.fixture(scope="session")
def worker_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIPlatform]:
    """`platform up` with the browser backend: small chunks (many tasks), every browser result
    checked, tasks wait for a browser up to a minute before the local pool takes them."""
    ui_built()
    run_dir = tmp_path_factory.mktemp("worker-platform")
    home = run_dir / "home"
    env = browser_backend_env(16 * 1024, ELYTRA_BROWSER_VERIFY_FRACTION="1.0")
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)], run_dir, env
    )
    platform = UIPlatform(server, home, run_dir)
    yield platform
    server.stop()


@pytest.fixture(scope="session")
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
