"""The lake plugin mounted by the installed `platform up`: upload, query, nodes, auth, OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx

from lake import Client
from platform_gateway.testing import free_port

StartPlatform = Callable[..., Any]


def test_gateway_mounts_the_lake(start_platform: StartPlatform, tmp_path: Path) -> None:
    platform = start_platform(
        free_port(), env={"LAKE_FLIGHT_PORT": "0", "LAKE_CHUNK_BYTES": str(256 * 1024)}
    )
    csv = tmp_path / "sales.csv"
    duckdb.sql(
        f"COPY (SELECT i AS id, i % 5 AS grp, i * 0.5 AS amount FROM range(100000) t(i)) "
        f"TO '{csv}' (HEADER)"
    )
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        assert http.get("/api/lake/datasets").status_code == 401
        token = http.post("/api/login", json={"sub": "e2e"}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        # Node-to-node routes take cluster tokens only, never a user token.
        assert http.post("/internal/lake/ping", json={}, headers=auth).status_code == 401
        spec = http.get("/openapi.json").json()
        assert "/api/lake/query" in spec["paths"]
        assert "QueryModel" in spec["components"]["schemas"]

        with Client(platform.url, token) as client:
            status = client.upload(csv, "sales", part_size=1 << 20)
            assert status["state"] == "committed"
            assert status["chunks"] >= 2
            got = client.query(
                "SELECT grp, count(*), sum(amount) FROM sales GROUP BY grp ORDER BY grp"
            )
            want = duckdb.sql(
                f"SELECT grp, count(*), sum(amount) FROM read_csv('{csv}') GROUP BY grp ORDER BY grp"
            ).fetchall()
            assert [tuple(r) for r in got["rows"]] == want
        nodes = http.get("/api/lake/nodes", headers=auth).json()
        assert nodes["under_replicated"] == 0
        assert nodes["members"][0]["chunks"] == status["chunks"]
    assert list((platform.home / "lake").glob("*/chunks/*.parquet"))
