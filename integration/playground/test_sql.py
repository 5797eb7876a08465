"""The SQL page in a real browser against a real `platform up`: what it shows and downloads is
compared with DuckDB's answer over the same generated data."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Page, expect
from ui_browser import BrowserErrors, UIPlatform

from lake import Client

NAME = "sqlpage_sales"
ROWS = 20_000
GROUP_BY = (
    f"SELECT region, count(*) AS n, sum(qty) AS total, round(avg(amount), 3) AS mean "
    f"FROM {NAME} GROUP BY region ORDER BY region"
)
LONG = (
    f"SELECT count(*) FROM {NAME} a, {NAME} b, {NAME} c WHERE hash(a.id + b.id * 2 + c.id * 3) = 0"
)
"""8e12 combinations: runs far longer than any test unless it is cancelled."""


@pytest.fixture(scope="module")
def sales(ui_platform: UIPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded CSV uploaded as NAME; yields the CSV (DuckDB's oracle reads the same file)."""
    path = tmp_path_factory.mktemp("sql-page") / "sales.csv"
    duckdb.sql("SELECT setseed(0.42)")
    duckdb.sql(
        f"""COPY (SELECT i AS id, ['north', 'south', 'east', 'west', 'centre'][1 + i % 5] AS region,
                  round(random() * 1000, 3) AS amount, (i * 7) % 23 AS qty,
                  DATE '2025-01-01' + (i % 90)::INTEGER AS day
           FROM range({ROWS}) t(i)) TO '{path}' (HEADER)"""
    )
    with Client(ui_platform.url, ui_platform.token()) as lake:
        lake.upload(path, NAME)
    return path


def oracle(csv: Path, sql: str) -> duckdb.DuckDBPyRelation:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW {NAME} AS SELECT * FROM read_csv('{csv}')")
    return con.sql(sql)


def text(v: object) -> str:
    """A value as the grid prints it."""
    if v is None:
        return "NULL"
    return str(v)


def open_sql(page: Page, sql: str | None = None) -> None:
    page.goto("/sql/" + (f"?q={quote(sql)}" if sql is not None else ""))
    expect(page.get_by_role("heading", level=1)).to_have_text("SQL")
    expect(page.locator("#sql-help")).to_contain_text("dataset")  # the schema has loaded


def run(page: Page) -> None:
    page.get_by_role("button", name="Run", exact=True).click()


def grid_cells(page: Page) -> list[list[str]]:
    rows = page.get_by_test_id("grid").locator("tbody tr[aria-rowindex]")
    return [r.locator("td").all_inner_texts() for r in rows.all()]


def test_a_group_by_typed_in_the_editor_equals_duckdb(page: Page, sales: Path) -> None:
    open_sql(page)
    editor = page.get_by_role("textbox", name="SQL query")
    editor.click()
    page.keyboard.type(GROUP_BY)
    page.keyboard.press("Escape")  # close the completion list, if open
    page.keyboard.press("Control+Enter")
    expected = oracle(sales, GROUP_BY).fetchall()
    expect(page.get_by_test_id("status")).to_have_text(re.compile(rf"^{len(expected)} rows in "))
    heads = page.get_by_test_id("grid").locator("thead th").all_inner_texts()
    assert [h.strip() for h in heads] == ["region", "n", "total", "mean"]
    assert grid_cells(page) == [[text(v) for v in row] for row in expected]
    history = page.get_by_test_id("history")
    expect(history.get_by_role("button").first).to_contain_text(f"{len(expected)} rows")
    expect(history.get_by_role("button").first).to_contain_text("ok")


def test_completion_offers_a_dataset_and_its_columns(page: Page, sales: Path) -> None:
    open_sql(page)
    page.get_by_role("textbox", name="SQL query").click()
    page.keyboard.type("SELECT sqlpage_sa")
    options = page.locator(".cm-tooltip-autocomplete [role=option]")
    expect(options.filter(has_text=NAME)).to_have_count(1)
    page.keyboard.press("Escape")
    page.keyboard.type("les.am")
    expect(options.filter(has_text="amount")).to_have_count(1)
    options.filter(has_text="amount").click()  # accepts the column
    expect(page.get_by_role("textbox", name="SQL query")).to_have_text(f"SELECT {NAME}.amount")


