"""emsqrt stands alone: `import emsqrt` (and its CLI) load nothing of the service kit: no web
framework, no tokens or password hashing, no HTTP client. Its CLI uses Typer and rich."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from platform_core.testing import SERVICE_KIT_MODULES, heavy_modules_loaded


def test_import_emsqrt_loads_no_service_kit() -> None:
    unwanted = [*SERVICE_KIT_MODULES, "typer", "rich", "ray"]
    assert heavy_modules_loaded(["emsqrt"], unwanted) == []


def test_the_cli_loads_no_service_kit() -> None:
    assert heavy_modules_loaded(["emsqrt.cli"], [*SERVICE_KIT_MODULES, "ray"]) == []


def test_a_pipeline_runs_without_the_service_kit_importable(tmp_path: Path) -> None:
    """With every service-kit distribution unimportable, as in an install of emsqrt alone."""
    blocked = ["jwt", "argon2", "fastapi", "starlette", "uvicorn", "httpx"]
    code = (
        "import sys\n"
        + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
        + (
            "import pyarrow as pa, pyarrow.csv as pcsv, emsqrt\n"
            "pcsv.write_csv(pa.table({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]}), 'in.csv')\n"
            "p = emsqrt.Pipeline.scan('in.csv').filter('v >= 2').aggregate(['k'], ['SUM(v)'])\n"
            "print(sorted(p.run(mem_cap='16MiB').table.to_pylist(), key=str))\n"
        )
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    # integer sums are decimal128(38, 0) (DuckDB's HUGEINT): Decimals in Python
    assert (
        out.stdout.strip()
        == "[{'k': 'a', 'sum_v': Decimal('3')}, {'k': 'b', 'sum_v': Decimal('2')}]"
    )
