"""The Datasets page's upload sends its parts from Web Workers, several at once (issue 15,
part 6): parts are held in flight by the test until three are waiting at the same time, the
requests come from Web Workers (`page.on("worker")` fired, and the workers' Resource Timing
holds every part's PUT, the page's none), and the dataset that lands
equals DuckDB's reading of the same file."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import duckdb
from playwright.sync_api import Page, Request, Route, Worker, expect
from ui_browser import PARTS_ROUTE, UIPlatform, choose_file, upload_item, write_csv

PARALLEL = 3  # lib/upload.ts PARALLEL_PARTS and lib/upload-workers/pool.ts MAX_PART_WORKERS


RESOURCES = "() => performance.getEntriesByType('resource').map((e) => e.name)"


def sent_parts(urls: list[str]) -> list[int]:
    """The part numbers among the URLs a global scope (page or worker) requested."""
    return [int(u.rsplit("/", 1)[1]) for u in urls if PARTS_ROUTE.search(u)]


AGG = (
    "SELECT count(*), sum(amount), sum(ratio), min(label), max(label), sum(id * amount), "
    "md5(string_agg(concat_ws('|', id, label, amount, ratio), ',' ORDER BY id)) FROM {}"
)


def test_parts_go_in_parallel_from_web_workers_and_the_dataset_equals_duckdbs(
    page: Page, ui_platform: UIPlatform, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "wide.csv", 40_000, seed=15)
    size = path.stat().st_size
    part = 64 * 1024
    parts = -(-size // part)
    assert parts >= 3 * PARALLEL, parts
    name = f"par_{uuid.uuid4().hex[:8]}"

    workers: list[Worker] = []
    page.on("worker", lambda w: workers.append(w))
    # Every part's PUT, how many were in flight at once (request sent → finished or failed).
    puts: list[Request] = []
    in_flight: set[str] = set()
    most = 0

    def sent(r: Request) -> None:
        nonlocal most
        if r.method == "PUT" and PARTS_ROUTE.search(r.url):
            puts.append(r)
            in_flight.add(r.url)
            most = max(most, len(in_flight))

    def ended(r: Request) -> None:
        in_flight.discard(r.url)

    page.on("request", sent)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)

    # The first parts are held (not answered) until PARALLEL of them wait at once: sent one
    # at a time, the second would never come.
    held: list[Route] = []
    release = False

    def hold(route: Route) -> None:
        if release:
            route.continue_()
        else:
            held.append(route)

    page.goto("/datasets/")
    page.route(PARTS_ROUTE, hold)
    choose_file(page, path, name, part // 1024)
    item = upload_item(page, name)
    for _ in range(300):
        if len(held) >= PARALLEL:
            break
        page.wait_for_timeout(50)
    page.wait_for_timeout(500)  # no more than PARALLEL: the next parts wait for these
    assert len(held) == PARALLEL, [r.request.url for r in held]
    assert sorted(int(r.request.url.rsplit("/", 1)[1]) for r in held) == list(range(PARALLEL))
    expect(item).to_have_attribute("data-phase", "uploading")
    release = True
    for r in held:
        r.continue_()

    expect(item).to_have_attribute("data-phase", "committed", timeout=60_000)
    expect(item.get_by_test_id("upload-numbers")).to_contain_text(f"part {parts} of {parts}")
    expect(item.get_by_role("progressbar")).to_have_attribute("value", str(size))
    page.unroute(PARTS_ROUTE)

    # Each part sent once, PARALLEL at a time, every one by a Web Worker of the page.
    numbers = sorted(int(r.url.rsplit("/", 1)[1]) for r in puts)
    assert numbers == list(range(parts))
    assert most >= PARALLEL, most
    # Playwright ties a dedicated worker's requests to the page's frame, so who sent each PUT
    # is read from the Resource Timing of each global scope: the workers' hold every part, the
    # page's none.
    assert workers, "no Web Worker started"
    assert len(workers) == PARALLEL, [w.url for w in workers]  # one per part held at once
    assert all(w.url.startswith(ui_platform.url) for w in workers), [w.url for w in workers]
    by_workers = sorted(n for w in workers for n in sent_parts(w.evaluate(RESOURCES)))
    assert by_workers == list(range(parts))
    assert all(sent_parts(w.evaluate(RESOURCES)) for w in workers)
    assert sent_parts(page.evaluate(RESOURCES)) == []

    with duckdb.connect() as con:
        want = con.execute(AGG.format(f"read_csv('{path}')")).fetchall()[0]
    with ui_platform.client() as client:
        r = client.post("/api/lake/query", json={"sql": AGG.format(name)})
        r.raise_for_status()
        got: list[Any] = r.json()["rows"][0]
    assert tuple(got) == want
