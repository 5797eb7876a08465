"""Strand stands alone: `import strand` loads nothing of the service kit (no web framework, no
tokens or password hashing) and no SQL parser, so a ring buffer does not pay for them."""

from __future__ import annotations

from platform_core.testing import SERVICE_KIT_MODULES, heavy_modules_loaded


def test_import_strand_loads_no_service_kit_and_no_parser() -> None:
    unwanted = [*SERVICE_KIT_MODULES, "sqlglot", "typer", "rich", "pydantic_settings", "ray"]
    assert heavy_modules_loaded(["strand"], unwanted) == []
