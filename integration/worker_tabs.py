"""Helpers of the /worker page's browser tests: the jobs they run, lending a tab, reading its
figures, and DuckDB's answer to compare with (fixtures: integration/playground/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from ui_browser import UIPlatform, sign_in

TABS = 3


def browser_backend_env(chunk_bytes: int, **extra: str) -> dict[str, str]:
    """`platform up`'s environment for the browser backend: one local worker, a task per chunk
    of `chunk_bytes`, and a minute for a browser to take a task before the local pool does."""
    return {
        "ELYTRA_BACKEND": "browser",
        "ELYTRA_WORKERS": "1",
        "ELYTRA_BROWSER_WAIT_SECONDS": "60",
        "LAKE_CHUNK_BYTES": str(chunk_bytes),
        "ELYTRA_TASK_BYTES": "1",
        **extra,
    }


ROWS = 40_000
CHUNK_ROUTE = "**/api/workers/chunks/**"

AGGREGATE = {
    "source": {"dataset": "sales"},
    "steps": [
        {"filter": "amount > 100 AND id % 7 <> 3"},
        {
            "group_by": ["grp"],
            "agg": [
                "count(*) AS n",
                "sum(id) AS total",
                "avg(amount) AS mean",
                "min(amount) AS lo",
                "max(amount) AS hi",
            ],
        },
        {"sort": ["grp"]},
    ],
}
AGGREGATE_SQL = (
    "SELECT grp, count(*) AS n, sum(id) AS total, avg(amount) AS mean, min(amount) AS lo, "
    "max(amount) AS hi FROM sales WHERE amount > 100 AND id % 7 <> 3 GROUP BY grp ORDER BY grp"
)
TOP_K = {
    "source": {"dataset": "sales"},
    "steps": [{"filter": "grp <> 2"}, {"top_k": 25, "by": ["amount DESC", "id"]}],
}
TOP_K_SQL = "SELECT * FROM sales WHERE grp <> 2 ORDER BY amount DESC, id LIMIT 25"


def worker_token(platform: UIPlatform, sub: str = "tab") -> str:
    r = httpx.post(
        f"{platform.url}/api/workers/tokens",
        json={"sub": sub},
        params={"auth": platform.token()},
        timeout=60,
    )
    r.raise_for_status()
    return str(r.json()["token"])


def lend(ctx: BrowserContext, token: str, before: Callable[[Page], None] | None = None) -> Page:
    """A new tab on /worker, lent with `token`; returns once it is connected."""
    page = ctx.new_page()
    if before is not None:
        before(page)
    sign_in(page, "/worker/")
    page.get_by_label("Worker token").fill(token)
    page.get_by_role("button", name="Lend this tab").click()
    state = page.get_by_test_id("worker-state")
    expect(state).not_to_have_attribute("data-state", "checking")
    if state.get_attribute("data-state") == "refused":  # say why (the self-check's words)
        pytest.fail(page.get_by_test_id("worker-error").inner_text())
    expect(state).to_have_attribute("data-state", "connected")
    expect(page.get_by_test_id("worker-selfcheck")).to_contain_text("passed")
    return page


def stats(page: Page) -> dict[str, Any]:
    return dict(page.evaluate("window.elytraWorker.stats()"))


def submit(platform: UIPlatform, pipeline: dict[str, Any]) -> str:
    with platform.client() as http:
        r = http.post("/api/jobs", json={"pipeline": pipeline})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])


def result(platform: UIPlatform, job: str, timeout: float = 240) -> list[Any]:
    """The rows of `job` once it succeeded."""
    with platform.client() as http:
        deadline = time.monotonic() + timeout
        while (record := http.get(f"/api/jobs/{job}").json())["state"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, record["state"]
            time.sleep(0.3)
        assert record["state"] == "succeeded", record
        return list(http.get(f"/api/jobs/{job}/result").json()["rows"])


def run_job(platform: UIPlatform, pipeline: dict[str, Any]) -> list[Any]:
    return result(platform, submit(platform, pipeline))


def duck(csv: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_csv('{csv}')")
    return [tuple(r) for r in con.execute(sql).fetchall()]


def same_rows(got: list[Any], want: list[tuple[Any, ...]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w)
        for a, b in zip(g, w, strict=True):
            if isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9)
            else:
                assert a == b
