"""Start-up cost: `import platform_gateway` and its CLI load no server stack; every public name resolves.

Every process start in the tests (and every command a user runs) paid for FastAPI, DuckDB,
sqlglot and Flight when the package's ``__init__`` imported everything; its names are now
imported on first use (``platform_core.lazy``).
"""

from __future__ import annotations

import subprocess
import sys

import platform_gateway

HEAVY = ("fastapi", "starlette", "uvicorn", "platform_gateway.app")


def test_the_cli_starts_without_the_server_stack() -> None:
    code = (
        "import sys, platform_gateway, platform_gateway.cli; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r} "
        f"or m in {set(HEAVY)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_every_public_name_resolves() -> None:
    for name in platform_gateway.__all__:
        assert getattr(platform_gateway, name) is not None, name
    assert set(platform_gateway.__all__) <= set(dir(platform_gateway))
