"""The playground in a real browser: one `platform up` (its gateway, Elkyn and a lake node, as
a user starts it) and one headless Chromium (Debian's, driven by Playwright) per test session.

Every page a test opens records the browser's console errors, uncaught exceptions and failed
requests of our origin; a test fails if any appear (`browser_errors` says which), so a broken
script or a Content-Security-Policy violation never passes unseen.
"""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.fixture(scope="session")
def ui_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIPlatform]:
    """`platform up --port 0` in a fresh home, shared by every test of the playground."""
    ui_built()
    run_dir = tmp_path_factory.mktemp("ui-platform")
    home = run_dir / "home"
    server = launch([str(command("platform")), "up", "--port", "0", "--home", str(home)], run_dir)
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
