"""The Datasets page with uploads a demanding user makes: a resume with a file that differs is
refused, an empty file is refused in plain words, the preview shows integers past 2**53
exactly. (Break-test "break14", independent review of issue 14.)"""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.sync_api import Page, Route, expect
from ui_browser import PARTS_ROUTE, BrowserErrors, UIPlatform, choose_file, upload_item, write_csv

from lake import Client


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_resuming_with_a_file_that_differs_after_its_first_part_is_refused(
    page: Page, ui_platform: UIPlatform, tmp_path: Path, browser_errors: BrowserErrors
) -> None:
    # Same name, same size, same first part, different later: matching by the first part only
    # resumed it, and the dataset became half one file and half the other.
    path = write_csv(tmp_path / "orders.csv", 30_000, seed=11)
    part = 64 * 1024
    assert path.stat().st_size > 6 * part
    name = unique("mixed")
    let_through = 3
    passed: list[int] = []

    def cut(route: Route) -> None:
        # By part number, not by arrival: three parts are in flight at once, and under load
        # part 3's request reached the route before part 2's (a CI run let 0, 1, 3 through).
        n = int(route.request.url.rsplit("/", 1)[1])
        if n < let_through:
            passed.append(n)
            route.continue_()
        else:
            route.abort("connectionreset")

    browser_errors.allowed.append("request failed: PUT")
    page.goto("/datasets/")
    page.route(PARTS_ROUTE, cut)
    choose_file(page, path, name, part // 1024)
    expect(upload_item(page, name)).to_have_attribute("data-phase", "paused")
    page.unroute(PARTS_ROUTE)
    assert sorted(passed) == [0, 1, 2]

    # The impostor: one digit changed in part 2 (the server holds part 2 of the original).
    impostor = tmp_path / "other" / "orders.csv"
    impostor.parent.mkdir()
    data = bytearray(path.read_bytes())
    at = 2 * part + 100
    data[at] = ord("7") if data[at] != ord("7") else ord("6")
    impostor.write_bytes(bytes(data))

    page.reload()
    unfinished = page.get_by_test_id("unfinished").and_(page.locator(f'[data-name="{name}"]'))
    unfinished.get_by_label("Choose orders.csv again to resume").set_input_files(impostor)
    expect(unfinished.get_by_test_id("unfinished-error")).to_contain_text("part 3 differs")
    expect(upload_item(page, name)).to_have_count(0)  # nothing was resumed
    # Dropped on the page (not on the unfinished upload) it is not taken for that upload either.
    page.get_by_label("Choose a file to upload").set_input_files(impostor)
    expect(page.get_by_role("form", name="New upload")).to_be_visible()


def test_the_preview_shows_integers_past_2_to_the_53_exactly(
    page: Page, ui_platform: UIPlatform, tmp_path: Path
) -> None:
    # The preview came as JSON, which JavaScript reads as doubles: 9007199254740993 showed as
    # 9007199254740992, and a timestamp in another spelling than the SQL page's.
    name = unique("exact")
    path = tmp_path / "exact.csv"
    path.write_text("id,big,at\n1,9007199254740993,2024-01-02 03:04:05.123456\n")
    with Client(ui_platform.url, ui_platform.token()) as lake:
        lake.upload(path, name)
    page.goto(f"/datasets/view/?name={name}")
    grid = page.get_by_role("region", name=f"First rows of {name}")
    row = grid.locator("tbody tr[aria-rowindex]").first
    expect(row).to_be_visible()
    assert row.locator("td").all_inner_texts() == [
        "1",
        "9007199254740993",
        "2024-01-02 03:04:05.123456",
    ]


def test_an_empty_file_is_refused_in_the_page_in_plain_words(
    page: Page, tmp_path: Path, browser_errors: BrowserErrors
) -> None:
    # It was sent, and the server's validation came back as "body.size: Input should be
    # greater than 0" under "0 B of 0 B (0%) · part 0 of 1".
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    page.goto("/datasets/")
    sent: list[str] = []
    page.on(
        "request",
        lambda r: r.method == "POST" and "/api/lake/uploads" in r.url and sent.append(r.url),
    )
    page.get_by_label("Choose a file to upload").set_input_files(empty)
    expect(page.get_by_test_id("upload-choose-error")).to_contain_text("empty.csv is empty")
    expect(page.get_by_role("form", name="New upload")).to_have_count(0)
    assert not sent
