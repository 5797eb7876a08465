"""Start-up cost: `import lake` and its CLI load no server stack; every public name resolves.

Every process start in the tests (and every command a user runs) paid for FastAPI, DuckDB,
sqlglot and Flight when the package's ``__init__`` imported everything; its names are now
imported on first use (``platform_core.lazy``).
"""

from __future__ import annotations

import lake
from platform_core.testing import assert_public_names_resolve, heavy_modules_loaded

HEAVY = (
    "fastapi",
    "duckdb",
    "sqlglot",
    "pyarrow.flight",
    "uvicorn",
    "lake.node",
    "lake.api.routes",
)


def test_the_cli_starts_without_the_server_stack() -> None:
    assert heavy_modules_loaded(["lake", "lake.cli"], HEAVY) == []


def test_every_public_name_resolves() -> None:
    assert_public_names_resolve(lake)
