"""Start-up cost of the `platform` command with every plugin installed: only `up` loads the
server stack (FastAPI, DuckDB, sqlglot, Flight, the LMDB store), not `--help`, `token`,
`login` and the plugins' client commands, which the tests and users run by the hundred."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("fastapi", "duckdb", "sqlglot", "pyarrow.flight", "uvicorn", "ray")
SERVER_MODULES = ("lake.node", "lake.api.routes", "elkyn.store", "elkyn.server", "elytra.session")


def test_platform_cli_with_every_plugin_starts_without_the_server_stack() -> None:
    code = (
        "import sys\n"
        "from platform_gateway.cli import build_cli\n"
        "cli = build_cli()\n"
        "names = {g.name for g in cli.registered_groups}\n"
        "assert {'lake', 'elkyn', 'elytra'} <= names, names\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r} "
        f"or m in {set(HEAVY) | set(SERVER_MODULES)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


FRONT_DOOR_HEAVY = ("pyarrow", "numpy", "httpx", "pydantic_settings", "rich", "jwt", "yaml", *HEAVY)
"""What no command's ``--help`` or argument error loads: each costs a tenth of a second or
more at start-up (pyarrow with NumPy about 0.2 s, httpx 0.1 s, pydantic-settings with the
platform's settings about 0.3 s, rich's console 0.05 s, PyJWT and PyYAML 0.03 s each on an idle
machine), and none is needed to print a usage line. (Typer 0.29 itself imports pydantic to
convert a subcommand's options, so pydantic is not on this list.)"""

RUN_MAIN = """
import sys

import pytest
module, *argv = sys.argv[1:]
sys.argv = [module.split(".")[0], *argv]
import importlib
try:
    importlib.import_module(module).main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = {heavy!r}
print("CODE", code, file=sys.stderr)
print("LOADED", sorted({{m for m in sys.modules if m.split(".")[0] in heavy}}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["platform_gateway.cli", "--help"],
        ["platform_gateway.cli", "up", "--help"],
        ["platform_gateway.cli", "demo-data", "--help"],
        ["platform_gateway.cli", "lake", "query", "--help"],
        ["platform_gateway.cli", "up", "--port", "not-a-port"],
        ["platform_gateway.cli", "token", "--help"],
        ["platform_gateway.cli", "token", "--ttl", "0"],
        ["platform_gateway.cli", "login", "--help"],
        ["platform_gateway.cli", "status", "--help"],
        ["platform_gateway.cli", "user", "--help"],
        ["platform_gateway.cli", "elkyn", "--help"],
        ["platform_gateway.cli", "elytra", "run", "--help"],
        ["lake.cli", "--help"],
        ["lake.cli", "query", "--help"],
        ["lake.cli", "ls", "--no-such-option"],
        ["lake.cli", "upload", "--help"],
        ["lake.cli", "node", "--help"],
        ["elkyn.cli", "--help"],
        ["elkyn.cli", "serve", "--help"],
        ["elkyn.cli", "token", "--help"],
        ["elkyn.cli", "serve", "--port", "not-a-port"],
        ["elytra.cli", "--help"],
        ["elytra.cli", "run", "--help"],
        ["elytra.cli", "run"],
        ["emsqrt.cli", "--help"],
        ["emsqrt.cli", "run", "--help"],
        ["emsqrt.cli", "run"],
    ],
    ids=" ".join,
)
def test_help_and_argument_errors_load_no_heavy_module(argv: list[str]) -> None:
    """Every CLI prints its help and its argument errors without pyarrow, NumPy, httpx,
    pydantic-settings, rich, PyJWT, PyYAML or the server stack (asserted on ``sys.modules``
    after the command ran, not on time)."""
    code = RUN_MAIN.format(heavy=set(FRONT_DOOR_HEAVY))
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
    )
    lines = dict(
        line.split(" ", 1) for line in out.stderr.splitlines() if line[:4] in ("CODE", "LOAD")
    )
    help_asked = "--help" in argv
    assert lines.get("CODE") == ("0" if help_asked else "2"), out.stderr[-2000:]
    assert lines.get("LOADED") == "[]", out.stderr[-2000:]
    if help_asked:
        assert "Usage" in out.stdout, out.stdout
