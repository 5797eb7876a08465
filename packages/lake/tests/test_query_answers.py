"""Answers of a real node to queries whose results are hard to give: nested columns as CSV,
values built past the memory cap, NaN, infinities and exact decimals in JSON."""

from __future__ import annotations

from pathlib import Path

from lake.testing import peak_rss_bytes, start_node, stop_node

from .conftest import SECRET
from .node_http import ALICE, call, finish_upload, start_upload


def test_csv_of_a_nested_column_is_a_clear_4xx_and_frees_the_slot(tmp_path: Path) -> None:
    """``format: csv`` of a list/struct/map column was an unhandled ArrowInvalid: a 500 with
    'Internal Server Error' and a traceback in the log."""
    proc = start_node(
        tmp_path / "n",
        env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0", "LAKE_MAX_QUERIES_PER_USER": "1"},
    )
    try:
        url = proc.url
        data = b"id,v\n1,a\n2,b\n"
        assert (
            finish_upload(url, ALICE, start_upload(url, ALICE, "ds", data), data)["state"]
            == "committed"
        )
        for sql in (
            "SELECT id, [id] AS l FROM ds",
            "SELECT {'a': id} AS s FROM ds",
            "SELECT map([id], [v]) AS m FROM ds",
        ):
            for _ in range(2):  # the user's single slot is free again after each refusal
                r = call(url, ALICE, "POST", "/query", json={"sql": sql, "format": "csv"})
                assert r.status_code == 400, (sql, r.status_code, r.text)
                assert "csv" in r.json()["error"].lower()
        r = call(url, ALICE, "POST", "/query", json={"sql": "SELECT id FROM ds", "format": "csv"})
        assert r.status_code == 200
        assert r.text.splitlines() == ['"id"', "1", "2"]
        assert "Traceback" not in proc.output()
    finally:
        stop_node(proc)


ATTACKS = [
    # a list built per row: ~800 MB a row at id 1000, never counted by DuckDB's memory_limit
    "SELECT sum(len(range(id * 100000))) FROM ds",
    "SELECT len(repeat('x', 3000000000)) AS n",  # one 3 GB string
    "SELECT sum(len(list_resize([id], id * 10000))) FROM ds",
]


def test_a_query_building_huge_values_fails_alone_and_the_node_lives(tmp_path: Path) -> None:
    """A scalar list/string builder is not bounded by LAKE_QUERY_MEMORY: one user's
    ``sum(len(range(id*100000)))`` got the node OOM-killed. With the process's address space
    capped (PLATFORM_MEMORY_HEADROOM) the allocation fails, the query is a 413 and the node
    goes on answering."""
    proc = start_node(
        tmp_path / "n",
        env={
            "PLATFORM_SECRET": SECRET,
            "LAKE_FLIGHT_PORT": "0",
            "LAKE_QUERY_MEMORY": "256MB",
            "PLATFORM_MEMORY_HEADROOM": "2GB",
            "LAKE_MAX_QUERIES_PER_USER": "1",
        },
    )
    try:
        url = proc.url
        data = b"id\n" + b"".join(b"%d\n" % i for i in range(1, 1001))
        assert (
            finish_upload(url, ALICE, start_upload(url, ALICE, "ds", data), data)["state"]
            == "committed"
        )
        before, _ = peak_rss_bytes(proc.proc.pid)
        for sql in ATTACKS:
            r = call(url, ALICE, "POST", "/query", json={"sql": sql})
            assert r.status_code == 413, (sql, r.status_code, r.text)
            assert "memory" in r.json()["error"], r.text
            assert proc.proc.poll() is None, f"the node died on {sql}"
        _, peak = peak_rss_bytes(proc.proc.pid)
        assert (peak - before) >> 20 < 2600, f"the node grew {(peak - before) >> 20} MiB"
        # the user's single query slot is free again, and the node answers as before
        r = call(url, ALICE, "POST", "/query", json={"sql": "SELECT sum(id) AS s FROM ds"})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[500500]]
    finally:
        stop_node(proc)


def test_json_answers_hold_nan_infinities_and_exact_decimals(tmp_path: Path) -> None:
    """A DOUBLE NaN (alone or in a list) was a 500: ``json.dumps(allow_nan=False)`` refused it."""
    proc = start_node(tmp_path / "n", env={"PLATFORM_SECRET": SECRET, "LAKE_FLIGHT_PORT": "0"})
    try:
        url = proc.url
        sql = (
            "SELECT 'nan'::DOUBLE AS x, ['-inf'::DOUBLE, 1.5] AS l, "
            "12345678901234567890.123456789::DECIMAL(38, 9) AS d, '\\xFF'::BLOB AS b"
        )
        r = call(url, ALICE, "POST", "/query", json={"sql": sql})
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [
            ["NaN", ["-Infinity", 1.5], "12345678901234567890.123456789", "ff"]
        ]
        assert "Traceback" not in proc.output()
    finally:
        stop_node(proc)
