"""Cooperative cancellation: a run given ``cancel`` (a ``threading.Event`` or a function
answering whether to stop) checks it once per batch in every operator loop and spill read or
write, and raises :class:`CancelledError`; the run's spill directory goes as on any error."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import CancelledError

__all__ = ["Cancel", "CancelCheck", "cancel_check", "cancel_flag"]

Cancel = threading.Event | Callable[[], bool]
"""What a caller passes: an event to set, or a function that says when to stop."""

CancelCheck = Callable[[], None]
"""What the operators call per batch: returns, or raises ``CancelledError``."""


def _never() -> None:
    return None


def cancel_flag(cancel: Cancel | None) -> Callable[[], bool] | None:
    """``cancel`` as a function answering whether to stop (None without one)."""
    if cancel is None:
        return None
    return cancel.is_set if isinstance(cancel, threading.Event) else cancel


def cancel_check(cancel: Cancel | None) -> CancelCheck:
    """The per-batch check for ``cancel`` (a no-op without one)."""
    is_set = cancel_flag(cancel)
    if is_set is None:
        return _never

    def check() -> None:
        if is_set():
            raise CancelledError(
                "the run was cancelled by its caller (a cancel or a timeout) before it "
                "finished; its spill files were removed and no result was returned: run it "
                "again for its result"
            )

    return check
