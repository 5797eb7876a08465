"""A page in a narrow window wraps long unbroken text (an error quoting a 400-character name, a
deep path) in a 420px window: the page must not grow sideways. (Break-test "break14",
independent review of issue 14.)"""

from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import Page, expect
from ui_browser import BrowserErrors

LONG = "x" * 400


def fits(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_long_unbroken_text_wraps_in_a_420px_window(
    page: Page, browser_errors: BrowserErrors
) -> None:
    browser_errors.allowed += [
        "answer 400: POST",
        "answer 400: GET",
        "answer 404: GET",
    ]  # refused names
    page.set_viewport_size({"width": 420, "height": 800})

    page.goto("/sql/?q=" + quote(f"SELECT {LONG} FROM nowhere_{LONG}"))
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("query-error")).to_contain_text("xxxx")
    assert fits(page), "the SQL page's error line is wider than the window"

    page.goto(f"/datasets/view/?name=n{LONG}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("nxxx")
    assert fits(page), "a dataset page's title is wider than the window"

    page.goto("/database/?path=" + quote(f"/k{LONG}"))
    expect(page.get_by_role("navigation", name="Location")).to_contain_text("kxxx")
    assert fits(page), "the Database page's location is wider than the window"
