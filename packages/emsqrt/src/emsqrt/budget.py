"""The memory budget: every operator reserves bytes before it materialises them.

``MemoryBudget(cap_bytes).try_acquire(n, label)`` returns a :class:`Guard` (a context manager
that gives the bytes back) or ``None`` when the reservation would pass the cap; the operator
then spills and tries again. ``keep_free`` lets an operator that accumulates (a sort run, a hash
table) leave head-room for the batches in flight through the streaming operators around it.
The peak of reserved bytes is kept per budget and per label for the manifest.
"""

from __future__ import annotations

import threading
from types import TracebackType

from platform_core import MemCap

from .errors import CapTooSmallError

__all__ = ["Guard", "MemoryBudget", "format_bytes"]


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``: sizes in messages and reports."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - loop always returns


class Guard:
    """Bytes held from a budget until ``release()`` or the end of a ``with`` block."""

    def __init__(self, budget: MemoryBudget, nbytes: int, label: str) -> None:
        self.budget = budget
        self.nbytes = nbytes
        self.label = label

    def try_grow(self, extra: int, keep_free: int = 0) -> bool:
        """Reserve ``extra`` more bytes under this guard; False (nothing changes) if refused."""
        if extra <= 0:
            self.shrink(-extra)
            return True
        if not self.budget._take(extra, self.label, keep_free):
            return False
        self.nbytes += extra
        return True

    def shrink(self, fewer: int) -> None:
        """Give back ``fewer`` bytes (at most what is held)."""
        fewer = min(max(fewer, 0), self.nbytes)
        self.budget._give(fewer, self.label)
        self.nbytes -= fewer

    def resize(self, nbytes: int, keep_free: int = 0) -> bool:
        """Hold exactly ``nbytes``; False (nothing changes) if growing was refused."""
        return self.try_grow(nbytes - self.nbytes, keep_free)

    def release(self) -> None:
        self.shrink(self.nbytes)

    def __enter__(self) -> Guard:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Guard({self.label!r}, {format_bytes(self.nbytes)})"


class MemoryBudget:
    """A hard cap on reserved bytes, shared by the operators of a run (thread-safe).

    ``split(k)`` makes ``k`` child budgets of ``cap // k`` whose reservations also count here,
    so concurrent tasks cannot together pass the cap.
    """

    def __init__(self, cap_bytes: int, *, parent: MemoryBudget | None = None) -> None:
        if cap_bytes <= 0:
            raise CapTooSmallError(f"memory cap must be positive, got {cap_bytes} bytes")
        self.cap_bytes = MemCap(int(cap_bytes))
        self.parent = parent
        self.reserved = 0
        self.peak = 0
        self.peak_by_label: dict[str, int] = {}
        self._by_label: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def available(self) -> int:
        """Bytes that could still be reserved (also bounded by the parent's)."""
        own = self.cap_bytes - self.reserved
        return min(own, self.parent.available) if self.parent else own

    def try_acquire(self, nbytes: int, label: str, keep_free: int = 0) -> Guard | None:
        """A guard holding ``nbytes``, or None if that would leave less than ``keep_free``."""
        nbytes = max(int(nbytes), 0)
        if not self._take(nbytes, label, keep_free):
            return None
        return Guard(self, nbytes, label)

    def acquire(self, nbytes: int, label: str, what: str = "") -> Guard:
        """Like ``try_acquire`` for memory that cannot spill: refusal is a ``CapTooSmallError``."""
        guard = self.try_acquire(nbytes, label)
        if guard is None:
            need = self.reserved + int(nbytes)
            raise CapTooSmallError(
                f"{label}: needs {format_bytes(nbytes)} {what}but only "
                f"{format_bytes(self.available)} of the {format_bytes(self.cap_bytes)} cap is free; "
                f"raise the cap to at least {format_bytes(need * 1.25)} "
                "(--mem-cap / EMSQRT_MEM_CAP_BYTES)",
                cap_bytes=self.cap_bytes,
                needed_bytes=need,
            )
        return guard

    def split(self, parts: int) -> list[MemoryBudget]:
        """``parts`` child budgets of an equal share each (``max_parallel_tasks``)."""
        share = max(self.cap_bytes // max(parts, 1), 1)
        return [MemoryBudget(share, parent=self) for _ in range(max(parts, 1))]

    def _take(self, nbytes: int, label: str, keep_free: int) -> bool:
        with self._lock:
            if self.reserved + nbytes + max(keep_free, 0) > self.cap_bytes:
                return False
            if self.parent is not None and not self.parent._take(nbytes, label, keep_free):
                return False
            self.reserved += nbytes
            self.peak = max(self.peak, self.reserved)
            held = self._by_label.get(label, 0) + nbytes
            self._by_label[label] = held
            self.peak_by_label[label] = max(self.peak_by_label.get(label, 0), held)
            return True

    def _give(self, nbytes: int, label: str | None = None) -> None:
        with self._lock:
            self.reserved -= nbytes
            if label is not None:
                self._by_label[label] = self._by_label.get(label, 0) - nbytes
        if self.parent is not None:
            self.parent._give(nbytes, label)

    def __repr__(self) -> str:
        return (
            f"MemoryBudget(cap={format_bytes(self.cap_bytes)}, "
            f"reserved={format_bytes(self.reserved)}, peak={format_bytes(self.peak)})"
        )
