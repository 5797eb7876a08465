"""Foreign errors at the boundary: a small registry that turns a library's exception
(Arrow, DuckDB, LMDB, ...) into the core kind it means, so no known failure is a bare 500.

Core registers Arrow's; a package registers the libraries it uses (lake: DuckDB, Elkyn:
LMDB) with :func:`register_translator`. The servers' handlers call :func:`translate`.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from ..errors import BadInputError, OverBudgetError, PlatformError

__all__ = ["Translator", "register_translator", "translate"]

Translator = Callable[[BaseException], PlatformError | None]

_TRANSLATORS: list[tuple[type[BaseException], Translator]] = []


def register_translator(exc_type: type[BaseException], translator: Translator) -> None:
    """Translate exceptions of ``exc_type`` (and subclasses) with ``translator``.

    The most specific registered type wins; among equals, the latest registration. A
    translator may return ``None`` to leave an exception untranslated (a real 500).
    """
    _TRANSLATORS.append((exc_type, translator))


def translate(exc: BaseException) -> PlatformError | None:
    """The core error ``exc`` stands for: itself if already one, a registered translation,
    or ``None`` when nobody knows it."""
    if isinstance(exc, PlatformError):
        return exc
    for klass in type(exc).__mro__:
        for exc_type, translator in reversed(_TRANSLATORS):
            if exc_type is klass:
                translated = translator(exc)
                if translated is not None:
                    translated.__cause__ = exc
                    return translated
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _arrow_bad_input(exc: BaseException) -> PlatformError:
    return BadInputError(f"the data cannot be processed: {_first_line(exc)}")


def _arrow_memory(exc: BaseException) -> PlatformError:
    return OverBudgetError(
        f"Arrow ran out of memory: {_first_line(exc)} (use smaller inputs or raise the memory cap)"
    )


for _arrow_type in (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
    register_translator(_arrow_type, _arrow_bad_input)
register_translator(pa.ArrowMemoryError, _arrow_memory)
