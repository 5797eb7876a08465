"""Independent attacks on the SQL gate (issue 11 item 9): names that reach DuckDB unchecked."""

from __future__ import annotations

import pytest

from lake.errors import SQLError
from lake.sql.readonly import check_read_only


@pytest.mark.parametrize(
    "sql",
    [
        # sqlglot takes ``(SHOW x)`` as an expression, DuckDB as a SHOW_REF naming table ``x``:
        # neither gate looked at that name, so any string reached DuckDB's catalog lookup.
        'SELECT * FROM ds WHERE a = (SHOW """/srv/lake/chunks/ab.parquet""")',
        'SELECT (SHOW "/srv/lake/chunks/ab.parquet")',
        "SELECT (SHOW other_dataset)",
        'SELECT (SHOW "information_schema"."tables")',
    ],
)
def test_show_subquery_names_are_checked(sql: str) -> None:
    with pytest.raises(SQLError):
        check_read_only(sql, {"ds"})


def test_show_subquery_of_a_dataset_still_answers() -> None:
    stmt = check_read_only("SELECT * FROM (DESCRIBE ds)", {"ds"})
    assert stmt.kind == "select"
    stmt = check_read_only("SELECT * FROM (SUMMARIZE ds)", {"ds"})
    assert stmt.kind == "select"
