"""Lazy re-exports for a package's ``__init__``: ``from pkg import Name`` imports the submodule
that defines ``Name`` on first use, so a command that needs none of them (``lake --help``,
``lake ls``) does not pay for FastAPI, Flight, DuckDB or sqlglot at start-up.

In the package::

    from typing import TYPE_CHECKING
    from platform_core.lazy import lazy_exports

    if TYPE_CHECKING:  # what type checkers and readers see; the same names as below
        from .node import LakeNode

    __getattr__, __dir__ = lazy_exports(__name__, {"LakeNode": ".node"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package`` that resolve each name of
    ``exports`` (name -> module, relative to ``package`` when it starts with a dot) on first
    access and keep it in the package's namespace."""
    table = dict(exports)

    def __getattr__(name: str) -> Any:
        where = table.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where, package), name)
        vars(sys.modules[package])[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table})

    return __getattr__, __dir__
