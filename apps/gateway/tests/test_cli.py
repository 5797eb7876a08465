"""The `platform` CLI: version, help with plugin groups, tokens, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jwt
import pytest
from typer.testing import CliRunner

from platform_core import Plugin
from platform_gateway.cli import build_cli
from platform_gateway.testing import write_plugin_dist

runner = CliRunner()


def one_error_line(output: str) -> str:
    """The single `error: ...` line of ``output`` (and no traceback)."""
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_version_prints_the_platform_versions(test_plugins: list[Plugin]) -> None:
    result = runner.invoke(build_cli(test_plugins), ["--version"])
    assert result.exit_code == 0
    assert f"platform-core {version('platform-core')}" in result.stdout
    assert f"platform-gateway {version('platform-gateway')}" in result.stdout


def test_help_lists_up_token_and_the_plugin_group(test_plugins: list[Plugin]) -> None:
    result = runner.invoke(build_cli(test_plugins), ["--help"])
    assert result.exit_code == 0
    for word in ("up", "token", "testplug", "--install-completion", "--version"):
        assert word in result.stdout
    assert "testmount" not in result.stdout  # no cli, no group


def test_help_of_the_installed_cli_lists_the_test_plugin() -> None:
    result = runner.invoke(build_cli(), ["--help"])
    assert result.exit_code == 0
    assert "testplug" in result.stdout


def test_the_plugin_group_runs_its_commands(test_plugins: list[Plugin]) -> None:
    result = runner.invoke(build_cli(test_plugins), ["testplug", "hello", "--name", "ada"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello ada from testplug\n"


SECRET = "a-test-secret-of-more-than-32-bytes-0123456789"


def home_with_secret(home: Path) -> Path:
    """A data directory whose secret file (as `platform up` makes it) holds SECRET."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "secret").write_text(SECRET)
    return home


def decode(token: str) -> dict[str, Any]:
    """The token's claims, checked with PyJWT directly (not with our TokenSigner)."""
    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"])
    return claims


