"""SIGTERM as an exception for the length of a run, so the run's cleanup (spill files, the
sink's temp file) happens as it does on Ctrl-C; Python's default SIGTERM ends the process
without running ``finally`` blocks."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["SIGTERM_EXIT", "sigterm_raises"]

#: Exit status of a process ended by SIGTERM (128 + 15, as a shell reports it).
SIGTERM_EXIT = 128 + signal.SIGTERM


def _raise(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(SIGTERM_EXIT)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit(143)``. Only on the main thread (the only
    one that may set handlers) and only over Python's default handler: a host application's
    own SIGTERM handler is left alone. The previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
