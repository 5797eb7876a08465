"""break14: the SQL page's grid shows each value as DuckDB writes it (independent review of #14)."""

from __future__ import annotations

from urllib.parse import quote

import duckdb
from playwright.sync_api import Page, expect

VALUES = """SELECT TIMESTAMP '2024-01-02 03:04:05.123456' AS ts,
       TIMESTAMP '1969-12-31 23:59:59.999999' AS before_1970,
       TIMESTAMP '2024-01-02 03:04:05' AS whole_second,
       DATE '2024-02-29' AS d, DATE '1969-12-31' AS d_before_1970,
       TIME '12:34:56.789' AS tm,
       TIMESTAMPTZ '2024-01-02 03:04:05+00' AS tz,
       9007199254740993::BIGINT AS big, (-9223372036854775807 - 1)::BIGINT AS smallest,
       18446744073709551615::UBIGINT AS ubig, 123.45::DECIMAL(10, 2) AS dec,
       'x'::BLOB AS bl, 'Ünïcødé ‮ RTL' AS txt"""


def duckdb_text(sql: str) -> list[str]:
    """DuckDB's own text of each value (CAST to VARCHAR), the session in UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    row = con.execute(f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({sql})").fetchone()
    assert row is not None
    return [str(v) for v in row]


def test_times_dates_and_big_integers_in_the_grid_are_duckdbs_text(page: Page) -> None:
    page.goto("/sql/?q=" + quote(VALUES))
    expect(page.get_by_role("heading", level=1)).to_have_text("SQL")
    page.get_by_role("button", name="Run", exact=True).click()
    row = page.get_by_test_id("grid").locator("tbody tr[aria-rowindex]").first
    expect(row).to_be_visible()
    got = row.locator("td").all_inner_texts()
    # Arrow hands timestamps and dates over as milliseconds since 1970: the grid showed
    # 1704164645123.456 for 2024-01-02 03:04:05.123456.
    assert got == duckdb_text(VALUES)
