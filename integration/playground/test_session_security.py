"""The sign-in page and the session against attacks from outside: `next` never leaves the
site, the token lives in session storage only and is redacted from the log, injected markup
runs no script, every icon exists. (Break-test "break14", independent review of #14.)"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect
from ui_browser import BrowserErrors, UIPlatform

EVIL = "evil.example"


@pytest.mark.parametrize(
    "next_",
    [
        "//evil.example/",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\\evil.example/",  # the URL parser reads a backslash as a slash: //evil.example/
        "/\t/evil.example/",  # and drops tabs and newlines
        "/\\/evil.example/",
        "/.//evil.example/",  # a same-origin URL whose path is //evil.example/
        "/sql/..//evil.example/",
    ],
)
def test_next_after_sign_in_never_leaves_the_site(
    context: BrowserContext, ui_platform: UIPlatform, next_: str
) -> None:
    left: list[str] = []

    def trap(route: Route) -> None:
        left.append(route.request.url)
        route.fulfill(body="evil", content_type="text/html")

    context.route(f"http://{EVIL}/**", trap)
    context.route(f"https://{EVIL}/**", trap)
    page = context.new_page()
    page.goto(f"/signin/?next={quote(next_, safe='')}")
    page.get_by_role("button", name="Sign in as admin (dev mode)").click()
    page.wait_for_url(lambda u: "/signin" not in u)
    page.wait_for_timeout(300)  # a navigation to another host would have started by now
    assert not left, f"next={next_!r} sent the browser to {left}"
    assert page.url.startswith(ui_platform.url + "/")


def test_a_same_site_next_keeps_its_path_query_and_fragment(context: BrowserContext) -> None:
    page = context.new_page()
    page.goto("/signin/?next=" + quote("/sql/?q=1#top", safe=""))
    page.get_by_role("button", name="Sign in as admin (dev mode)").click()
    page.wait_for_url(lambda u: "/sql/" in u)
    assert page.url.endswith("/sql/?q=1#top")


def test_the_token_is_in_session_storage_only(context: BrowserContext) -> None:
    page = context.new_page()
    page.goto("/signin/")
    page.get_by_role("button", name="Sign in as admin (dev mode)").click()
    page.wait_for_url(lambda u: "/signin" not in u)
    assert page.evaluate("window.sessionStorage.getItem('platform.session')")
    assert page.evaluate("window.localStorage.length") == 0
    assert "eyJ" not in page.url
    assert not context.cookies()


def test_markup_injected_into_a_page_cannot_run_script(
    page: Page, browser_errors: BrowserErrors
) -> None:
    # Should any page ever put a user's text in as HTML, the CSP is the second wall: inline
    # handlers and inline scripts that are not the export's own (hashed) do not run.
    browser_errors.allowed.append("Content Security Policy")
    page.evaluate(
        """() => {
            document.body.insertAdjacentHTML('beforeend', '<img src="data:," onerror="window.__pwned = 1">');
            const s = document.createElement('script');
            s.textContent = 'window.__pwned2 = 1';
            document.body.appendChild(s);
        }"""
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__pwned2") is None
    # ...while the export's own inline bootstrap ran (the page is interactive)
    expect(page.get_by_role("button", name="Sign out")).to_be_enabled()


def test_every_page_names_an_icon_that_exists(ui_platform: UIPlatform) -> None:
    # Without one the browser asks for /favicon.ico, and every page load logged a 404 in the
    # console (a noise that hides real errors).
    for path in ("/", "/signin/", "/sql/", "/datasets/", "/cluster/"):
        html = httpx.get(f"{ui_platform.url}{path}", timeout=30).text
        icons = re.findall(r'<link rel="icon" href="([^"]+)"', html)
        assert icons, f"{path} names no icon"
        for href in icons:
            assert httpx.get(f"{ui_platform.url}{href}", timeout=30).status_code == 200, href


def test_the_streams_token_in_the_url_is_redacted_in_the_platforms_log(
    page: Page, ui_platform: UIPlatform
) -> None:
    # EventSource can only carry the token in the URL (?auth=), and the access log writes URLs.
    page.goto("/cluster/")
    expect(page.get_by_role("status").filter(has_text="Live")).to_have_text("Live")
    token = page.evaluate("JSON.parse(sessionStorage.getItem('platform.session')).token")
    log = (ui_platform.run_dir / "server.log").read_text()
    assert "/db/nodes.json?auth=***" in log
    assert token not in log
    assert token.split(".")[2] not in log  # not even the signature on its own
