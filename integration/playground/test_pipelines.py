"""The Pipelines page in a real browser against a real platform: build a pipeline step by
step, see a type error marked where it is, fix it, submit, watch the job to its end and
compare its rows with DuckDB's answer to the same SQL on the same data; cancel a slow job."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Page, expect
from ui_browser import BrowserErrors, UIPlatform

from lake import Client

SALES = "pl_sales"
BIG = "pl_big"
VALIDATE_400 = "answer 400: POST"  # the builder's checks answer 400 while a step is wrong


@pytest.fixture(scope="module")
def sales_csv(ui_platform: UIPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5000 seeded sales (five groups, amounts and quantities), uploaded as dataset pl_sales."""
    path = tmp_path_factory.mktemp("pipelines") / "sales.csv"
    duckdb.sql(
        f"""COPY (SELECT i AS id, 'g' || (i % 5) AS grp, round((i * 7919 % 1000) / 7.0, 2) AS amount,
                   (i * 31 % 9)::INTEGER AS qty
            FROM range(5000) t(i)) TO '{path}' (HEADER)"""
    )
    with Client(ui_platform.url, ui_platform.token()) as c:
        c.upload(path, SALES)
    return path


def _open_builder(page: Page, source: str, browser_errors: BrowserErrors) -> None:
    """The Pipelines page with `source` chosen; its live checks answer 400 while a step is wrong."""
    browser_errors.allowed.append(VALIDATE_400)
    page.goto("/pipelines/")
    page.get_by_label("Source dataset").select_option(source)


def _add(page: Page, kind: str) -> None:
    page.get_by_label("Step type").select_option(label=kind)
    page.get_by_role("button", name="Add step").click()


def _step(page: Page, n: int):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("step").nth(n - 1)


