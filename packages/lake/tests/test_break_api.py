"""Lake query routes driven from outside with results the formats cannot hold (issue 11 item 15)."""

from __future__ import annotations

from pathlib import Path

from lake.testing import start_node, stop_node

from .conftest import SECRET
from .test_break_roles import ALICE, _call, _finish, _start


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
        assert _finish(url, ALICE, _start(url, ALICE, "ds", data), data)["state"] == "committed"
        for sql in (
            "SELECT id, [id] AS l FROM ds",
            "SELECT {'a': id} AS s FROM ds",
            "SELECT map([id], [v]) AS m FROM ds",
        ):
            for _ in range(2):  # the user's single slot is free again after each refusal
                r = _call(url, ALICE, "POST", "/query", json={"sql": sql, "format": "csv"})
                assert r.status_code == 400, (sql, r.status_code, r.text)
                assert "csv" in r.json()["error"].lower()
        r = _call(url, ALICE, "POST", "/query", json={"sql": "SELECT id FROM ds", "format": "csv"})
        assert r.status_code == 200
        assert r.text.splitlines() == ['"id"', "1", "2"]
        assert "Traceback" not in proc.output()
    finally:
        stop_node(proc)
