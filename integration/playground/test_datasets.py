"""The Datasets page in a real browser against a real `platform up`: uploading through the page
(progress, pause, resume across a reload, cancel, the server's errors), the live list, one
dataset's page, delete. DuckDB reading the same generated file is the oracle for what lands."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import httpx
from playwright.sync_api import Page, Request, Route, expect
from ui_browser import PARTS_ROUTE, UIPlatform, choose_file, upload_item, write_csv


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def duck(sql: str, path: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect() as con:
        return con.execute(sql.replace("FILE", f"read_csv('{path}')")).fetchall()


def js_text(value: Any) -> str:
    """How the grid writes a value DuckDB returns (JavaScript prints 149.0 as 149)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parts_of(size: int, part: int) -> int:
    return -(-size // part)


def rest_upload(client: httpx.Client, name: str, data: bytes, filename: str = "x.csv") -> None:
    """Put a dataset into the lake over REST (setup for tests of the pages that show it)."""
    r = client.post(
        "/api/lake/uploads", json={"name": name, "size": len(data), "filename": filename}
    )
    r.raise_for_status()
    up = r.json()
    sha = hashlib.sha256(data).hexdigest()
    client.put(
        f"/api/lake/uploads/{up['id']}/parts/0", content=data, headers={"x-content-sha256": sha}
    ).raise_for_status()
    client.post(f"/api/lake/uploads/{up['id']}/complete").raise_for_status()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = client.get(f"/api/lake/uploads/{up['id']}").json()
        if s["state"] == "committed":
            return
        assert s["state"] == "converting", s
        time.sleep(0.1)
    raise AssertionError(f"upload of {name} did not commit")


def query(client: httpx.Client, sql: str) -> list[list[Any]]:
    r = client.post("/api/lake/query", json={"sql": sql})
    r.raise_for_status()
    return r.json()["rows"]  # type: ignore[no-any-return]


def watch_progress(page: Page) -> None:
    """Record every value the upload's progress bar takes (read back with `progress_values`)."""
    page.evaluate(
        """() => {
      window.__progress = [];
      const seen = (el) => window.__progress.push(Number(el.getAttribute('value')));
      new MutationObserver((records) => {
        for (const r of records) {
          if (r.type === 'attributes' && r.target.matches('[data-testid=upload-progress]')) seen(r.target);
          for (const n of r.addedNodes || []) {
            if (n.nodeType === 1) n.querySelectorAll('[data-testid=upload-progress]').forEach(seen);
          }
        }
      }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['value']});
    }"""
    )


def test_a_csv_uploaded_through_the_page_lists_with_duckdbs_count_and_first_rows(
    page: Page, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "sales.csv", 60_000, seed=14)
    size = path.stat().st_size
    part_kib = 256
    parts = parts_of(size, part_kib * 1024)
    assert parts >= 6, parts
    name = unique("sales")
    puts: list[str] = []

    def count(r: Request) -> None:
        if r.method == "PUT" and PARTS_ROUTE.search(r.url):
            puts.append(r.url)

    page.on("request", count)

    page.goto("/datasets/")
    watch_progress(page)
    choose_file(page, path, name, part_kib)
    item = upload_item(page, name)
    expect(item).to_have_attribute("data-phase", "committed", timeout=30_000)
    expect(item.get_by_test_id("upload-numbers")).to_contain_text(f"part {parts} of {parts}")
    progress = item.get_by_role("progressbar")
    expect(progress).to_have_attribute("value", str(size))
    expect(progress).to_have_attribute("max", str(size))
    assert len(puts) == parts

    # The bar moved: many distinct values on the way, never backwards, ending at the size.
    values: list[float] = page.evaluate("window.__progress")
    assert values[-1] == size
    between = sorted({v for v in values if 0 < v < size})
    assert len(between) >= parts - 1, values
    assert values == sorted(values), values

    (count,) = duck("SELECT count(*) FROM FILE", path)[0]
    row = page.get_by_test_id("datasets").locator(f'tr[data-name="{name}"]')
    expect(row.get_by_test_id("rows")).to_have_text(f"{count:,}")

    row.get_by_role("link", name=name).click()
    expect(page).to_have_url(re.compile(rf"/datasets/view/\?name={name}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_test_id("fact-rows")).to_have_text(f"{count:,}")
    schema = page.get_by_test_id("schema")
    expect(schema.locator("tbody tr td:first-child")).to_have_text(
        ["id", "label", "amount", "ratio"]
    )

    first = duck("SELECT * FROM FILE LIMIT 5", path)
    grid = page.get_by_role("region", name=f"First rows of {name}")
    for i, want in enumerate(first):
        cells = grid.locator(f'tr[aria-rowindex="{i + 2}"] td')
        expect(cells).to_have_text([js_text(v) for v in want])
    sql = f"SELECT * FROM {name} LIMIT 100"
    expect(page.get_by_role("link", name="Query in SQL")).to_have_attribute(
        "href", "/sql/?q=" + quote(sql, safe="-_.!~*'()")
    )


def test_an_upload_cut_off_resumes_after_a_reload_sending_only_the_missing_parts(
    page: Page, ui_platform: UIPlatform, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "orders.csv", 40_000, seed=7)
    size = path.stat().st_size
    part = 128 * 1024
    parts = parts_of(size, part)
    assert parts >= 8, parts
    name = unique("orders")
    let_through = 3

    # The first parts go through; then the network "drops" every part request.
    passed: list[int] = []

    def cut(route: Route) -> None:
        if len(passed) < let_through:
            passed.append(int(route.request.url.rsplit("/", 1)[1]))
            route.continue_()
        else:
            route.abort("aborted")

    page.goto("/datasets/")
    page.route(PARTS_ROUTE, cut)
    choose_file(page, path, name, part // 1024)
    item = upload_item(page, name)
    expect(item).to_have_attribute("data-phase", "paused")
    expect(item.get_by_test_id("upload-error")).to_contain_text("cut off")
    page.unroute(PARTS_ROUTE)

    with ui_platform.client() as client:
        (status,) = [u for u in client.get("/api/lake/uploads").json() if u["name"] == name]
    have = set(status["received"])
    assert have == set(passed)
    assert len(have) == let_through

    page.reload()
    unfinished = page.get_by_test_id("unfinished").and_(page.locator(f'[data-name="{name}"]'))
    expect(unfinished).to_contain_text(f"{let_through} of {parts} parts")
    picker = unfinished.get_by_label("Choose orders.csv again to resume")

    # A different file of the same name and size is refused (its first part differs).
    impostor = tmp_path / "other" / "orders.csv"
    impostor.parent.mkdir()
    data = bytearray(path.read_bytes())
    data[40] = ord("9") if data[40] != ord("9") else ord("8")
    impostor.write_bytes(bytes(data))
    picker.set_input_files(impostor)
    expect(unfinished.get_by_test_id("unfinished-error")).to_contain_text("different content")
    # ...and a file of another size says so.
    shorter = tmp_path / "short" / "orders.csv"
    shorter.parent.mkdir()
    shorter.write_bytes(path.read_bytes()[:-10])
    picker.set_input_files(shorter)
    expect(unfinished.get_by_test_id("unfinished-error")).to_contain_text("different file")

    sent: list[int] = []

    def count(r: Request) -> None:
        if r.method == "PUT" and PARTS_ROUTE.search(r.url):
            sent.append(int(r.url.rsplit("/", 1)[1]))

    page.on("request", count)
    picker.set_input_files(path)
    item = upload_item(page, name)
    expect(item).to_have_attribute("data-phase", "committed", timeout=30_000)
    expect(unfinished).to_have_count(0)
    assert sorted(sent) == sorted(set(range(parts)) - have)

    want = duck("SELECT count(*), sum(amount), sum(ratio), max(label) FROM FILE", path)[0]
    with ui_platform.client() as client:
        got = query(client, f"SELECT count(*), sum(amount), sum(ratio), max(label) FROM {name}")[0]
    assert tuple(got) == want
    # Finished uploads are forgotten: the page offers nothing to resume after another reload.
    page.reload()
    expect(page.get_by_test_id("datasets").locator(f'tr[data-name="{name}"]')).to_be_visible()
    expect(page.get_by_test_id("unfinished")).to_have_count(0)


def test_pause_resume_and_cancel_an_upload(
    page: Page, ui_platform: UIPlatform, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "slow.csv", 30_000, seed=3)
    name = unique("slow")
    # A slow uplink (~256 KiB/s) so there is time to press the buttons mid-upload.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 256 * 1024},
    )
    page.goto("/datasets/")
    choose_file(page, path, name, 64)
    item = upload_item(page, name)
    expect(item.get_by_test_id("upload-numbers")).to_contain_text(re.compile(r"part [1-9]\d* of"))
    item.get_by_role("button", name="Pause").click()
    expect(item).to_have_attribute("data-phase", "paused")
    numbers = item.get_by_test_id("upload-numbers").inner_text()
    # Paused means paused: the server's count of parts stays where it is.
    with ui_platform.client() as client:
        (up,) = [u for u in client.get("/api/lake/uploads").json() if u["name"] == name]
        again = client.get(f"/api/lake/uploads/{up['id']}").json()
    assert again["received"] == up["received"]
    assert up["state"] == "open"
    expect(item.get_by_test_id("upload-numbers")).to_have_text(numbers)

    item.get_by_role("button", name="Resume").click()
    expect(item).to_have_attribute("data-phase", "uploading")
    expect(item.get_by_test_id("upload-numbers")).not_to_have_text(numbers)
    item.get_by_role("button", name="Cancel upload").click()
    expect(item).to_have_attribute("data-phase", "cancelled")
    with ui_platform.client() as client:
        expect_gone = client.get(f"/api/lake/uploads/{up['id']}")
        assert expect_gone.status_code == 404, expect_gone.text
        assert client.get(f"/api/lake/datasets/{name}").status_code == 404
    page.reload()
    expect(page.get_by_test_id("unfinished")).to_have_count(0)


def test_a_bad_csv_shows_the_servers_error_on_its_upload(
    page: Page, ui_platform: UIPlatform, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    rows = ["a,b"] + [f"{i},{i * 2}" for i in range(200)] + ["1,2,3,4,5"]
    path.write_text("\n".join(rows) + "\n")
    name = unique("broken")
    page.goto("/datasets/")
    choose_file(page, path, name, 1)
    item = upload_item(page, name)
    expect(item).to_have_attribute("data-phase", "failed")
    with ui_platform.client() as client:
        (up,) = [u for u in client.get("/api/lake/uploads").json() if u["name"] == name]
        assert client.get(f"/api/lake/datasets/{name}").status_code == 404
    assert up["state"] == "failed"
    assert up["error"]
    expect(item.get_by_test_id("upload-error")).to_have_text(up["error"])


def test_a_name_the_lake_refuses_is_explained_before_uploading(page: Page, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "2024 sales.csv", 10, seed=1)
    page.goto("/datasets/")
    page.get_by_label("Choose a file to upload").set_input_files(path)
    form = page.get_by_role("form", name="New upload")
    name = form.get_by_label("Dataset name")
    expect(name).to_have_value("_2024_sales")  # made from the file name, valid
    expect(form.get_by_label("Format")).to_have_value("csv")
    upload = form.get_by_role("button", name="Upload")
    expect(upload).to_be_enabled()
    for bad, why in [
        ("9lives", "start with a letter"),
        ("a-b", "only letters"),
        ("x" * 64, "at most 63"),
    ]:
        name.fill(bad)
        expect(form.get_by_test_id("name-rule")).to_contain_text(why)
        expect(name).to_have_attribute("aria-invalid", "true")
        expect(upload).to_be_disabled()


def test_delete_asks_for_the_name_then_removes_the_dataset(
    page: Page, ui_platform: UIPlatform
) -> None:
    name = unique("doomed")
    with ui_platform.client() as client:
        rest_upload(client, name, b"x,y\n1,2\n3,4\n")
    page.goto(f"/datasets/view/?name={name}")
    expect(page.get_by_test_id("fact-rows")).to_have_text("2")
    page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog", name=f"Delete {name}?")
    expect(dialog).to_be_visible()
    confirm = dialog.get_by_role("button", name=f"Delete {name}")
    expect(confirm).to_be_disabled()
    dialog.get_by_label(f"Type {name} to confirm").fill(name[:-1])
    expect(confirm).to_be_disabled()
    # Escape keeps the dataset.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Delete…").click()
    dialog.get_by_label(f"Type {name} to confirm").fill(name)
    confirm.click()
    expect(page).to_have_url(re.compile(r"/datasets/$"))
    expect(page.get_by_test_id("datasets").locator(f'tr[data-name="{name}"]')).to_have_count(0)
    with ui_platform.client() as client:
        assert client.get(f"/api/lake/datasets/{name}").status_code == 404


def test_the_page_fits_a_narrow_window(page: Page, ui_platform: UIPlatform) -> None:
    name = unique("narrow")
    with ui_platform.client() as client:
        rest_upload(client, name, b"k,v\n1,a\n2,b\n3,c\n")
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto("/datasets/")
    expect(page.get_by_label("Choose a file to upload")).to_be_visible()
    row = page.get_by_test_id("datasets").locator(f'tr[data-name="{name}"]')
    expect(row.get_by_test_id("rows")).to_have_text("3")
    # Nothing wider than the window: the table scrolls inside its own box if it must.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.goto(f"/datasets/view/?name={name}")
    expect(page.get_by_test_id("fact-rows")).to_have_text("3")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_the_list_is_live(page: Page, ui_platform: UIPlatform) -> None:
    """A dataset uploaded elsewhere appears without a reload (the catalog's Elkyn mirror)."""
    page.goto("/datasets/")
    expect(page.get_by_test_id("live")).to_have_text("live")
    name = unique("arrives")
    with ui_platform.client() as client:
        rest_upload(client, name, b"k,v\n1,a\n2,b\n")
    row = page.get_by_test_id("datasets").locator(f'tr[data-name="{name}"]')
    expect(row.get_by_test_id("rows")).to_have_text("2")
