"""The Jobs pages neither list, open nor cancel another user's job (break-test "break14",
independent review of issue 14)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from playwright.sync_api import BrowserContext, expect
from servers import command
from ui_browser import BrowserErrors, UIPlatform

from lake import Client


def test_a_user_neither_lists_nor_opens_nor_cancels_the_admins_job(
    context: BrowserContext,
    ui_platform: UIPlatform,
    tmp_path: Path,
    browser_errors: BrowserErrors,
) -> None:
    csv = tmp_path / "owned.csv"
    csv.write_text("id,v\n" + "".join(f"{i},{i * 3}\n" for i in range(100)))
    name = f"owned_{uuid.uuid4().hex[:8]}"
    with Client(ui_platform.url, ui_platform.token()) as lake:
        lake.upload(csv, name)
    with ui_platform.client() as admin:
        pipeline = {"source": {"dataset": name}, "steps": [{"filter": "v > 3"}]}
        job = admin.post("/api/jobs", json={"pipeline": pipeline}).json()
    user = f"u{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [str(command("platform")), "user", "add", user, "--password-stdin"],
        input="a long enough password\n",
        text=True,
        env={**os.environ, "PLATFORM_HOME": str(ui_platform.home)},
        check=True,
        capture_output=True,
    )
    browser_errors.allowed += ["answer 403: GET", "answer 401: GET"]  # the refusals themselves

    page = context.new_page()
    page.goto("/signin/?next=%2Fjobs%2F")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign in with password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    expect(page.locator(f'[data-testid="job-row"][data-job="{job["id"]}"]')).to_have_count(0)

    page.goto(f"/jobs/view/?id={job['id']}")
    expect(page.get_by_test_id("error")).to_contain_text("belongs to 'admin'")
    expect(page.get_by_test_id("job-plan")).to_have_count(0)
    assert name not in page.inner_text("main")  # nothing of the record, not its dataset
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
