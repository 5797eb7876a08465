"""A small query runs as one task by default (``ELYTRA_WHOLE_QUERY_BYTES``, 64 MiB), seen from
outside: one `platform up` with the setting at its default (the other integration tests turn it
off, ``conftest.py``) answers TPC-H's 22 queries at SF 0.01 with DuckDB's rows, each as a job
of one task that took every core of its pool, and EXPLAIN ANALYZE says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from servers import command, launch

from elytra import ElytraSettings
from lake import Client
from lake.sql.tpch import QUERIES, generate
from platform_core import PlatformSettings, auth, load_settings
from platform_core.testing import ServerProcess

from .test_sql_route_on_elytra import _arrow, _post, _same

pytestmark = pytest.mark.timeout(900)

DEFAULT = str(int(ElytraSettings.model_fields["whole_query_bytes"].default))


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, str, duckdb.DuckDBPyConnection]]:
    """`platform up` (two pool workers) with TPC-H SF 0.01; yields it, a token and DuckDB."""
    base = tmp_path_factory.mktemp("whole")
    home = base / "home"
    files = generate(0.01, base / "sf")
    server = launch(
        [str(command("platform")), "up", "--port", "0", "--home", str(home)],
        base / "run",
        env={
            "ELYTRA_WORKERS": "2",
            "ELYTRA_SQL_ROUTE": "always",
            "ELYTRA_WHOLE_QUERY_BYTES": DEFAULT,
        },
    )
    try:
        token = auth.signer(load_settings(PlatformSettings, home=home), create=False).issue("al")
        with Client(server.url, token) as client:
            for name, path in files.items():
                client.upload(Path(path), name)
        oracle = duckdb.connect()
        for name, path in files.items():
            oracle.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        yield server, token, oracle
    finally:
        server.stop()


def test_the_default_is_64_mib() -> None:
    assert int(DEFAULT) == 64 << 20


@pytest.mark.parametrize("number", sorted(QUERIES), ids=[f"q{n:02d}" for n in sorted(QUERIES)])
def test_tpch_runs_as_one_task_of_every_core_and_equals_duckdb(
    platform: tuple[ServerProcess, str, duckdb.DuckDBPyConnection], number: int
) -> None:
    server, token, oracle = platform
    sql = QUERIES[number]
    got, engine = _arrow(server.url, token, sql)
    assert engine == "elytra", sql
    _same(got, oracle.sql(sql).to_arrow_table(), "ORDER BY" in sql.upper().split(")")[-1], sql)
    r = _post(server.url, token, {"sql": "EXPLAIN ANALYZE " + sql, "format": "json"})
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    assert [s["task_count"] for s in plan["stages"]] == [1], plan["stages"]
    assert plan["run_first"] == [], plan["run_first"]
    assert plan["analyze"]["tasks"] == 1, plan["analyze"]
    # DuckDB ran the query's own text over the chunks, not the planned pipeline
    assert plan["analyze"]["native_tasks"] == 1, plan["analyze"]
    assert "own text run by DuckDB" in plan["stages"][0]["kind"], plan["stages"]
    (row,) = r.json()["rows"]
    threads = dict(zip([c["name"] for c in r.json()["columns"]], row, strict=True))["threads"]
    assert threads == 2, row  # the pool's two workers' cores
