"""Break-testing join sides run first through the platform (``platform up``, the SQL route
on Elytra): a table uploaded in several lake chunks, queries whose IN / NOT IN / scalar
subqueries keep few rows (a HAVING, an aggregate without keys), answered by Elytra with
DuckDB's rows over the same file, and EXPLAIN's JSON names the side run first."""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterator
from typing import Any

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from servers import command, launch

from lake import Client
from platform_core import PlatformSettings, auth, load_settings
from platform_core.testing import ServerProcess

pytestmark = pytest.mark.timeout(300)

QUERIES = [
    "SELECT k, sum(v) AS s, count(*) AS n FROM facts WHERE k IN "
    "(SELECT k FROM facts GROUP BY k HAVING sum(v) > 5000) GROUP BY k",
    "SELECT count(*) AS n FROM facts WHERE k NOT IN "
    "(SELECT k FROM facts GROUP BY k HAVING count(*) > 25)",
    "SELECT count(*) AS n, sum(v) AS s FROM facts WHERE v > (SELECT avg(v) FROM facts)",
    "SELECT count(*) AS n FROM facts WHERE k IN "
    "(SELECT k FROM facts GROUP BY k HAVING sum(v) > 1000000000)",
]


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, str, duckdb.DuckDBPyConnection]]:
    base = tmp_path_factory.mktemp("b45route")
    home = base / "home"
    rng = np.random.default_rng(45)
    k = rng.integers(0, 3000, 60000)
    v = rng.integers(0, 100, 60000) + np.where(k % 500 == 7, 1000, 0)
    k = np.where(rng.random(60000) < 0.02, -1, k)
    table = pa.table({"k": pa.array(k, pa.int64(), mask=k == -1), "v": pa.array(v, pa.int64())})
    path = base / "facts.parquet"
    pq.write_table(table, path, row_group_size=5000)
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        base / "run",
        env={
            "ELYTRA_WORKERS": "2",
            "LAKE_CHUNK_BYTES": str(64 * 1024),  # several chunks: several tasks
            "ELYTRA_SQL_ROUTE": "always",
        },
    )
    try:
        signer = auth.signer(load_settings(PlatformSettings, home=home), create=False)
        token = signer.issue("alice")
        with Client(server.url, token) as client:
            client.upload(path, "facts")
        oracle = duckdb.connect()
        oracle.execute(f"CREATE VIEW facts AS SELECT * FROM read_parquet('{path}')")
        yield server, token, oracle
    finally:
        server.stop()


def _post(url: str, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/api/lake/query",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=120,
    )


def _norm(rows: Any) -> list[tuple[Any, ...]]:
    def one(x: Any) -> Any:
        if isinstance(x, decimal.Decimal):
            return int(x) if x == x.to_integral_value() else float(x)
        return x

    return sorted((tuple(one(x) for x in r) for r in rows), key=repr)


@pytest.mark.parametrize("sql", QUERIES)
def test_a_subquery_side_run_first_through_the_route_equals_duckdb(
    platform: tuple[ServerProcess, str, duckdb.DuckDBPyConnection], sql: str
) -> None:
    server, token, oracle = platform
    want = _norm(oracle.sql(sql).fetchall())
    r = _post(server.url, token, {"sql": sql, "format": "arrow"})
    assert r.status_code == 200, r.text
    assert r.headers["x-query-engine"] == "elytra"
    got = _norm(tuple(x.values()) for x in pa.ipc.open_stream(r.content).read_all().to_pylist())
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            assert a == b or (isinstance(a, float) and math.isclose(a, float(b), rel_tol=1e-9)), (
                g,
                w,
            )


def test_explain_json_names_the_side_run_first(
    platform: tuple[ServerProcess, str, duckdb.DuckDBPyConnection],
) -> None:
    server, token, _ = platform
    r = _post(server.url, token, {"sql": f"EXPLAIN {QUERIES[0]}"})
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    assert plan.get("run_first"), plan
