"""The frame around every page: signing in and out, navigation, deep links, the 404s."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import BrowserContext, Page, expect
from ui_browser import BrowserErrors, UIPlatform, sign_in

PAGES = ["Datasets", "SQL", "Pipelines", "Jobs", "Database", "Cluster", "Worker"]


def test_a_visitor_without_a_session_is_sent_to_sign_in_and_brought_back(
    context: BrowserContext,
) -> None:
    page = context.new_page()
    page.goto("/sql/?from=deep-link")
    expect(page).to_have_url(re.compile(r"/signin/\?next="))
    page.get_by_role("button", name="Sign in as admin (dev mode)").click()
    expect(page).to_have_url(re.compile(r"/sql/\?from=deep-link$"))
    expect(page.get_by_test_id("who")).to_have_text("admin (admin)")


def test_every_page_is_reachable_from_the_navigation_and_survives_a_reload(page: Page) -> None:
    for name in PAGES:
        page.get_by_role("navigation", name="Pages").get_by_role("link", name=name).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(name)
        page.reload()  # the session is in sessionStorage; the page is a file of its own
        expect(page.get_by_role("heading", level=1)).to_have_text(name)
        expect(page.get_by_role("link", name=name)).to_have_attribute("aria-current", "page")


def test_sign_out_ends_the_session_in_this_tab(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/signin/"))
    page.goto("/datasets/")
    expect(page).to_have_url(re.compile("/signin/"))


def test_a_wrong_password_is_said_on_the_sign_in_page(
    context: BrowserContext, browser_errors: BrowserErrors
) -> None:
    browser_errors.allowed.append("answer 401: POST")
    page = context.new_page()
    page.goto("/signin/")
    page.get_by_label("User name").fill("nobody")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in with password").click()
    expect(page.get_by_test_id("error")).to_contain_text("user name or password")


def test_an_unknown_page_is_the_ui_404_and_an_unknown_api_path_stays_json(
    ui_platform: UIPlatform,
) -> None:
    page = httpx.get(f"{ui_platform.url}/no-such-page/", timeout=30)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    for path in ("/api/no-such-route", "/api/lake/no-such", "/internal/nope"):
        r = httpx.get(f"{ui_platform.url}{path}", timeout=30)
        assert r.status_code in (401, 404), (path, r.status_code)
        assert r.headers["content-type"].startswith("application/json"), path
    r = httpx.get(f"{ui_platform.url}/sql", timeout=30, follow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"].endswith("/sql/")


def test_pages_forbid_eval_and_foreign_origins(ui_platform: UIPlatform) -> None:
    r = httpx.get(f"{ui_platform.url}/", timeout=30)
    csp = r.headers["content-security-policy"]
    assert "unsafe-eval" not in csp
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp


def test_the_frame_works_in_a_narrow_window(context: BrowserContext) -> None:
    page = context.new_page()
    page.set_viewport_size({"width": 420, "height": 800})
    sign_in(page, "/datasets/")
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Cluster")).to_be_visible()
    # Nothing wider than the window: no sideways scrolling of the whole page.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
