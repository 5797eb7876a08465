"""The Database page against a real `platform up`: browse, live changes between tabs, edits
checked over REST, invalid JSON refused in the page, rules errors marked at their position,
deep links, and a location too big to stream listed by key.

Each test writes under its own top-level key, so the tests do not see each other's data.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from urllib.parse import quote

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect
from servers import command
from ui_browser import BrowserErrors, UIPlatform, sign_in


@pytest.fixture
def top() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def seed(ui_platform: UIPlatform, path: str, value: object) -> None:
    with ui_platform.client() as c:
        c.put(f"/db/{path}.json", json=value).raise_for_status()


def rest(ui_platform: UIPlatform, path: str) -> object:
    with ui_platform.client() as c:
        r = c.get(f"/db/{path}.json")
        r.raise_for_status()
        return r.json()


def row(page: Page, path: str) -> Locator:
    return page.locator(f'[data-testid="db-row"][data-path="{path}"]')


def save_value(page: Page) -> None:
    """Click "Save value" and wait for the page's answer: "Saved.", or the refusal it shows
    (then fail with its text, so a failure says whether the write or the stream went wrong)."""
    page.get_by_role("button", name="Save value").click()
    refused = page.get_by_test_id("db-save-error")
    expect(page.get_by_text("Saved.", exact=True).or_(refused)).to_be_visible()
    if refused.count():
        pytest.fail(f"the page's save was refused: {refused.inner_text()}")


def open_at(page: Page, path: str) -> None:
    page.goto(f"/database/?path={quote(path)}")
    expect(page.get_by_test_id("db-live")).to_be_visible()


USERS = {"users": {"ada": {"name": "Ada", "age": 36}, "bob": {"name": "Bob", "age": 7}}, "n": 2}


def test_browse_expand_and_deep_link_reload(page: Page, ui_platform: UIPlatform, top: str) -> None:
    seed(ui_platform, top, USERS)
    open_at(page, f"/{top}")
    expect(row(page, f"/{top}/n").get_by_test_id("db-value")).to_have_text("2")
    expect(row(page, f"/{top}/users")).to_contain_text("2 children")
    expect(row(page, f"/{top}/users/ada")).to_have_count(0)  # collapsed until asked
    page.get_by_role("button", name=f"Expand /{top}/users").click()
    page.get_by_role("button", name=f"Expand /{top}/users/ada").click()
    expect(row(page, f"/{top}/users/ada/name").get_by_test_id("db-value")).to_have_text('"Ada"')
    expect(row(page, f"/{top}/users/ada/age").get_by_test_id("db-value")).to_have_text("36")

    # the keyboard: arrows move the selection, right expands, left collapses
    row(page, f"/{top}/n").get_by_role("button", name="n", exact=True).click()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_test_id("db-selected")).to_have_text(f"/{top}/users")
    expect(
        row(page, f"/{top}/users").get_by_role("button", name="users", exact=True)
    ).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(row(page, f"/{top}/users/ada")).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(row(page, f"/{top}/users/ada")).to_have_count(1)

    # the path bar moves the shown location and the URL; a reload keeps it
    page.get_by_label("Path").fill(f"/{top}/users/bob")
    page.get_by_role("button", name="Go").click()
    expect(page).to_have_url(re.compile(rf"/database/\?path=%2F{top}%2Fusers%2Fbob$"))
    expect(row(page, f"/{top}/users/bob/name").get_by_test_id("db-value")).to_have_text('"Bob"')
    page.reload()
    expect(page.get_by_label("Path")).to_have_value(f"/{top}/users/bob")
    expect(row(page, f"/{top}/users/bob/age").get_by_test_id("db-value")).to_have_text("7")
    expect(row(page, f"/{top}/users/ada")).to_have_count(0)


def test_an_edit_in_one_tab_arrives_highlighted_in_another(
    context: BrowserContext, ui_platform: UIPlatform, top: str
) -> None:
    seed(ui_platform, top, USERS)
    first = sign_in(context.new_page(), f"/database/?path={quote('/' + top + '/users/ada')}")
    second = sign_in(context.new_page(), f"/database/?path={quote('/' + top + '/users/ada')}")
    for p in (first, second):
        expect(row(p, f"/{top}/users/ada/age").get_by_test_id("db-value")).to_have_text("36")
    age = row(second, f"/{top}/users/ada/age")
    expect(age).to_have_attribute("data-changed", "false")

    row(first, f"/{top}/users/ada/age").get_by_role("button", name="age", exact=True).click()
    first.get_by_label("Value (JSON)").fill("37")
    save_value(first)
    # arrives live (nothing reloads); seen while its 1.5 s highlight, which starts on arrival, holds
    expect(age.get_by_test_id("db-value")).to_have_text("37")
    expect(age).to_have_attribute("data-changed", "true")
    expect(row(second, f"/{top}/users/ada/name")).to_have_attribute("data-changed", "false")
    expect(age).to_have_attribute("data-changed", "false")  # the highlight fades
    assert rest(ui_platform, f"{top}/users/ada/age") == 37

    # a change from another client (REST) arrives too, and the tab's own edit field follows it
    seed(ui_platform, f"{top}/users/ada/age", 38)
    expect(row(first, f"/{top}/users/ada/age").get_by_test_id("db-value")).to_have_text("38")
    expect(first.get_by_label("Value (JSON)")).to_have_value("38")

    # ...but a value being typed is not overwritten by a change arriving live
    first.get_by_label("Value (JSON)").fill("99")
    seed(ui_platform, f"{top}/users/ada/age", 39)
    expect(row(first, f"/{top}/users/ada/age").get_by_test_id("db-value")).to_have_text("39")
    expect(first.get_by_label("Value (JSON)")).to_have_value("99")


def test_add_push_and_delete_children(page: Page, ui_platform: UIPlatform, top: str) -> None:
    seed(ui_platform, top, {"keep": True})
    open_at(page, f"/{top}")
    page.get_by_label("Key").fill("alpha")
    page.get_by_label("Child value (JSON)").fill('{"x": 1, "tags": ["a", "b"]}')
    page.get_by_role("button", name="Add child").click()
    expect(page.get_by_test_id("db-added")).to_contain_text(f"/{top}/alpha")
    assert rest(ui_platform, f"{top}/alpha") == {"x": 1, "tags": ["a", "b"]}
    expect(row(page, f"/{top}/alpha")).to_contain_text("2 children")

    page.get_by_label("Child value (JSON)").fill('"pushed"')
    page.get_by_role("button", name="Push (generated key)").click()
    expect(page.get_by_test_id("db-added")).to_be_visible()
    state = rest(ui_platform, top)
    assert isinstance(state, dict)
    pushed = [k for k, v in state.items() if v == "pushed"]
    assert len(pushed) == 1
    assert len(pushed[0]) == 20
    expect(row(page, f"/{top}/{pushed[0]}").get_by_test_id("db-value")).to_have_text('"pushed"')

    row(page, f"/{top}/alpha").get_by_role("button", name="alpha", exact=True).click()
    expect(page.get_by_test_id("db-selected")).to_have_text(f"/{top}/alpha")
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("group", name="Confirm delete")).to_contain_text("everything under it")
    page.get_by_role("button", name="Cancel").click()
    assert rest(ui_platform, f"{top}/alpha") is not None  # cancelled: nothing sent
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect(row(page, f"/{top}/alpha")).to_have_count(0)
    assert rest(ui_platform, f"{top}/alpha") is None
    assert rest(ui_platform, f"{top}/keep") is True
    expect(page.get_by_test_id("db-selected")).to_have_text(f"/{top}")


def test_invalid_json_is_refused_in_the_page(page: Page, ui_platform: UIPlatform, top: str) -> None:
    seed(ui_platform, top, {"name": "Ada"})
    open_at(page, f"/{top}")
    writes: list[str] = []
    page.on(
        "request",
        lambda r: (
            r.method in ("PUT", "POST", "PATCH", "DELETE")
            and "/db/" in r.url
            and writes.append(f"{r.method} {r.url}")
        ),
    )
    row(page, f"/{top}/name").get_by_role("button", name="name", exact=True).click()
    field = page.get_by_label("Value (JSON)")
    expect(field).to_have_value('"Ada"')
    field.fill("Grace")  # a string without its quotes
    page.get_by_role("button", name="Save value").click()
    expect(page.get_by_test_id("db-edit-value-error")).to_contain_text("Not valid JSON")
    expect(field).to_have_attribute("aria-invalid", "true")

    page.get_by_role("button", name=top, exact=True).click()
    page.get_by_label("Key").fill("bad")
    page.get_by_label("Child value (JSON)").fill("{x: 1}")
    page.get_by_role("button", name="Add child").click()
    expect(page.get_by_test_id("db-child-value-error")).to_contain_text("Not valid JSON")
    assert writes == []
    assert rest(ui_platform, top) == {"name": "Ada"}

    # the same field accepts it once it is JSON
    row(page, f"/{top}/name").get_by_role("button", name="name", exact=True).click()
    page.get_by_label("Value (JSON)").fill('"Grace"')
    save_value(page)
    assert rest(ui_platform, f"{top}/name") == "Grace"  # written; now the stream must show it
    expect(row(page, f"/{top}/name").get_by_test_id("db-value")).to_have_text('"Grace"')
    assert rest(ui_platform, f"{top}/name") == "Grace"
    assert len(writes) == 1  # the listener sees writes: the refusals above sent none


def replace_rules(page: Page, text: str) -> None:
    editor = page.get_by_role("textbox", name="Rules (JSON)")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def test_a_bad_rule_is_marked_where_the_server_says(
    page: Page, ui_platform: UIPlatform, browser_errors: BrowserErrors
) -> None:
    browser_errors.allowed.append("answer 400: PUT")
    before = rest(ui_platform, ".settings/rules")
    page.goto("/database/?tab=rules")
    expect(page.get_by_test_id("rules-reserved")).to_contain_text("/jobs")
    expect(page.get_by_role("textbox", name="Rules (JSON)")).to_contain_text('"rules"')

    bad = '    "open": {".read": "auth != null &&& true"}'
    replace_rules(page, '{\n  "rules": {\n    // who may read\n' + bad + "\n  }\n}")
    page.get_by_role("button", name="Save rules").click()
    error = page.get_by_test_id("rules-save-error")
    # line 4; the parser refuses the third '&' (column 39 of that line)
    assert bad.index("&&&") + 3 == 39
    expect(error).to_contain_text("Line 4, column 39")
    expect(error).to_contain_text("rules/open/.read")
    expect(page.locator(".cm-lintRange-error")).to_have_text("&")
    expect(page.locator(".cm-lint-marker-error")).to_have_count(1)

    replace_rules(page, '{\n  "rules": {\n    ".read": true\n    ".write": false\n  }\n}')
    page.get_by_role("button", name="Save rules").click()
    expect(error).to_contain_text("Line 4, column 5")
    expect(error).to_contain_text("invalid JSON")
    expect(page.locator(".cm-lintRange-error")).to_have_text('"')
    assert rest(ui_platform, ".settings/rules") == before  # refused documents change nothing


def test_a_location_too_big_to_stream_is_listed_by_key(
    page: Page, ui_platform: UIPlatform, top: str
) -> None:
    seed(ui_platform, top, {"many": {f"k{i:06d}": i for i in range(20_000)}})
    open_at(page, f"/{top}")
    expect(row(page, f"/{top}/many")).to_contain_text("20,000 children")
    page.goto(f"/database/?path={quote('/' + top + '/many')}")
    expect(page.get_by_test_id("db-count")).to_contain_text("20,000 children")
    keys = page.get_by_test_id("db-key")
    expect(keys.first).to_have_text("k000000")
    assert keys.count() < 100  # virtualised: only what is on screen
    keys.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(rf"path=%2F{top}%2Fmany%2Fk000000$"))
    expect(row(page, f"/{top}/many/k000000").get_by_test_id("db-value")).to_have_text("0")


def add_user(ui_platform: UIPlatform, name: str, password: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    done = subprocess.run(
        [
            str(command("platform")),
            "user",
            "add",
            name,
            "--password-stdin",
            "--home",
            str(ui_platform.home),
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr


def test_rules_denials_are_shown_where_they_happen(
    context: BrowserContext, ui_platform: UIPlatform, browser_errors: BrowserErrors, top: str
) -> None:
    """A user (not an admin) whom the rules let read but not write sees the denial under the
    action, stays signed in, and has no rules editor."""
    browser_errors.allowed += ["answer 401: PUT", "answer 401: GET"]
    seed(ui_platform, top, {"name": "Ada"})
    name = f"u{top}"
    add_user(ui_platform, name, "a-long-password")
    with ui_platform.client() as c:
        before = c.get("/db/.settings/rules.json").json()
        rules = {"rules": {**before["rules"], top: {".read": "auth != null", ".write": False}}}
        c.put("/db/.settings/rules.json", json=rules).raise_for_status()
    try:
        page = context.new_page()
        page.goto("/signin/")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill("a-long-password")
        page.get_by_role("button", name="Sign in with password").click()
        page.wait_for_url(lambda u: "/signin" not in u)
        expect(page.get_by_role("tab", name="Rules")).to_have_count(0)
        open_at(page, f"/{top}")
        row(page, f"/{top}/name").get_by_role("button", name="name", exact=True).click()
        page.get_by_label("Value (JSON)").fill('"Grace"')
        page.get_by_role("button", name="Save value").click()
        expect(page.get_by_test_id("db-save-error")).to_contain_text("Permission denied")
        assert rest(ui_platform, f"{top}/name") == "Ada"
        expect(page.get_by_test_id("who")).to_contain_text(name)  # still signed in

        # a location the rules do not let this user read: said in place of the tree
        page.get_by_label("Path").fill(f"/{top}x")
        page.get_by_role("button", name="Go").click()
        expect(page.get_by_test_id("db-error")).to_contain_text("Permission denied")
    finally:
        with ui_platform.client() as c:
            c.put("/db/.settings/rules.json", json=before).raise_for_status()
