"""The /worker page: browser tabs lent to elytra's browser backend, in headless Chromium against
one real `platform up` with ELYTRA_BACKEND=browser (shared by every test here).

Each tab signs in (dev mode), pastes a worker token minted at POST /api/workers/tokens and
presses "Lend this tab"; its Web Workers then run the jobs' browser tasks. Every result is
re-run on the local pool and compared (ELYTRA_BROWSER_VERIFY_FRACTION=1.0), so a tab whose
results differ is banned. The wrong tab here is not a switch in the page: the test rewrites
the chunk the tab fetches (Playwright routing), so the tab honestly computes a wrong answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect
from ui_browser import UIPlatform, sign_in
from worker_tabs import (
    AGGREGATE,
    AGGREGATE_SQL,
    CHUNK_ROUTE,
    TABS,
    TOP_K,
    TOP_K_SQL,
    duck,
    lend,
    result,
    run_job,
    same_rows,
    stats,
    submit,
    worker_token,
)

from elytra.browser import evaluate_steps

pytestmark = pytest.mark.timeout(360)  # a shared machine: platform up, Chromium, jobs


def test_three_tabs_run_an_aggregate_and_a_top_k_equal_to_duckdb(
    tabs: BrowserContext, worker_platform: UIPlatform, sales: Path
) -> None:
    token = worker_token(worker_platform)
    pages = [lend(tabs, token) for _ in range(TABS)]
    same_rows(run_job(worker_platform, AGGREGATE), duck(sales, AGGREGATE_SQL))
    same_rows(run_job(worker_platform, TOP_K), duck(sales, TOP_K_SQL))
    done = [stats(p) for p in pages]
    # the browsers did the tasks: their results were accepted (and checked against re-runs)
    assert sum(s["tasksDone"] for s in done) >= 8, done
    assert sum(1 for s in done if s["tasksDone"] > 0) >= 2, done
    assert all(s["rejected"] == 0 and s["errors"] == 0 and not s["banned"] for s in done), done
    assert all(s["rowsIn"] > 0 or s["tasksDone"] == 0 for s in done)
    expect(pages[0].get_by_test_id("worker-tasks-done")).not_to_have_text("0")


def test_a_tab_closed_mid_task_loses_nothing(
    tabs: BrowserContext, worker_platform: UIPlatform, sales: Path
) -> None:
    token = worker_token(worker_platform, "closing")
    held: list[Route] = []

    def hold(page: Page) -> None:
        # the doomed tab's chunk requests never answer: its tasks stay in flight
        page.route(CHUNK_ROUTE, lambda route: held.append(route))

    doomed = lend(tabs, token, hold)
    job = submit(worker_platform, AGGREGATE)
    deadline = time.monotonic() + 60
    while not held:
        assert time.monotonic() < deadline, "the tab took no task"
        doomed.wait_for_timeout(100)
    doomed.close()  # mid-task: it holds leased tasks and has answered none
    survivor = lend(tabs, token)
    got = result(worker_platform, job)
    same_rows(got, duck(sales, AGGREGATE_SQL))
    assert stats(survivor)["tasksDone"] > 0


def _tampered(body: bytes) -> bytes:
    """The chunk with every amount raised by 1: what a dishonest source would serve."""
    table = pa.ipc.open_stream(body).read_all()
    if "amount" in table.column_names:
        i = table.column_names.index("amount")
        table = table.set_column(i, "amount", pc.add(table.column("amount"), 1.0))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def test_a_tab_with_wrong_results_is_caught_and_banned(
    tabs: BrowserContext, worker_platform: UIPlatform, sales: Path
) -> None:
    token = worker_token(worker_platform, "liar")
    tampered: list[str] = []

    def lie(route: Route) -> None:
        response = route.fetch()
        if response.status != 200:  # a lease that ended: its 404 as it is
            route.fulfill(response=response)
            return
        tampered.append(route.request.url)
        route.fulfill(response=response, body=_tampered(response.body()))

    liar = lend(tabs, token, lambda page: page.route(CHUNK_ROUTE, lie))
    job = submit(worker_platform, AGGREGATE)
    expect(liar.get_by_test_id("worker-banned")).to_be_visible(timeout=90_000)
    assert tampered, "the tab fetched no chunk"
    assert stats(liar)["banned"] is True
    # An honest tab takes the tasks still waiting (lent only now, so the liar got the first
    # ones); without it they waited out the platform's minute for a browser before the local
    # pool ran them (the test took 64 s).
    lend(tabs, worker_token(worker_platform, "honest"))
    # the liar's results are run again on the local pool: the job still equals DuckDB
    same_rows(result(worker_platform, job), duck(sales, AGGREGATE_SQL))


def test_a_user_token_is_refused_with_a_clear_message(
    tabs: BrowserContext, worker_platform: UIPlatform
) -> None:
    page = sign_in(tabs.new_page(), "/worker/")
    page.get_by_label("Worker token").fill(worker_platform.token())
    page.get_by_role("button", name="Lend this tab").click()
    expect(page.get_by_test_id("worker-error")).to_contain_text("not a worker token")
    expect(page.get_by_test_id("worker-state")).to_have_attribute("data-state", "refused")
    assert stats(page)["state"] == "idle"  # nothing connected


def test_the_tab_computes_what_the_reference_worker_computes(
    tabs: BrowserContext, worker_platform: UIPlatform
) -> None:
    """The page's engine against elytra's evaluate_steps on the same steps and rows, compared
    as the backend compares a verified result (a difference would get an honest tab banned)."""
    import base64
    import datetime as dt

    from elytra.browser.compare import same_result
    from elytra.browser.tasks import schema_to_b64
    from platform_core.expr import parse
    from platform_core.expr.serde import to_dict

    nan = float("nan")
    rows = pa.table(
        {
            "i": pa.array([3, -1, None, 7, 3, 0, 12, -5], pa.int64()),
            "k": pa.array([1, 2, 1, None, 2, 1, 3, 3], pa.int32()),
            "f": [1.5, -0.0, nan, None, 0.0, 2.25, nan, -3.5],
            "s": ["b", None, "a", "é", "b", "Z", "a", "b"],
            "t": [True, False, None, True, True, False, True, None],
            "d": pa.array([dt.date(2024, 1, i + 1) for i in range(8)], pa.date32()),
            "ts": pa.array([dt.datetime(2024, 5, 1, i) for i in range(8)], pa.timestamp("us")),
        }
    )

    def e(text: str) -> Any:
        return to_dict(parse(text))

    def aggs(*texts: str) -> list[dict[str, Any]]:
        return [{"name": f"c{i}", "agg": e(t)} for i, t in enumerate(texts)]

    cases: list[list[dict[str, Any]]] = [
        [
            {"op": "filter", "expr": e("f > 0 OR s IS NULL OR i % 2 = 1")},
            {"op": "map", "columns": [["y", e("i * 2 + k")], ["s", e("upper(s) || '!'")]]},
            {"op": "project", "columns": [["out_s", "s"], ["y", "y"], ["d", "d"], ["t", "t"]]},
        ],
        [
            {
                "op": "partial_aggregate",
                "group_by": ["s"],
                "aggregates": aggs(
                    "count(*)",
                    "count(f)",
                    "sum(i)",
                    "sum(f)",
                    "avg(k)",
                    "avg(f)",
                    "min(f)",
                    "max(f)",
                    "min(s)",
                    "max(d)",
                    "max(ts)",
                    "min(i)",
                ),
            }
        ],
        [{"op": "partial_aggregate", "group_by": ["f", "k"], "aggregates": aggs("count(*)")}],
        [{"op": "partial_aggregate", "group_by": ["t"], "aggregates": aggs("sum(i * k)")}],
        [
            {"op": "filter", "expr": e("i > 100")},
            {"op": "partial_aggregate", "group_by": [], "aggregates": aggs("count(*)", "sum(i)")},
        ],
        [
            {
                "op": "top_k",
                "keys": [
                    {"column": "f", "descending": True, "nulls_first": True},
                    {"column": "s", "descending": False, "nulls_first": False},
                ],
                "n": 5,
            }
        ],
        [
            {
                "op": "top_k",
                "keys": [{"column": "k", "descending": False, "nulls_first": False}],
                "n": 4,
            }
        ],
        [{"op": "limit", "n": 3, "offset": 2}],
    ]
    page = sign_in(tabs.new_page(), "/worker/")
    page.wait_for_function("window.elytraWorker !== undefined")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    chunk = base64.b64encode(sink.getvalue().to_pybytes()).decode()
    for steps in cases:
        want = evaluate_steps(steps, rows, None)
        got_b64 = page.evaluate(
            "([steps, schema, chunk]) => window.elytraWorker.run(steps, schema, chunk)",
            [steps, schema_to_b64(want.schema), chunk],
        )
        got = pa.ipc.open_stream(base64.b64decode(got_b64)).read_all()
        assert got.schema == want.schema, steps
        assert same_result(got, want) is None, (steps, got.to_pylist(), want.to_pylist())


def test_a_hidden_tab_pauses_and_comes_back(
    tabs: BrowserContext, worker_platform: UIPlatform
) -> None:
    page = lend(tabs, worker_token(worker_platform, "hiding"))
    hide = """(hidden) => {
        Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    state = page.get_by_test_id("worker-state")
    page.evaluate(hide, True)
    expect(state).to_have_attribute("data-state", "paused")
    page.evaluate(hide, False)
    expect(state).to_have_attribute("data-state", "connected")
    page.get_by_label("Pause when this tab is hidden").uncheck()
    page.evaluate(hide, True)
    page.wait_for_timeout(500)
    expect(state).to_have_attribute("data-state", "connected")  # the user chose to keep lending


def test_a_dropped_connection_reconnects_with_backoff(
    tabs: BrowserContext, worker_platform: UIPlatform
) -> None:
    from playwright.sync_api import WebSocketRoute

    attempts: list[WebSocketRoute] = []

    def flaky(ws: WebSocketRoute) -> None:
        attempts.append(ws)
        if len(attempts) <= 2:  # the first two connections drop at once
            ws.close(code=1011, reason="dropped by the test")
        else:
            ws.connect_to_server()

    page = lend(
        tabs,
        worker_token(worker_platform, "flaky"),
        lambda p: p.route_web_socket("**/api/workers/ws*", flaky),
    )
    assert len(attempts) == 3
    assert stats(page)["reconnects"] == 2
