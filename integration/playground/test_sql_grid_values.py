"""The SQL page's grid shows each value as DuckDB writes it, and one user's SQL history is not
shown to the next in the same browser. (Break-test "break14", independent review of #14.)"""

from __future__ import annotations

import os
import subprocess
import uuid
from urllib.parse import quote

import duckdb
from playwright.sync_api import Page, expect
from servers import command
from ui_browser import UIPlatform

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


def add_user(ui_platform: UIPlatform, name: str, password: str) -> None:
    env = {**os.environ, "PLATFORM_HOME": str(ui_platform.home)}
    subprocess.run(
        [str(command("platform")), "user", "add", name, "--password-stdin"],
        input=password + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )


def test_the_sql_history_of_one_user_is_not_shown_to_the_next_in_the_same_browser(
    page: Page, ui_platform: UIPlatform
) -> None:
    # The history was one localStorage list per browser: whoever signed in next on a shared
    # machine read the statements (and the literals in them) of the one before.
    secret = "SELECT 'admins_private_literal' AS s"
    page.goto("/sql/?q=" + quote(secret))
    page.get_by_role("button", name="Run", exact=True).click()
    history = page.get_by_test_id("history")
    expect(history).to_contain_text("admins_private_literal")

    name = f"u{uuid.uuid4().hex[:8]}"
    add_user(ui_platform, name, "a long enough password")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign in with password").click()
    expect(page.get_by_test_id("who")).to_have_text(name)
    page.goto("/sql/")
    expect(page.get_by_role("heading", level=1)).to_have_text("SQL")
    page.get_by_role("button", name="Run", exact=True).wait_for()
    assert "admins_private_literal" not in page.inner_text("main")
