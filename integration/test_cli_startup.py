"""Start-up cost of the `platform` command with every plugin installed: only `up` loads the
server stack (FastAPI, DuckDB, sqlglot, Flight, the LMDB store), not `--help`, `token`,
`login` and the plugins' client commands, which the tests and users run by the hundred."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("fastapi", "duckdb", "sqlglot", "pyarrow.flight", "uvicorn", "ray")
SERVER_MODULES = ("lake.node", "lake.api", "elkyn.store", "elkyn.server", "elytra.session")


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
