"""Optional parts of ``platform-core`` and the one error for a part that is not installed.

``pip install platform-core`` gives the schema and record types, errors, settings and the
expression language's tree, evaluation and SQL rendering. Two extras add the rest:

- ``service``: the service kit (tokens, users, TLS serving, the HTTP boundary, the CLI kit)
  with PyJWT, argon2-cffi, FastAPI, Starlette, uvicorn, httpx, Typer and rich;
- ``parse``: reading expression *text* (``platform_core.expr.parse``) with sqlglot's tokenizer.

A name whose module needs a missing distribution raises :class:`MissingExtraError`, which
names what is missing and the install command, instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import UnavailableError

__all__ = [
    "EXTRAS",
    "MissingExtraError",
    "available",
    "keep_function_names",
    "lazy_core_exports",
    "missing_extra",
    "require",
]

EXTRAS: Mapping[str, tuple[str, ...]] = {
    "service": ("jwt", "argon2", "fastapi", "starlette", "uvicorn", "httpx", "typer", "rich"),
    "parse": ("sqlglot",),
}
"""Extra of ``platform-core`` -> the top-level modules it installs."""

_EXTRA_OF = {module: extra for extra, modules in EXTRAS.items() for module in modules}


class MissingExtraError(UnavailableError, ImportError):
    """A part of the platform needs a distribution that is not installed (503 unavailable).

    Also an ``ImportError``, so code that tolerates a missing optional module still does.
    """

    kind = "unavailable"


def available(extra: str) -> bool:
    """Whether every module of ``extra`` can be imported (looked up, not imported)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in EXTRAS[extra])
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken one
        return False


def missing_extra(
    what: str,
    module: str,
    *,
    dist: str = "platform-core",
    extra: str | None = None,
) -> MissingExtraError:
    """The error for ``what`` needing ``module``, with the command that installs it."""
    top = module.split(".")[0]
    extra = extra or _EXTRA_OF.get(top)
    install = f"pip install '{dist}[{extra}]'" if extra else f"pip install {top}"
    return MissingExtraError(
        f"{what} needs the Python module {top!r}, which is not installed; install it with "
        f"{install}",
        module=top,
        install=install,
    )


def require(
    module: str, *, what: str, dist: str = "platform-core", extra: str | None = None
) -> Any:
    """Import ``module``, or raise :func:`missing_extra` when it (or its dependency) is absent."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise missing_extra(what, exc.name or module, dist=dist, extra=extra) from None


def lazy_core_exports(
    package: str,
    exports: Mapping[str, str],
    submodules: Iterable[str],
    needs: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``platform_core``: each name of ``exports`` (name ->
    relative module), each of ``submodules`` and any other submodule of the package (``.types``,
    ``.settings``, as before the split) is imported on first access and kept in the package's
    namespace; a missing optional distribution is a :class:`MissingExtraError` (an
    ``ImportError`` naming the install line). ``needs`` (name -> extra) keeps the names of an
    extra that is not installed out of ``dir()``, so ``help()`` and ``inspect`` list the rest."""
    table = dict(exports)
    subs = frozenset(submodules)
    needs = dict(needs or {})

    def _import(where: str, name: str) -> Any:
        try:
            return importlib.import_module(where, package)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top not in _EXTRA_OF:
                raise
            raise missing_extra(f"{package}.{name}", top) from None

    def _submodule(name: str) -> bool:
        import importlib.util

        if not name.isidentifier() or name.startswith("_"):
            return False
        try:
            return importlib.util.find_spec(f"{package}.{name}") is not None
        except (ImportError, ValueError):
            return False

    def __getattr__(name: str) -> Any:
        if name in subs:
            value = _import(f".{name}", name)
        elif name in table:
            value = getattr(_import(table[name], name), name)
        elif _submodule(name):
            value = _import(f".{name}", name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        vars(sys.modules[package])[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        names = {*vars(sys.modules[package]), *table, *subs}
        return sorted(n for n in names if n not in needs or available(needs[n]))

    return __getattr__, __dir__


def keep_function_names(package: str, names: Iterable[str]) -> None:
    """Keep the submodules ``names`` of ``package`` from replacing its attributes of that name.

    Importing ``package.x`` sets the attribute ``x`` of the package to the module. Where the
    package's public ``x`` is a function defined in that module (``platform_core.redact``), a
    lazily exported name would then be the module for whoever asked after the submodule was
    imported by someone else; the package's class refuses that one assignment instead.
    """
    guarded = frozenset(names)

    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in guarded and isinstance(value, types.ModuleType):
                return  # __getattr__ resolves the name to the function on first use
            super().__setattr__(name, value)

    sys.modules[package].__class__ = _Package
