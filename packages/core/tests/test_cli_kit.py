"""platform_core.cli: output formats, the error exit, --version and saved tokens."""

from __future__ import annotations

import csv
import io
import json
import stat
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from platform_core import ForbiddenError, NotFoundError, PlatformError, UnavailableError
from platform_core.cli import (
    OutputFormat,
    exit_code,
    expected_errors,
    forget_token,
    normalize_url,
    output_format,
    print_table,
    resolve_token,
    save_token,
    saved_token,
    tokens_file,
    version_option,
)

TABLE = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "text": pa.array(["[[null, 1]]", "[bold red]x[/]", None], pa.string()),
        "v": pa.array([1.5, None, -2.0], pa.float64()),
    }
)


def printed(fmt: OutputFormat) -> str:
    buffer = io.StringIO()
    print_table(TABLE, fmt, console=Console(file=buffer, width=200, force_terminal=False))
    return buffer.getvalue()


def test_a_table_prints_markup_looking_values_literally_and_null_distinctly() -> None:
    text = printed(OutputFormat.TABLE)
    assert "[[null, 1]]" in text
    assert "[bold red]x[/]" in text
    assert "NULL" in text
    for name in ("i64", "utf8", "f64"):  # platform_core's type names, not Arrow's
        assert name in text
    assert "int64" not in text
    assert "string" not in text
    assert "(3 rows)" in text


def test_json_and_csv_carry_the_same_values() -> None:
    body = json.loads(printed(OutputFormat.JSON))
    assert body["columns"] == [
        {"name": "id", "type": "i64"},
        {"name": "text", "type": "utf8"},
        {"name": "v", "type": "f64"},
    ]
    assert body["rows"] == [list(r.values()) for r in TABLE.to_pylist()]
    rows = list(csv.reader(io.StringIO(printed(OutputFormat.CSV))))
    assert rows == [
        ["id", "text", "v"],
        ["1", "[[null, 1]]", "1.5"],
        ["2", "[bold red]x[/]", ""],
        ["3", "", "-2.0"],
    ]


def test_json_and_csv_together_are_refused() -> None:
    assert output_format(False, False) is OutputFormat.TABLE
    with pytest.raises(PlatformError, match="not both"):
        output_format(True, True)


def test_an_expected_error_exits_with_one_line_and_the_code_of_its_kind() -> None:
    app = typer.Typer()

    @app.command()
    def boom(kind: str) -> None:
        with expected_errors(OSError):
            if kind == "missing":
                raise NotFoundError("no dataset named 'x'\n(datasets: none)")
            if kind == "os":
                raise FileNotFoundError(2, "No such file or directory", "/nope")
            raise ForbiddenError("not yours")

    for kind, code, line in [
        ("missing", 4, "error: no dataset named 'x' (datasets: none)"),
        ("os", 1, "error: /nope: No such file or directory"),
        ("forbidden", 3, "error: not yours"),
    ]:
        result = CliRunner().invoke(app, [kind])
        assert result.exit_code == code, result.output
        assert result.stderr == line + "\n"
        assert "Traceback" not in result.output
    assert exit_code(ValueError("x")) == 1


def test_version_option_prints_labelled_versions() -> None:
    app = typer.Typer()

    @app.callback(invoke_without_command=True)
    def main(version: bool = version_option(core="platform-core")) -> None:
        """Test app."""

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"core {version('platform-core')}\n"


def test_saved_tokens_live_in_the_xdg_config_dir_readable_by_the_user_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert saved_token("http://127.0.0.1:8080") is None
    path = save_token("HTTP://127.0.0.1:8080/", "t1")
    save_token("http://127.0.0.1:9090", "t2")
    assert path == tokens_file() == tmp_path / "cfg" / "platform" / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert saved_token("http://127.0.0.1:8080") == "t1"  # normalized: case, trailing slash
    assert saved_token("http://127.0.0.1:9090") == "t2"
    assert forget_token("http://127.0.0.1:8080") is True
    assert forget_token("http://127.0.0.1:8080") is False
    assert saved_token("http://127.0.0.1:8080") is None
    assert saved_token("http://127.0.0.1:9090") == "t2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_url_without_a_scheme_is_refused() -> None:
    assert normalize_url("http://Example.COM:80/") == "http://example.com:80"
    with pytest.raises(PlatformError, match="not a gateway URL"):
        normalize_url("127.0.0.1:8080")


def test_a_token_for_an_unreachable_local_gateway_says_it_cannot_reach_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PLATFORM_TOKEN", "PLATFORM_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))  # no secret there
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert resolve_token("http://127.0.0.1:1", "given") == "given"
    monkeypatch.setenv("PLATFORM_TOKEN", "from-env")
    assert resolve_token("http://127.0.0.1:1", None) == "from-env"
    monkeypatch.delenv("PLATFORM_TOKEN")
    save_token("http://127.0.0.1:1", "saved")
    assert resolve_token("http://127.0.0.1:1") == "saved"
    forget_token("http://127.0.0.1:1")
    with pytest.raises(UnavailableError, match=r"cannot reach http://127\.0\.0\.1:1/api/login"):
        resolve_token("http://127.0.0.1:1")
    assert resolve_token("http://192.0.2.1:8080") is None  # not this machine: nothing minted