def test_token_prints_just_a_verifiable_token(tmp_path: Path) -> None:
    home = home_with_secret(tmp_path / "home")
    result = runner.invoke(
        build_cli([]), ["token", "--home", str(home), "--sub", "ada", "--ttl", "60"]
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = decode(token)
    assert (claims["sub"], claims["admin"]) == ("ada", False)
    assert 0 < claims["exp"] - time.time() <= 60


def test_token_admin(tmp_path: Path) -> None:
    home = home_with_secret(tmp_path / "home")
    result = runner.invoke(build_cli([]), ["token", "--home", str(home), "--admin"])
    assert result.exit_code == 0, result.output
    claims = decode(result.stdout.strip())
    assert (claims["sub"], claims["admin"]) == ("admin", True)


def test_token_worker_is_a_worker_token_and_not_an_admin_one(tmp_path: Path) -> None:
    home = home_with_secret(tmp_path / "home")
    result = runner.invoke(
        build_cli([]), ["token", "--home", str(home), "--worker", "--sub", "tab", "--ttl", "90"]
    )
    assert result.exit_code == 0, result.output
    claims = decode(result.stdout.strip())
    assert (claims["sub"], claims["admin"], claims["kind"]) == ("tab", False, "worker")
    assert 0 < claims["exp"] - time.time() <= 90
    both = runner.invoke(build_cli([]), ["token", "--home", str(home), "--worker", "--admin"])
    assert both.exit_code == 2
    assert "no admin rights" in both.output


def test_token_uses_platform_secret_from_the_environment(tmp_path: Path) -> None:
    result = runner.invoke(
        build_cli([]), ["token", "--home", str(tmp_path)], env={"PLATFORM_SECRET": SECRET}
    )
    assert result.exit_code == 0, result.output
    assert decode(result.stdout.strip())["sub"] == "admin"
    assert list(tmp_path.iterdir()) == []


def test_token_never_makes_a_new_secret(tmp_path: Path) -> None:
    # A token signed with a fresh secret would be accepted by no running platform.
    result = runner.invoke(build_cli([]), ["token", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    line = one_error_line(result.stderr)
    assert f"no platform secret at {tmp_path / 'secret'}" in line
    assert "PLATFORM_SECRET" in line
    assert list(tmp_path.iterdir()) == []


def test_token_with_an_unreadable_secret_is_one_red_line(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()  # a directory where the secret file should be
    result = runner.invoke(build_cli([]), ["token", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "secret" in one_error_line(result.stderr)


def test_up_with_a_regular_file_as_home_is_one_red_line(tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("")
    result = runner.invoke(build_cli([]), ["up", "--home", str(home), "--port", "0"])
    assert result.exit_code == 2
    assert str(home) in one_error_line(result.stderr)
    assert "platform is up" not in result.stdout


def test_up_with_an_unreadable_secret_is_one_red_line(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    result = runner.invoke(build_cli([]), ["up", "--home", str(tmp_path), "--port", "0"])
    assert result.exit_code == 2
    assert "cannot read the platform secret" in one_error_line(result.stderr)
    assert "platform is up" not in result.stdout


@pytest.mark.parametrize("args", [["--port", "abc"], ["--port", "70000"]])
def test_a_bad_port_option_is_a_usage_error(args: list[str]) -> None:
    result = runner.invoke(build_cli([]), ["up", *args])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Invalid value for '--port'" in result.output


@pytest.mark.parametrize(
    ("value", "complaint"), [("eighty", "valid integer"), ("70000", "less than or equal to 65535")]
)
def test_a_bad_setting_from_the_environment_is_one_red_line(
    tmp_path: Path, value: str, complaint: str
) -> None:
    result = runner.invoke(
        build_cli([]), ["up", "--home", str(tmp_path)], env={"PLATFORM_PORT": value}
    )
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert f"PLATFORM_PORT={value}" in line.replace("'", "")
    assert complaint in line


def test_a_bad_log_level_is_one_red_line(tmp_path: Path) -> None:
    result = runner.invoke(build_cli([]), ["up", "--home", str(tmp_path), "--log-level", "loud"])
    assert result.exit_code == 2
    assert "PLATFORM_LOG_LEVEL='loud'" in one_error_line(result.stderr)


def test_up_on_a_public_host_without_password_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        build_cli([]), ["up", "--home", str(tmp_path), "--host", "0.0.0.0", "--port", "0"]
    )
    assert result.exit_code == 2
    assert "PLATFORM_ADMIN_PASSWORD is not set" in one_error_line(result.stderr)


def test_up_stops_cleanly_when_a_plugin_fails_to_start(
    tmp_path: Path,
    events: list[str],
    test_plugins: list[Plugin],
    recording_lifespan: Callable[..., Any],
) -> None:
    mount, plug = test_plugins
    broken = Plugin(name="broken", lifespan=recording_lifespan(events, "broken", fail_on="enter"))
    cli = build_cli([mount, broken, plug])
    result = runner.invoke(cli, ["up", "--home", str(tmp_path / "home"), "--port", "0"])
    assert result.exit_code == 1
    line = one_error_line(result.stderr)  # the reason, not only in the JSON log above it
    assert "cannot start: plugin 'broken' failed to start: broken cannot open its" in line, line
    assert "platform is up" not in result.stdout
    assert events == ["enter testmount", "exit testmount"]
    assert (tmp_path / "home" / "secret").is_file()  # --home was used


def test_a_plugin_that_fails_to_load_does_not_break_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin_dist(
        tmp_path,
        dist="gateway-cli-broken",
        module="gateway_cli_broken",
        source="raise ImportError('lmdb is not installed')\n",
        entry_points={"clibroken": "gateway_cli_broken:plugin"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cli = build_cli()  # the error line goes to stderr while the CLI is built
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "up" in result.stdout
    up = runner.invoke(cli, ["up", "--home", str(tmp_path / "home")])
    assert up.exit_code == 1
    line = one_error_line(up.stderr)
    assert "could not load plugin entry point 'clibroken'" in line
    assert "lmdb is not installed" in line


def test_the_load_error_is_printed_as_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_plugin_dist(
        tmp_path,
        dist="gateway-cli-broken2",
        module="gateway_cli_broken2",
        source="def plugin():\n    return 'not a plugin'\n",
        entry_points={"clibroken2": "gateway_cli_broken2:plugin"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    build_cli()
    line = one_error_line(capsys.readouterr().err)
    assert "returned str, not a platform_core.Plugin" in line


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "platform_gateway", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"platform-gateway {version('platform-gateway')}" in result.stdout


def test_token_ttl_bound_is_auths() -> None:
    """`platform token --ttl` is bounded without importing auth; the bound is auth's."""
    from platform_core import auth
    from platform_gateway.cli import MAX_TOKEN_TTL_SECONDS

    assert MAX_TOKEN_TTL_SECONDS == auth.MAX_TOKEN_TTL_SECONDS
