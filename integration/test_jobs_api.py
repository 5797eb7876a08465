"""Elytra through the installed `platform up`: /api/jobs end to end, job records over SSE."""

from __future__ import annotations

import io
import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pytest

from lake import Client
from platform_core import PlatformSettings, auth, load_settings
from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]

PIPELINE = {
    "source": {"dataset": "sales"},
    "steps": [
        {"filter": "amount > 100"},
        {"group_by": ["grp"], "agg": ["count(*) AS n", "sum(amount) AS total"]},
        {"sort": ["grp"]},
    ],
}


def _sse_states(url: str, path: str, token: str, seen: list[str], stop: threading.Event) -> None:
    """Follow /db/<path> as an EventSource client would; collect each state it shows."""
    with (
        httpx.Client(timeout=60) as c,
        c.stream(
            "GET",
            f"{url}/db/{path}.json",
            params={"auth": token},
            headers={"accept": "text/event-stream"},
        ) as r,
    ):
        kind = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind in ("put", "patch"):
                ev = json.loads(line[6:])
                data = ev["data"]
                state = data.get("state") if isinstance(data, dict) else None
                if ev["path"] == "/state":
                    state = data
                if state and (not seen or seen[-1] != state):
                    seen.append(state)
                if state in ("succeeded", "failed", "cancelled") or stop.is_set():
                    return


def test_jobs_run_through_the_gateway(
    start_platform: StartPlatform, tmp_path: Path, platform_command: Path
) -> None:
    platform = start_platform(
        free_port(),
        env={"LAKE_CHUNK_BYTES": str(256 * 1024), "ELYTRA_TASK_BYTES": str(256 * 1024)},
    )
    signer = auth.signer(load_settings(PlatformSettings, home=platform.home), create=False)
    alice, bob = signer.issue("alice"), signer.issue("bob")
    admin = signer.issue("ops", admin=True)
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 5 AS grp, round(i * 0.37 % 1000, 2) AS amount "
        f"FROM range(200000) t(i)) TO '{csv}' (HEADER)"
    )
    with Client(platform.url, alice) as client:
        assert client.upload(csv, "sales", part_size=1 << 20)["chunks"] >= 4

    def h(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    with httpx.Client(base_url=platform.url, timeout=60) as http:
        assert http.post("/api/jobs", json={"pipeline": PIPELINE}).status_code == 401
        spec = http.get("/openapi.json").json()
        assert "/api/jobs" in spec["paths"]
        assert "JobModel" in spec["components"]["schemas"]

        r = http.post("/api/jobs", json={"pipeline": PIPELINE}, headers=h(alice))
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["owner"] == "alice"
        seen: list[str] = []
        stop = threading.Event()
        watcher = threading.Thread(
            target=_sse_states, args=(platform.url, f"jobs/{job['id']}", alice, seen, stop)
        )
        watcher.start()
        watcher.join(60)
        stop.set()
        assert seen[-1] == "succeeded", seen
        record = http.get(f"/api/jobs/{job['id']}", headers=h(alice)).json()
        assert record["tasks"]["done"] == record["tasks"]["total"] >= 4
        assert [(record["rows_in"],)] == duckdb.sql(f"SELECT count(*) FROM '{csv}'").fetchall()
        # the owner reads the job (API and Elkyn); another user reads neither
        assert http.get(f"/api/jobs/{job['id']}", headers=h(bob)).status_code == 403
        assert http.get(f"/db/jobs/{job['id']}.json", headers=h(bob)).status_code == 401
        assert http.get(f"/db/jobs/{job['id']}/state.json", headers=h(alice)).json() == "succeeded"
        # bob's rules cannot open /jobs to himself
        loose = {"rules": {".read": True, "jobs": {".read": True}}}
        assert http.put("/db/.settings/rules.json", json=loose, headers=h(admin)).status_code == 200
        assert http.get(f"/db/jobs/{job['id']}.json", headers=h(bob)).status_code == 401

        want = duckdb.sql(
            f"SELECT grp, count(*) AS n, sum(amount) AS total FROM read_csv('{csv}') "
            "WHERE amount > 100 GROUP BY grp ORDER BY grp"
        ).fetchall()
        got = http.get(f"/api/jobs/{job['id']}/result", headers=h(alice)).json()
        # float sums: partial sums per chunk add up in another order than DuckDB's
        assert [(r[0], r[1]) for r in got["rows"]] == [(g, n) for g, n, _ in want]
        assert [r[2] for r in got["rows"]] == pytest.approx([t for _, _, t in want], rel=1e-12)
        arrow = http.get(
            f"/api/jobs/{job['id']}/result", params={"format": "arrow"}, headers=h(alice)
        )
        table = pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all()
        assert table.column("n").to_pylist() == [n for _, n, _ in want]
        csv_text = http.get(
            f"/api/jobs/{job['id']}/result", params={"format": "csv"}, headers=h(alice)
        ).text
        assert csv_text.splitlines()[0] == '"grp","n","total"'

        assert [j["id"] for j in http.get("/api/jobs", headers=h(alice)).json()] == [job["id"]]
        assert http.get("/api/jobs", headers=h(bob)).json() == []
        assert job["id"] in [j["id"] for j in http.get("/api/jobs", headers=h(admin)).json()]

        # bad input: a clear 400 before anything runs, and no server paths
        bad = http.post(
            "/api/jobs", json={"pipeline": {"source": {"dataset": "sale"}}}, headers=h(alice)
        )
        assert bad.status_code == 400
        assert "did you mean" in bad.json()["error"]
        col = {**PIPELINE, "steps": [{"filter": "amount_x > 1"}]}
        bad = http.post("/api/jobs", json={"pipeline": col}, headers=h(alice))
        assert bad.status_code == 400
        assert "amount" in bad.json()["error"]
        path = {"source": {"csv": "/etc/passwd"}}
        bad = http.post("/api/jobs", json={"pipeline": path}, headers=h(alice))
        assert bad.status_code == 400
        assert "server paths" in bad.json()["error"]
        assert http.post("/api/jobs", json={"pipeline": "x"}, headers=h(alice)).status_code == 400

        # write: the rows become a dataset of alice's; bob cannot add a version to it
        w = http.post(
            "/api/jobs", json={"pipeline": PIPELINE, "write": "alice_totals"}, headers=h(alice)
        ).json()
        for _ in range(300):
            w = http.get(f"/api/jobs/{w['id']}", headers=h(alice)).json()
            if w["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        assert w["state"] == "succeeded", w
        assert w["result"]["dataset"] == "alice_totals"
        assert w["result"]["version"] == 1
        made = http.get("/api/lake/datasets/alice_totals", headers=h(alice)).json()
        assert made["owner"] == "alice"
        assert made["rows"] == len(want)
        denied = http.post(
            "/api/jobs", json={"pipeline": PIPELINE, "write": "alice_totals"}, headers=h(bob)
        )
        assert denied.status_code == 403
    out = subprocess.run(
        [str(platform_command), "elytra", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout
