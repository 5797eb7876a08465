"""`platform user ...` in process (the installed command is driven in integration/test_users.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from platform_core import Plugin, UserStore
from platform_gateway.cli import build_cli

runner = CliRunner()


def test_add_prompts_twice_then_ls_passwd_and_rm(
    tmp_path: Path, test_plugins: list[Plugin]
) -> None:
    cli, home = build_cli(test_plugins), ["--home", str(tmp_path)]
    added = runner.invoke(
        cli, ["user", "add", "ada", "--admin", *home], input="pw-of-ada\npw-of-ada\n"
    )
    assert added.exit_code == 0, added.output
    assert "added ada (an admin)" in added.output
    assert "pw-of-ada" not in added.output  # the prompt hides what was typed
    assert UserStore(tmp_path).authenticate("ada", "pw-of-ada").admin is True

    mismatch = runner.invoke(cli, ["user", "add", "bob", *home], input="first-one\nsecond-one\n")
    assert "do not match" in mismatch.output.lower()

    listed = runner.invoke(cli, ["user", "ls", "--json", *home])
    assert [r["name"] for r in json.loads(listed.output)] == ["ada"]

    changed = runner.invoke(
        cli, ["user", "passwd", "ada", "--password-stdin", *home], input="new-pw-ada\n"
    )
    assert changed.exit_code == 0, changed.output
    assert UserStore(tmp_path).authenticate("ada", "new-pw-ada").name == "ada"

    assert runner.invoke(cli, ["user", "rm", "ada", *home]).exit_code == 0
    assert runner.invoke(cli, ["user", "rm", "ada", *home]).exit_code == 4
    assert "user" in runner.invoke(cli, ["--help"]).output