def test_the_chart_draws_after_picking_x_and_y(page: Page, sales: Path) -> None:
    open_sql(page, GROUP_BY)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("5 rows")
    page.get_by_role("tab", name="Chart").click()
    page.get_by_label("Chart type").select_option("bar")
    page.get_by_label("X axis").select_option(label="region")
    page.get_by_role("checkbox", name="total").check()
    chart = page.get_by_test_id("chart")
    expect(chart).to_have_attribute("aria-label", "bar chart of n, total by region")
    canvas = chart.locator("canvas")
    expect(canvas).to_have_count(1)
    # The canvas has drawn bars: many pixels that are neither blank nor white.
    painted = canvas.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 0; i < d.length; i += 4)
                    if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) n++;
                  return n; }"""
    )
    assert painted > 2000, painted


def test_the_result_views_are_tabs_the_arrow_keys_move_between(page: Page, sales: Path) -> None:
    open_sql(page, GROUP_BY)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("5 rows")
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_text(["Results", "Chart", "Plan"])
    results = page.get_by_role("tab", name="Results")
    results.focus()
    for key, now in [("ArrowRight", "Chart"), ("End", "Plan"), ("ArrowRight", "Results")]:
        page.keyboard.press(key)
        chosen = page.get_by_role("tab", name=now)
        expect(chosen).to_have_attribute("aria-selected", "true")
        expect(chosen).to_be_focused()
        expect(page.get_by_role("tabpanel")).to_have_attribute(
            "aria-labelledby", f"tab-{now.lower()}"
        )
    page.keyboard.press("ArrowLeft")  # wraps around to the last
    expect(page.get_by_role("tab", name="Plan")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Home")
    expect(results).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("grid")).to_be_visible()


def test_explain_shows_the_node_and_the_bytes_of_each_chunk(
    page: Page, ui_platform: UIPlatform, sales: Path
) -> None:
    with ui_platform.client() as c:
        node_id = c.get("/api/lake/nodes").json()["members"][0]["id"]
        chunks = c.get(f"/api/lake/datasets/{NAME}").json()["chunk_list"]
    open_sql(page, f"SELECT region, sum(amount) FROM {NAME} GROUP BY region")
    page.get_by_role("button", name="Explain").click()
    expect(page.get_by_role("tab", name="Plan")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("plan-node-id")).to_have_text([node_id])
    rows = page.get_by_test_id("plan-chunk")
    expect(rows).to_have_count(len(chunks))
    want = [[c["sha256"][:16], f"{c['rows']:,}", f"{c['bytes']:,} B"] for c in chunks]
    got = [[t.strip() for t in r.locator("td").all_inner_texts()] for r in rows.all()]
    assert sorted(got) == sorted(want)


def test_analyze_shows_elytras_stages_with_what_they_moved(
    page: Page, ui_platform: UIPlatform, sales: Path
) -> None:
    """The SQL route runs on Elytra here: Analyze draws its stages, each with the tasks it ran
    and the rows it sent on, as the route's EXPLAIN ANALYZE JSON has them."""
    sql = f"SELECT region, sum(amount) AS total FROM {NAME} GROUP BY region"
    with ui_platform.client() as c:
        api = c.post("/api/lake/query", json={"sql": f"EXPLAIN ANALYZE {sql}"}).json()["plan"]
    assert api["engine"] == "elytra"
    open_sql(page, sql)
    page.get_by_role("button", name="Analyze").click()
    expect(page.get_by_role("tab", name="Plan")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("plan-engine")).to_contain_text("Elytra")
    stages = page.get_by_test_id("stage")
    expect(stages).to_have_count(len(api["stages"]))
    runs = page.get_by_test_id("stage-run")
    for i, stage in enumerate(api["stages"]):
        n = stage["task_count"]
        expect(runs.nth(i)).to_contain_text(f"ran {n:,} {'task' if n == 1 else 'tasks'}")
        expect(runs.nth(i)).to_contain_text("rows out")
    expect(page.get_by_test_id("stage-plan")).to_contain_text("into the driver")
    expect(page.get_by_test_id("stage-merge")).to_contain_text("gather")


def test_csv_and_parquet_downloads_equal_duckdb(page: Page, sales: Path, tmp_path: Path) -> None:
    sql = f"SELECT id, region, amount, qty, day FROM {NAME} WHERE qty > 20 ORDER BY id"
    expected = oracle(sales, sql)
    open_sql(page, sql)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("rows in")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download CSV").click()
    csv = tmp_path / "result.csv"
    dl.value.save_as(csv)
    assert dl.value.suggested_filename == "result.csv"
    got = duckdb.sql(f"SELECT * FROM read_csv('{csv}')").fetchall()
    assert got == expected.fetchall()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download Parquet").click()
    parquet = tmp_path / "result.parquet"
    dl.value.save_as(parquet)
    table = pq.read_table(parquet)
    assert table.column_names == expected.columns
    assert table.to_pylist() == expected.to_arrow_table().to_pylist()


