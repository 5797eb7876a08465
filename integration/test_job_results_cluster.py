"""A stored job result served by every platform of a cluster: the platform that ran the job
holds it on its disk (its record says which), the others forward the request to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
from jobs_helpers import wait_job
from platform_cluster import Cluster, wait_for

from lake import Client


def test_any_platform_serves_a_result_the_holder_keeps(
    platform_cluster: Cluster, tmp_path: Path
) -> None:
    a, b, c = platform_cluster.urls
    csv = tmp_path / "res.csv"
    duckdb.sql(f"COPY (SELECT i AS id, i % 13 AS grp FROM range(30000) t(i)) TO '{csv}' (HEADER)")
    alice = platform_cluster.user("alice")
    with Client(c, alice["authorization"].split()[1]) as client:
        client.upload(csv, "results_everywhere")
    pipeline: dict[str, Any] = {
        "source": {"dataset": "results_everywhere"},
        "steps": [{"filter": "grp = 3"}, {"sort": ["id"]}],
    }
    want = duckdb.sql(f"SELECT id, grp FROM read_csv('{csv}') WHERE grp = 3 ORDER BY id").fetchall()
    with httpx.Client(timeout=60) as http:
        r = http.post(f"{c}/api/jobs", json={"pipeline": pipeline}, headers=alice)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        with httpx.Client(base_url=c, timeout=60) as on_c:
            job = wait_job(on_c, job_id, alice)
        assert job["state"] == "succeeded", job
        holder = job["result"]["node"]
        assert holder  # the record names the platform that holds the rows
        stored = [h / "results" / "elytra" / job_id for h in platform_cluster.homes]
        assert [s.is_dir() for s in stored] == [False, False, True]  # on C's disk only

        def page(url: str) -> httpx.Response:
            return http.get(
                f"{url}/api/jobs/{job_id}/result",
                params={"offset": 100, "limit": 50},
                headers=alice,
            )

        for url in (a, b):  # their Elkyn has the record once it is replicated
            got = wait_for(lambda url=url: page(url).status_code == 200 and page(url), url)
            assert [tuple(r) for r in got.json()["rows"]] == want[100:150]
            assert got.json()["total_rows"] == len(want)
            arrow = http.get(
                f"{url}/api/jobs/{job_id}/result", params={"format": "arrow"}, headers=alice
            )
            assert arrow.headers["x-total-rows"] == str(len(want))
            table = pa.ipc.open_stream(arrow.content).read_all()
            assert [tuple(r.values()) for r in table.to_pylist()] == want
            # the holder checks the owner as it would for its own users
            bob = platform_cluster.user("bob")
            assert http.get(f"{url}/api/jobs/{job_id}/result", headers=bob).status_code == 403
        # a delete through another platform removes it on the holder
        assert http.delete(f"{a}/api/jobs/{job_id}/result", headers=alice).status_code == 204
        assert not stored[2].exists()
        assert http.get(f"{c}/api/jobs/{job_id}/result", headers=alice).status_code == 410
        assert http.get(f"{b}/api/jobs/{job_id}/result", headers=alice).status_code == 410
