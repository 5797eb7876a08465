"""The Users page (admins only) and sign-out that revokes, in a real browser (issue 26)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import httpx
from playwright.sync_api import BrowserContext, Page, expect
from servers import command
from ui_browser import BrowserErrors, UIPlatform


def _token(page: Page) -> str:
    raw = page.evaluate("() => window.sessionStorage.getItem('platform.session')")
    token: str = json.loads(raw)["token"]
    return token


def _jobs(ui: UIPlatform, token: str) -> int:
    return httpx.get(
        f"{ui.url}/api/jobs", headers={"authorization": f"Bearer {token}"}, timeout=30
    ).status_code


def test_sign_out_revokes_the_token_at_the_gateway(page: Page, ui_platform: UIPlatform) -> None:
    token = _token(page)
    assert _jobs(ui_platform, token) == 200
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/signin/"))
    assert _jobs(ui_platform, token) == 401  # a copy of the token is refused too


def test_an_admin_adds_promotes_and_removes_a_user(page: Page, ui_platform: UIPlatform) -> None:
    nav = page.get_by_role("navigation", name="Pages")
    nav.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    form = page.get_by_role("form", name="Add a user")
    form.get_by_label("user name").fill("ui-zoe")
    form.get_by_label("password").fill("zoe-password")
    form.get_by_role("button", name="Add user").click()
    row = page.get_by_test_id("user-ui-zoe")
    expect(row).to_be_visible()
    r = httpx.post(
        f"{ui_platform.url}/api/login",
        json={"username": "ui-zoe", "password": "zoe-password"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    zoe = r.json()["token"]
    assert _jobs(ui_platform, zoe) == 200
    row.get_by_label("ui-zoe is an admin").click()  # checked once the gateway answered
    expect(page.get_by_test_id("users-note")).to_have_text("ui-zoe is an admin")
    expect(row.get_by_label("ui-zoe is an admin")).to_be_checked()
    assert _jobs(ui_platform, zoe) == 401  # a role change revokes the old tokens
    row.get_by_role("button", name="Remove").click()
    expect(page.get_by_test_id("user-ui-zoe")).to_have_count(0)


def test_a_plain_user_has_no_users_page(
    context: BrowserContext, ui_platform: UIPlatform, browser_errors: BrowserErrors
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    subprocess.run(
        [
            str(command("platform")),
            "user",
            "add",
            "ui-yan",
            "--password-stdin",
            "--home",
            str(ui_platform.home),
        ],
        input="yan-password\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    browser_errors.allowed.append("answer 403: GET")
    page = context.new_page()
    page.goto("/signin/")
    page.get_by_label("User name").fill("ui-yan")
    page.get_by_label("Password").fill("yan-password")
    page.get_by_role("button", name="Sign in with password").click()
    expect(page.get_by_test_id("who")).to_have_text("ui-yan")
    expect(
        page.get_by_role("navigation", name="Pages").get_by_role("link", name="Users")
    ).to_have_count(0)
    page.goto("/users/")
    expect(page.get_by_test_id("users-refused")).to_contain_text("for admins")
