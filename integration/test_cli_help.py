"""Every CLI's help, at every level, reads as plain flags: ``--upload / --no-upload`` or
``--json``, never ``--json <bool>`` (what Typer 0.29's rich help printed beside every boolean
option, ``--help`` included). Each command's ``--help`` is run, in process for the whole tree
and as the installed console script for each CLI's top level."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner


def _apps() -> dict[str, typer.Typer]:
    from elkyn.cli import cli as elkyn_cli
    from elytra.cli import cli as elytra_cli
    from emsqrt.cli import app as emsqrt_cli
    from lake.cli import cli as lake_cli
    from platform_gateway.cli import build_cli

    return {
        "platform": build_cli(),
        "lake": lake_cli,
        "elkyn": elkyn_cli,
        "elytra": elytra_cli,
        "emsqrt": emsqrt_cli,
    }


def _paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under ``command`` (a group has ``list_commands``), itself first."""
    yield path
    if hasattr(command, "list_commands"):
        ctx = typer.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _paths(sub, (*path, name))


def test_no_help_of_any_command_prints_bool() -> None:
    runner = CliRunner()
    seen: list[str] = []
    bad: list[str] = []
    for name, app in _apps().items():
        for path in _paths(typer.main.get_command(app)):
            result = runner.invoke(app, [*path, "--help"], prog_name=name)
            where = " ".join([name, *path, "--help"])
            assert result.exit_code == 0, f"{where}: {result.output}"
            assert "Usage:" in result.output, where
            seen.append(where)
            if "<bool>" in result.output:
                bad.append(f"{where}:\n{result.output}")
    assert len(seen) > 40, seen  # the tree was walked, not only the top levels
    # a boolean option is shown as a flag somewhere in the tree (so the check can see one)
    assert any(w.startswith("lake upload ") for w in seen)
    assert bad == [], "\n\n".join(bad)


def test_boolean_options_read_as_flags() -> None:
    runner = CliRunner()
    apps = _apps()
    upload = runner.invoke(apps["lake"], ["upload", "--help"], prog_name="lake").output
    assert "--append / --no-append" in upload
    assert "--json " in upload
    assert "--json <" not in upload
    token = runner.invoke(apps["platform"], ["token", "--help"], prog_name="platform").output
    assert "--admin " in token
    assert "--admin <" not in token


@pytest.mark.parametrize("cli", ["platform", "lake", "elkyn", "elytra", "emsqrt"])
def test_installed_commands_help_prints_no_bool(cli: str) -> None:
    command = Path(sys.executable).parent / cli
    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--help" in done.stdout
    assert "--version" in done.stdout
    assert "<bool>" not in done.stdout, done.stdout
