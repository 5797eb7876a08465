"""A light core: ``pip install platform-core`` is schemas, records, errors, settings and the
expression tree; the service kit and expression text are extras that say how to install them."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import requires

import pytest

from platform_core._extras import EXTRAS
from platform_core.testing import SERVICE_KIT_MODULES, heavy_modules_loaded

MODULE_OF = {"pyjwt": "jwt", "argon2-cffi": "argon2"}
"""Distribution -> top-level module, where they differ."""


def _declared(extra: str) -> set[str]:
    found = set()
    for requirement in requires("platform-core") or []:
        if re.search(rf"extra\s*==\s*['\"]{extra}['\"]", requirement):
            dist = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()
            found.add(MODULE_OF.get(dist, dist))
    return found


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_each_extra_installs_the_modules_its_error_names(extra: str) -> None:
    assert _declared(extra) == set(EXTRAS[extra])


def test_no_extra_module_is_a_requirement_without_its_extra() -> None:
    plain = {
        re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower()
        for r in requires("platform-core") or []
        if "extra ==" not in r
    }
    assert plain == {"pyarrow", "numpy", "pydantic", "pydantic-settings"}


def test_import_platform_core_loads_no_service_kit_and_no_parser() -> None:
    imports = [
        "platform_core",
        "platform_core.schema",
        "platform_core.expr",
        "platform_core.settings",
    ]
    assert heavy_modules_loaded(imports, [*SERVICE_KIT_MODULES, "sqlglot", "typer", "rich"]) == []


def _run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where importing any of ``modules`` fails as if absent."""
    block = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    return subprocess.run(
        [sys.executable, "-c", block + code], capture_output=True, text=True, timeout=60
    )


ALL_EXTRAS = sorted({m for modules in EXTRAS.values() for m in modules})


def test_the_light_core_works_with_no_extra_installed() -> None:
    code = """
import pyarrow as pa
from platform_core import Schema, hash_columns, load_settings, parse_type, infer_schema
from platform_core.expr import col, evaluate, from_json, to_json, to_sql
table = pa.table({"amount": [500, 1500, None], "region": ["eu", "us", "cn"]})
e = (col("amount") > 1000) & col("region").isin(["eu", "us"])
assert from_json(to_json(e)) == e
print(evaluate(e, table).to_pylist(), to_sql(e))
print(Schema.from_arrow(table.schema).to_json(), parse_type("Int64"))
print(len(hash_columns(table.to_batches()[0], ["region"])), type(load_settings()).__name__)
"""
    out = _run_without(ALL_EXTRAS, code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == """[False, True, False] (("amount" > 1000) AND ("region" IN ('eu', 'us')))"""
    assert lines[1].startswith('{"fields":[{"name":"amount"')
    assert lines[2] == "3 PlatformSettings"


@pytest.mark.parametrize(
    ("blocked", "code", "extra"),
    [
        ("argon2", "from platform_core import UserStore", "service"),
        ("jwt", "from platform_core import auth", "service"),
        ("jwt", "import platform_core; platform_core.auth", "service"),
        ("starlette", "from platform_core.http import install_error_handlers", "service"),
        ("sqlglot", "from platform_core.expr import parse; parse('a > 1')", "parse"),
        # found from outside: the CLI kit's names raised a bare ModuleNotFoundError
        ("typer", "from platform_core.cli import print_table", "service"),
        ("typer", "from platform_core.cli import fail", "service"),
        # httpx loads on use, not at import (a CLI's --help does not need it)
        (
            "httpx",
            "from platform_core.cli import normalize_url\n    normalize_url('http://h')",
            "service",
        ),
        ("httpx", "from platform_core.http import http_client\n    http_client()", "service"),
    ],
)
def test_a_missing_extra_is_one_error_naming_the_install_command(
    blocked: str, code: str, extra: str
) -> None:
    out = _run_without(
        [blocked],
        "from platform_core import MissingExtraError\n"
        f"try:\n    {code}\nexcept MissingExtraError as exc:\n    print(exc.message)\n",
    )
    assert out.returncode == 0, out.stderr
    assert f"'{blocked}', which is not installed" in out.stdout
    assert f"pip install 'platform-core[{extra}]'" in out.stdout


def test_the_missing_extra_error_is_an_import_error_and_a_platform_error() -> None:
    from platform_core import MissingExtraError, PlatformError, UnavailableError
    from platform_core._extras import missing_extra

    error = missing_extra("platform_core.auth", "jwt")
    assert isinstance(error, MissingExtraError)
    assert isinstance(error, ImportError)
    assert isinstance(error, UnavailableError)
    assert isinstance(error, PlatformError)
    assert error.status == 503
