"""Integer sums through `platform up` equal DuckDB's HUGEINT sums: the lake's ``/query``
(JSON, CSV, Arrow) and a job's result (``/api/jobs/{id}/result?format=json``), past int64,
NULL-only groups, and expressions over sums (``sum(v) * 2 + k``, ``coalesce(sum(nv), 0)``,
``sum(v) % 7``, ``sum(v) * 0.5``).

(Part of the break-test of issue 27, "break27".)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
from jobs_helpers import bearer, wait_job

# --------------------------------------------------------------------------------------------
# integer sums through `platform up`

TOP = 2**63 - 1
SUM_SQL = (
    "SELECT k, sum(v) AS s, sum(nv) AS sn, sum(b) AS sb, sum(v) * 2 + k AS x, "
    "coalesce(sum(nv), 0) AS c, sum(v) % 7 AS m, sum(v) * 0.5e0 AS h FROM t GROUP BY k ORDER BY k"
)


def _oracle_rows(csv: Path) -> list[list[Any]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{csv}')")
    return [list(r) for r in con.execute(SUM_SQL).fetchall()]


def test_lake_query_sums_equal_duckdbs_hugeint_in_json_csv_arrow(
    sums_platform: tuple[Any, str, Path],
) -> None:
    server, token, csv = sums_platform
    want = _oracle_rows(csv)
    assert any(isinstance(r[1], int) and r[1] > TOP for r in want)  # past int64
    from lake import Client

    with Client(server.url, token) as client:
        got = client.query(SUM_SQL)
        rows = got["rows"] if isinstance(got, dict) else got
        assert [list(r) for r in rows] == [[_num(v) for v in r] for r in want]
        table = client.query_arrow(SUM_SQL)
        assert table.schema.field("s").type == pa.decimal128(38, 0)
        assert [list(r.values()) for r in table.to_pylist()] == [[_num(v) for v in r] for r in want]
        text = client.query_csv(SUM_SQL).splitlines()
        assert text[1].split(",")[1] == str(want[0][1])


def _num(v: Any) -> Any:
    """DuckDB's Python value as JSON carries it (a Decimal of a whole number is an int)."""
    import decimal

    return int(v) if isinstance(v, decimal.Decimal) and v == v.to_integral_value() else v


def test_job_result_json_sums_equal_duckdb(sums_platform: tuple[Any, str, Path]) -> None:
    server, token, csv = sums_platform
    want = _oracle_rows(csv)
    pipeline = {
        "source": {"dataset": "t"},
        "steps": [
            {
                "group_by": ["k"],
                "agg": [
                    "sum(v) AS s",
                    "sum(nv) AS sn",
                    "sum(b) AS sb",
                    "sum(v) * 2 + k AS x",
                    "coalesce(sum(nv), 0) AS c",
                    "sum(v) % 7 AS m",
                    "sum(v) * 0.5e0 AS h",
                ],
            },
            {"sort": ["k"]},
        ],
    }
    with httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("/api/jobs", json={"pipeline": pipeline}, headers=bearer(token))
        assert r.status_code == 202, r.text
        job = r.json()["id"]
        assert wait_job(http, job, bearer(token))["state"] == "succeeded"
        page = http.get(f"/api/jobs/{job}/result", params={"format": "json"}, headers=bearer(token))
        assert page.status_code == 200, page.text
        rows = page.json()["rows"]
        assert [list(r) for r in rows] == [[_num(v) for v in r] for r in want]