def test_a_syntax_error_is_shown_with_its_position(
    page: Page, sales: Path, browser_errors: BrowserErrors
) -> None:
    browser_errors.allowed.append("/api/lake/query")
    open_sql(page, f"SELECT region FROM {NAME}\nWHERE GROUP BY region")
    run(page)
    error = page.get_by_test_id("query-error")
    expect(error).to_contain_text("syntax error")
    expect(error).to_contain_text(re.compile(r"line 2, column \d+"))
    m = re.search(r"line 2, column (\d+)", error.inner_text())
    assert m
    # The mark covers the word of line 2 at the column the lake names.
    line = "WHERE GROUP BY region"
    at = int(m.group(1)) - 1
    words = [w for w in re.finditer(r"\w+", line) if w.start() <= at < w.end()]
    assert words, (line, at)
    expect(page.get_by_test_id("sql-error-mark")).to_have_text(words[0].group())
    assert words[0].group() in ("GROUP", "BY")
    expect(page.get_by_test_id("history").get_by_role("button").first).to_contain_text("error")


def test_a_long_query_can_be_cancelled(page: Page, ui_platform: UIPlatform, sales: Path) -> None:
    open_sql(page, LONG)
    run(page)
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("Running…")
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_disabled()
    page.get_by_role("button", name="Cancel").click()
    expect(status).to_have_text(re.compile(r"^Cancelled after "))
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()
    expect(page.get_by_test_id("history").get_by_role("button").first).to_contain_text("cancelled")
    # The lake let go of it: the same user can run again at once.
    with ui_platform.client() as c:
        r = c.post("/api/lake/query", json={"sql": f"SELECT count(*) AS n FROM {NAME}"})
        assert r.status_code == 200, r.text


def test_a_header_click_sorts_the_whole_result_as_duckdb_orders_it(page: Page, sales: Path) -> None:
    """Sorting orders every row of the result, not only those in view (the grid virtualises)."""
    sql = f"SELECT id, amount FROM {NAME} WHERE id < 3000"
    open_sql(page, sql)
    run(page)
    expect(page.get_by_test_id("grid-rows")).to_have_text("3,000 rows")
    header = page.get_by_test_id("grid").locator("thead th").nth(1)
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    lowest = oracle(sales, f"{sql} ORDER BY amount, id LIMIT 3").fetchall()
    assert grid_cells(page)[:3] == [[text(v) for v in row] for row in lowest]
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    highest = oracle(sales, f"{sql} ORDER BY amount DESC, id LIMIT 1").fetchall()
    assert grid_cells(page)[0] == [text(v) for v in highest[0]]


def test_a_big_result_is_cut_at_the_row_cap(page: Page, sales: Path) -> None:
    open_sql(page, f"SELECT a.id, b.id AS id2 FROM {NAME} a, (SELECT id FROM {NAME} LIMIT 6) b")
    run(page)
    # 100,000 rows take the grid a while to lay out on a loaded 2-CPU test machine.
    expect(page.get_by_test_id("cut")).to_contain_text("more than 100,000 rows", timeout=30_000)
    expect(page.get_by_test_id("grid-rows")).to_have_text("100,000 rows")
    expect(page.get_by_test_id("status")).to_contain_text("100,000 rows (cut)")


def test_history_restores_and_clears(page: Page, sales: Path) -> None:
    first = f"SELECT count(*) AS n FROM {NAME}"
    open_sql(page, first)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("1 row in")
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("SQL")
    page.goto("/sql/")
    item = page.get_by_test_id("history").get_by_role("button", name=re.compile(re.escape(first)))
    item.first.click()
    expect(page.get_by_role("textbox", name="SQL query")).to_have_text(first)
    page.get_by_role("button", name="Clear history").click()
    expect(page.get_by_test_id("history")).to_have_count(0)


def test_the_page_fits_a_narrow_window(page: Page, sales: Path) -> None:
    page.set_viewport_size({"width": 420, "height": 800})
    open_sql(page, GROUP_BY)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("5 rows")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
