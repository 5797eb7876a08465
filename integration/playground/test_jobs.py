"""The Jobs page and a job's page in a real browser: the list shows a job as it is submitted
(no reload) with its state and rows; a job's page shows its record, plan and one timeline bar
per task."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from playwright.sync_api import Page, expect
from ui_browser import UIPlatform

from lake import Client

ORDERS, REGIONS = "jb_orders", "jb_regions"


@pytest.fixture(scope="module")
def datasets(ui_platform: UIPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Orders in five groups and the region of each group, as two datasets."""
    d = tmp_path_factory.mktemp("jobs")
    duckdb.sql(
        f"""COPY (SELECT i AS id, 'g' || (i % 5) AS grp, (i % 97) * 1.5 AS amount
            FROM range(5000) t(i)) TO '{d / "orders.csv"}' (HEADER)"""
    )
    duckdb.sql(
        f"""COPY (SELECT 'g' || i AS grp, 'region' || (i % 2) AS region
            FROM range(5) t(i)) TO '{d / "regions.csv"}' (HEADER)"""
    )
    with Client(ui_platform.url, ui_platform.token()) as c:
        c.upload(d / "orders.csv", ORDERS)
        c.upload(d / "regions.csv", REGIONS)
    return d


def _run(client: httpx.Client, pipeline: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/jobs", json={"pipeline": pipeline})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


# A join: each side scanned by a task, then one join task per hash partition (three stages).
JOINED = {
    "source": {"dataset": ORDERS},
    "steps": [
        {"join": {"source": {"dataset": REGIONS}, "steps": []}, "on": ["grp"]},
        {"group_by": ["region"], "agg": ["count(*) AS n", "sum(amount) AS total"]},
    ],
}


def test_the_list_shows_a_new_job_without_a_reload(
    page: Page, ui_platform: UIPlatform, datasets: Path
) -> None:
    page.goto("/jobs/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    with ui_platform.client() as client:
        job = _run(client, JOINED)
    assert job["state"] == "succeeded"
    row = page.locator(f'[data-testid="job-row"][data-job="{job["id"]}"]')
    expect(row).to_be_visible(timeout=15_000)  # the idle refresh (10 s) at the latest
    expect(row.get_by_test_id("job-state")).to_have_text("succeeded")
    expect(row.get_by_test_id("job-row-rows")).to_have_text("2")
    # Newest first.
    expect(page.get_by_test_id("job-row").first).to_have_attribute("data-job", job["id"])


def test_a_jobs_page_shows_its_record_plan_and_one_bar_per_task(
    page: Page, ui_platform: UIPlatform, datasets: Path
) -> None:
    with ui_platform.client() as client:
        job = _run(client, JOINED)
    assert job["state"] == "succeeded"
    total = job["tasks"]["total"]
    assert total >= 3  # two scans and at least one join task
    page.goto("/jobs/")
    page.get_by_role("link", name=job["id"]).click()
    expect(page).to_have_url(re.compile(rf"/jobs/view/\?id={job['id']}$"))
    expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
    expect(page.get_by_test_id("job-tasks")).to_have_text(f"tasks {total} / {total}")
    expect(page.get_by_test_id("job-plan")).to_contain_text("Join")
    expect(page.get_by_test_id("task-bar")).to_have_count(total)
    expect(page.get_by_test_id("job-stages")).to_contain_text("stage 2")
    bar = page.get_by_test_id("task-bar").first
    bar.focus()
    expect(page.get_by_test_id("timeline").locator("figcaption")).to_contain_text("rows out")
    # Its rows, as DuckDB counts them.
    expected = duckdb.sql(
        f"""SELECT r.region, count(*) FROM read_csv_auto('{datasets / "orders.csv"}') o
            JOIN read_csv_auto('{datasets / "regions.csv"}') r USING (grp)
            GROUP BY r.region ORDER BY 1"""
    ).fetchall()
    grid = page.get_by_test_id("grid")
    expect(grid.locator("tbody tr[aria-rowindex]")).to_have_count(len(expected))
    shown = sorted(
        (row.locator("td").nth(0).inner_text(), int(row.locator("td").nth(1).inner_text()))
        for row in grid.locator("tbody tr[aria-rowindex]").all()
    )
    assert shown == expected


def test_a_job_page_without_an_id_says_where_to_go(page: Page) -> None:
    page.goto("/jobs/view/")
    expect(page.get_by_test_id("empty")).to_contain_text("No job named")


def test_the_jobs_pages_fit_a_narrow_window(
    page: Page, ui_platform: UIPlatform, datasets: Path
) -> None:
    with ui_platform.client() as client:
        job = _run(client, JOINED)
    page.set_viewport_size({"width": 420, "height": 800})
    for path in ("/jobs/", f"/jobs/view/?id={job['id']}", "/pipelines/"):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
