"""The Database page shows keys that are JavaScript's own names (`__proto__`) like any other
(break-test "break14", independent review of issue 14). A key is any text to the database;
to a JavaScript object `__proto__` is special."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from playwright.sync_api import Locator, Page, expect
from ui_browser import UIPlatform


def row(page: Page, path: str) -> Locator:
    return page.locator(f'[data-testid="db-row"][data-path="{path}"]')


def test_a_proto_key_that_arrives_live_is_shown_like_any_other(
    page: Page, ui_platform: UIPlatform
) -> None:
    top = f"t{uuid.uuid4().hex[:10]}"
    with ui_platform.client() as c:
        c.put(f"/db/{top}.json", json={"b": 1}).raise_for_status()
        page.goto(f"/database/?path={quote('/' + top)}")
        expect(page.get_by_test_id("db-live")).to_be_visible()
        expect(row(page, f"/{top}/b").get_by_test_id("db-value")).to_have_text("1")
        # Assigned, `obj["__proto__"] = {...}` set the object's prototype: the key vanished
        # from the tree (until a reload) and its children were inherited by the parent.
        c.put(f"/db/{top}/__proto__.json", json={"z": 1}).raise_for_status()
        c.patch(f"/db/{top}.json", json={"constructor": 7, "toString": "x"}).raise_for_status()
    expect(row(page, f"/{top}/__proto__")).to_be_visible()
    expect(row(page, f"/{top}/constructor").get_by_test_id("db-value")).to_have_text("7")
    expect(row(page, f"/{top}/toString").get_by_test_id("db-value")).to_have_text('"x"')
    page.get_by_role("button", name=f"Expand /{top}/__proto__").click()
    expect(row(page, f"/{top}/__proto__/z").get_by_test_id("db-value")).to_have_text("1")
    assert page.evaluate("({}).z") is None  # and nothing leaked into Object.prototype
