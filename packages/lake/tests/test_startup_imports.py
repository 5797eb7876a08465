"""Start-up cost: `import lake` and its CLI load no server stack; every public name resolves.

Every process start in the tests (and every command a user runs) paid for FastAPI, DuckDB,
sqlglot and Flight when the package's ``__init__`` imported everything; its names are now
imported on first use (``platform_core.lazy``).
"""

from __future__ import annotations

import subprocess
import sys

import lake

HEAVY = ("fastapi", "duckdb", "sqlglot", "pyarrow.flight", "uvicorn", "lake.node", "lake.api")


def test_the_cli_starts_without_the_server_stack() -> None:
    code = (
        "import sys, lake, lake.cli; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r} "
        f"or m in {set(HEAVY)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_every_public_name_resolves() -> None:
    for name in lake.__all__:
        assert getattr(lake, name) is not None, name
    assert set(lake.__all__) <= set(dir(lake))