def test_build_check_fix_submit_and_compare_with_duckdb(
    page: Page, sales_csv: Path, browser_errors: BrowserErrors
) -> None:
    _open_builder(page, SALES, browser_errors)
    expect(page.get_by_role("list", name="Columns of the source")).to_contain_text("amount")

    _add(page, "Filter")
    wrong = "qty > 2 AND grp > 3"
    _step(page, 1).get_by_label("Condition").fill(wrong)
    # The server's type error, marked under the part of the text that is wrong.
    expect(_step(page, 1).get_by_test_id("field-error")).to_contain_text("cannot compare utf8")
    expect(_step(page, 1).get_by_test_id("error-mark")).to_have_text("grp > 3")
    expect(_step(page, 1).get_by_label("Condition")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Submit job")).to_be_disabled()
    _step(page, 1).get_by_label("Condition").fill("qty > 2 AND grp <> 'g3'")
    expect(page.get_by_test_id("check-status")).to_contain_text("Valid")
    expect(_step(page, 1).get_by_test_id("error-mark")).to_have_count(0)

    _add(page, "Computed column")
    _step(page, 2).get_by_label("Column name").fill("value")
    _step(page, 2).get_by_label("Expression").fill("amount * qty")
    _add(page, "Group and aggregate")
    _step(page, 3).get_by_label(re.compile("^Group by")).fill("grp")
    _step(page, 3).get_by_role("button", name="Add aggregate").click()
    _step(page, 3).get_by_label("Aggregate 2", exact=True).fill("sum(value) AS total")
    _add(page, "Sort")
    _step(page, 4).get_by_label(re.compile("^Sort by")).fill("total DESC")
    expect(page.get_by_test_id("check-status")).to_contain_text("Valid: 3 output columns")
    expect(page.get_by_test_id("view-json")).to_contain_text('"group_by"')
    page.get_by_role("tab", name="Plan").click()
    expect(page.get_by_test_id("view-plan")).to_contain_text("stage 0")

    page.get_by_role("button", name="Submit job").click()
    job = page.get_by_test_id("submitted-job")
    expect(job.get_by_test_id("job-state")).to_have_text("succeeded", timeout=30_000)
    tasks = job.get_by_test_id("job-tasks").inner_text()
    done, total = map(int, re.findall(r"\d+", tasks))
    assert done == total >= 1
    expect(job.get_by_test_id("result-cap")).to_contain_text("All 4 rows")

    expected = duckdb.sql(
        f"""SELECT grp, count(*) AS n, sum(amount * qty) AS total
            FROM read_csv_auto('{sales_csv}') WHERE qty > 2 AND grp <> 'g3'
            GROUP BY grp ORDER BY total DESC"""
    ).fetchall()
    grid = job.get_by_test_id("grid")
    expect(grid.locator("tbody tr[aria-rowindex]")).to_have_count(len(expected))
    shown = [
        [c.inner_text() for c in row.locator("td").all()]
        for row in grid.locator("tbody tr[aria-rowindex]").all()
    ]
    assert [r[0] for r in shown] == [e[0] for e in expected]
    assert [int(r[1]) for r in shown] == [e[1] for e in expected]
    for r, e in zip(shown, expected, strict=True):
        assert float(r[2]) == pytest.approx(e[2], rel=1e-9)


def test_a_parse_error_and_an_unknown_column_are_marked_in_their_inputs(
    page: Page, sales_csv: Path, browser_errors: BrowserErrors
) -> None:
    _open_builder(page, SALES, browser_errors)
    _add(page, "Group and aggregate")
    step = _step(page, 1)
    step.get_by_label(re.compile("^Group by")).fill("grp, regoin")
    expect(step.get_by_test_id("error-mark")).to_have_text("regoin")
    step.get_by_label(re.compile("^Group by")).fill("grp")
    step.get_by_label("Aggregate 1", exact=True).fill("sum(amount +) AS s")
    expect(step.get_by_test_id("field-error")).to_be_visible()
    expect(step.get_by_test_id("error-mark")).to_have_text(")")
    step.get_by_label("Aggregate 1", exact=True).fill("sum(amonut) AS s")
    expect(step.get_by_test_id("field-error")).to_contain_text('did you mean "amount"')
    expect(step.get_by_test_id("error-mark")).to_have_text("amonut")
    # Reorder and remove: a sort before the group-by refers to a column it does not have yet.
    _add(page, "Sort")
    _step(page, 2).get_by_label(re.compile("^Sort by")).fill("grp")
    step.get_by_label("Aggregate 1", exact=True).fill("sum(amount) AS s")
    expect(page.get_by_test_id("check-status")).to_contain_text("Valid: 2 output columns")
    page.get_by_role("button", name="Move step 2 up").click()
    expect(_step(page, 1)).to_have_attribute("aria-label", "Step 1: Sort")
    expect(page.get_by_test_id("check-status")).to_contain_text("Valid")
    page.get_by_role("button", name="Remove step 1").click()
    expect(page.get_by_test_id("step")).to_have_count(1)
    expect(page.get_by_test_id("check-status")).to_contain_text("Valid: 2 output columns")


@pytest.fixture(scope="module")
def big(ui_platform: UIPlatform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two million rows: a top-2 per group over them keeps a task busy for seconds."""
    path = tmp_path_factory.mktemp("pipelines-big") / "big.parquet"
    duckdb.sql(
        f"""COPY (SELECT i AS id, 'k' || (i % 100003) AS key, (i * 7919 % 100000) / 7.0 AS x
            FROM range(2000000) t(i)) TO '{path}' (FORMAT parquet)"""
    )
    with Client(ui_platform.url, ui_platform.token()) as c:
        c.upload(path, BIG)
    return BIG


def test_a_running_job_can_be_cancelled_from_the_page(
    page: Page, big: str, browser_errors: BrowserErrors
) -> None:
    _open_builder(page, big, browser_errors)
    # The top two rows of each of 100k keys: each task sorts its chunk whole (seconds).
    _add(page, "Top rows")
    step = _step(page, 1)
    step.get_by_label("Rows").fill("2")
    step.get_by_label(re.compile("^Ranked by")).fill("x DESC")
    step.get_by_label(re.compile("^Per group")).fill("kee")
    expect(step.get_by_test_id("error-mark")).to_have_text("kee")
    step.get_by_label(re.compile("^Per group")).fill("key")
    expect(page.get_by_test_id("check-status")).to_contain_text("Valid: 3 output columns")
    page.get_by_role("button", name="Submit job").click()
    job = page.get_by_test_id("submitted-job")
    expect(job.get_by_test_id("job-state")).to_have_text(re.compile("queued|running"))
    job.get_by_role("button", name="Cancel job").click()
    expect(job.get_by_test_id("job-state")).to_have_text("cancelled", timeout=20_000)
    expect(job.get_by_role("button", name="Cancel job")).to_have_count(0)
    expect(job.get_by_test_id("job-error")).to_contain_text("cancelled")
    expect(job.get_by_test_id("job-tasks")).to_have_text(re.compile(r"tasks 0 / [1-9]"))


@pytest.fixture(scope="module")
def pages(ui_platform: UIPlatform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """25,000 rows: a result of three pages of 10,000."""
    path = tmp_path_factory.mktemp("pipelines-pages") / "pages.csv"
    duckdb.sql(f"COPY (SELECT i AS id, i % 7 AS k FROM range(25000) t(i)) TO '{path}' (HEADER)")
    with Client(ui_platform.url, ui_platform.token()) as c:
        c.upload(path, "pl_pages")
    return "pl_pages"


def test_a_large_result_is_shown_page_by_page(
    page: Page, pages: str, browser_errors: BrowserErrors
) -> None:
    _open_builder(page, pages, browser_errors)
    _add(page, "Sort")
    _step(page, 1).get_by_label(re.compile("^Sort by")).fill("id")
    expect(page.get_by_test_id("check-status")).to_contain_text("Valid")
    page.get_by_role("button", name="Submit job").click()
    job = page.get_by_test_id("submitted-job")
    expect(job.get_by_test_id("job-state")).to_have_text("succeeded", timeout=30_000)
    cap = job.get_by_test_id("result-cap")
    first_id = job.get_by_test_id("grid").locator("tbody tr[aria-rowindex] td").first
    expect(cap).to_contain_text(re.compile(r"Rows 1.10,000 of 25,000"))
    expect(first_id).to_have_text("0")
    pager = job.get_by_test_id("result-pager")
    expect(pager.get_by_role("button", name="Previous")).to_be_disabled()
    pager.get_by_role("button", name="Next").click()
    expect(cap).to_contain_text(re.compile(r"Rows 10,001.20,000 of 25,000"))
    expect(first_id).to_have_text("10000")
    pager.get_by_role("button", name="Next").click()
    expect(cap).to_contain_text(re.compile(r"Rows 20,001.25,000 of 25,000"))
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()
    pager.get_by_role("button", name="Previous").click()
    expect(first_id).to_have_text("10000")
