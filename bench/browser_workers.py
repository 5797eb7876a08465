"""Browser workers: tasks/s and MB/s of one lent tab against one local-pool worker.

    .venv/bin/python bench/browser_workers.py [--quick] [--runs N] [--rows N]

Two real `platform up`s on this machine hold the same dataset (same rows, same chunking,
`ELYTRA_TASK_BYTES=1`: one task per chunk): one with `ELYTRA_BACKEND=browser` and no trusted
re-runs (`ELYTRA_BROWSER_VERIFY_FRACTION=0`), where one headless Chromium tab lends itself at
/worker with one Web Worker; one with the local pool of one worker (`ELYTRA_WORKERS=1`). The
same aggregate pipeline runs `--runs` times on each (after a warm-up run); per run, tasks/s
and MB/s (chunk bytes read per second, as the lake stores them) over the job's wall time. The
tab's own figures give the overhead per task: the chunk fetch, the compute, the result's
round trip to `accepted`, and the lease turnaround (a result sent to the next task handed).
Medians are printed as a table, with the ratios tab / local.

Needs Chromium and Playwright (the `test` dependency group); without them it says so and
exits 0 (the bench-quick session runs every script). Not on the shared harness: the engines
here are servers and a browser, not functions a child process can time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "integration"))

PIPELINE = {
    "source": {"dataset": "sales"},
    "steps": [
        {"filter": "amount > 100"},
        {"group_by": ["grp"], "agg": ["count(*) AS n", "sum(id) AS total", "avg(amount) AS mean"]},
        {"sort": ["grp"]},
    ],
}


def _start(run_dir: Path, env: dict[str, str]) -> Any:
    from servers import command, launch

    home = run_dir / "home"
    return launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)], run_dir, env
    )


def _admin(url: str) -> str:
    import httpx

    r = httpx.post(f"{url}/api/login", json={}, timeout=60)
    r.raise_for_status()
    return str(r.json()["token"])


def _upload(url: str, csv: Path) -> tuple[int, int]:
    """Upload the dataset; (chunks, bytes the lake stores)."""
    import httpx

    from lake import Client

    token = _admin(url)
    with Client(url, token) as client:
        client.upload(csv, "sales", part_size=1 << 20)
    info = httpx.get(f"{url}/api/lake/datasets/sales", params={"auth": token}, timeout=60).json()
    chunks = info.get("chunks")
    n = len(chunks) if isinstance(chunks, list) else int(chunks or 0)
    size = int(info.get("bytes") or info.get("size") or 0)
    return n, size


def _job(url: str) -> float:
    import httpx

    token = _admin(url)
    with httpx.Client(base_url=url, params={"auth": token}, timeout=120) as http:
        start = time.perf_counter()
        r = http.post("/api/jobs", json={"pipeline": PIPELINE})
        r.raise_for_status()
        job = r.json()["id"]
        while (state := http.get(f"/api/jobs/{job}").json()["state"]) not in (
            "succeeded",
            "failed",
        ):
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        if state != "succeeded":
            raise RuntimeError(f"job {job} {state}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a small dataset, for CI")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=0, help="rows (default 400,000; quick 40,000)")
    parser.add_argument("--fresh", action="store_true", help="accepted for bench-quick (no cache)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/browser_workers.json")
    args = parser.parse_args()
    rows = args.rows or (40_000 if args.quick else 400_000)
    chunk_bytes = 64 * 1024 if args.quick else 256 * 1024
    try:
        import duckdb
        from playwright.sync_api import expect, sync_playwright
        from ui_browser import CHROMIUM_FLAGS, chromium_path
    except ImportError as exc:
        print(f"skipped: {exc} (needs the test dependency group and Chromium)")
        return
    try:
        chromium = chromium_path()
    except BaseException as exc:  # pytest.fail outside pytest
        print(f"skipped: no Chromium ({exc})")
        return

    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        work = Path(tmp)
        csv = work / "sales.csv"
        duckdb.sql(
            f"COPY (SELECT i AS id, i % 5 AS grp, round(i * 0.37 % 1000, 2) AS amount "
            f"FROM range({rows}) t(i)) TO '{csv}' (HEADER)"
        )
        common = {"LAKE_CHUNK_BYTES": str(chunk_bytes), "ELYTRA_TASK_BYTES": "1"}
        browser_env = {
            **common,
            "ELYTRA_BACKEND": "browser",
            "ELYTRA_WORKERS": "1",
            "ELYTRA_BROWSER_WAIT_SECONDS": "600",
            "ELYTRA_BROWSER_VERIFY_FRACTION": "0",
        }
        local_env = {**common, "ELYTRA_WORKERS": "1"}
        browser_server = _start(work / "browser", browser_env)
        local_server = _start(work / "local", local_env)
        try:
            chunks, size = _upload(browser_server.url, csv)
            _upload(local_server.url, csv)
            local = [_job(local_server.url) for _ in range(args.runs + 1)][1:]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
                )
                page = browser.new_page(base_url=browser_server.url)
                page.set_default_timeout(60_000)
                page.goto("/worker/")
                page.get_by_role("button", name="Sign in as admin (dev mode)").click()
                page.wait_for_url(lambda u: "/worker" in u)
                page.get_by_role("button", name="Mint a worker token (24 h)").click()
                expect(page.get_by_label("Worker token")).not_to_have_value("")
                page.get_by_label("Web Workers at most").fill("1")
                page.get_by_label("Pause when this tab is hidden").uncheck()
                page.get_by_role("button", name="Lend this tab").click()
                expect(page.get_by_test_id("worker-state")).to_have_attribute(
                    "data-state", "connected"
                )
                tab = [_job(browser_server.url) for _ in range(args.runs + 1)][1:]
                stats = page.evaluate("window.elytraWorker.stats()")
                browser.close()
        finally:
            browser_server.stop()
            local_server.stop()

    mb = size / 1e6 if size else float(stats["bytesIn"]) / (args.runs + 1) / 1e6
    med = statistics.median
    t_tab, t_local = med(tab), med(local)
    fetch = med([t["fetchMs"] for t in stats["timings"]]) if stats["timings"] else float("nan")
    run = med([t["runMs"] for t in stats["timings"]]) if stats["timings"] else float("nan")
    accept = med(stats["acceptMs"]) if stats["acceptMs"] else float("nan")
    lease = med(stats["leaseMs"]) if stats["leaseMs"] else float("nan")
    result = {
        "rows": rows,
        "chunks": chunks,
        "mb": round(mb, 3),
        "runs": args.runs,
        "tab": {"seconds": t_tab, "tasks_per_s": chunks / t_tab, "mb_per_s": mb / t_tab},
        "local": {"seconds": t_local, "tasks_per_s": chunks / t_local, "mb_per_s": mb / t_local},
        "per_task_ms": {
            "fetch": fetch,
            "compute": run,
            "result_to_accepted": accept,
            "lease": lease,
        },
        "local_ms_per_task": 1000 * t_local / chunks,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"{rows:,} rows in {chunks} chunks ({mb:.2f} MB), medians of {args.runs} runs")
    print("| worker | job s | tasks/s | MB/s |")
    print("|---|---:|---:|---:|")
    for name, key in (("one tab (1 Web Worker)", "tab"), ("one local-pool worker", "local")):
        r = result[key]
        print(f"| {name} | {r['seconds']:.2f} | {r['tasks_per_s']:.1f} | {r['mb_per_s']:.2f} |")
    print(f"tab / local: tasks/s x{t_local / t_tab:.2f}")
    print(
        f"per task in the tab (ms): fetch {fetch:.1f}, compute {run:.1f}, "
        f"result to accepted {accept:.1f}, lease turnaround {lease:.1f}; "
        f"local pool: {result['local_ms_per_task']:.1f} ms per task (whole job / tasks)"
    )


if __name__ == "__main__":
    main()
