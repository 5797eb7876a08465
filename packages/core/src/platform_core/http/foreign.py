"""Foreign errors at the boundary: a small registry that turns a library's exception
(Arrow, DuckDB, LMDB, ...) into the core kind it means, so no known failure is a bare 500.

Core registers Arrow's; a package registers the libraries it uses (lake: DuckDB, Elkyn:
LMDB) with :func:`register_translator`. The servers' handlers call :func:`translate`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..errors import BadInputError, OverBudgetError, PlatformError

__all__ = ["Translator", "register_translator", "translate"]

Translator = Callable[[BaseException], PlatformError | None]

_TRANSLATORS: list[tuple[type[BaseException], Translator]] = []
_ARROW = {"registered": False}
"""Whether Arrow's translations are in ``_TRANSLATORS`` (see :func:`_register_arrow`)."""


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
    _register_arrow()
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


def _register_arrow() -> None:
    """Core's translations of Arrow's exceptions, registered once pyarrow is loaded: no Arrow
    exception exists before, and the boundary does not load pyarrow itself (a CLI's ``--help``
    imports this module). They go first in the registry, as if registered at import, so a
    package's own translation of an Arrow type still wins."""
    pa = sys.modules.get("pyarrow")
    if _ARROW["registered"] or pa is None:
        return
    _ARROW["registered"] = True
    arrow: list[tuple[type[BaseException], Translator]] = [
        (pa.ArrowInvalid, _arrow_bad_input),
        (pa.ArrowTypeError, _arrow_bad_input),
        (pa.ArrowNotImplementedError, _arrow_bad_input),
        (pa.ArrowMemoryError, _arrow_memory),
    ]
    _TRANSLATORS[:0] = arrow
