"""Shared machinery of writers and views: control words, waiting, consumers, batch index.

Every control word is read and written through ``atomicshm`` (sequentially consistent
loads, stores, fetch-add and compare-and-swap), so publication is correct on ARM64 as well
as on x86-64: the writer fills a block, stores its batch entry, then stores ``COMMIT_SEQ``;
a reader loads ``COMMIT_SEQ`` before it touches anything that count covers.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Final

import numpy as np

from strand.errors import StrandAbortError, StrandStateError, StrandTimeoutError
from strand.layout import BATCH_ENTRY, CTRL, MAX_CONSUMERS, STATUS_NAMES, StrandMap
from strand.segment import Segment, owner_identity
from strand.sync import futex_wait, futex_wake, process_alive

__all__ = ["NONE", "Ring"]

NONE: Final = (1 << 64) - 1  # "no buffer" in a block's column descriptor
REGISTERING: Final = 1  # a consumer slot being claimed (real tokens are >= 64)
REASON_WRITER_DIED: Final = 1
STATUS_INIT, STATUS_STREAMING, STATUS_EOS, STATUS_ERROR = range(4)
_ENTRY = struct.Struct("<4Q")
_SPIN: Final = 200  # loads before sleeping in the kernel (a few tens of microseconds)
_SLICE_S: Final = 0.2  # longest single sleep: liveness and abort checks run between sleeps


class Ring:
    """A strand's segment seen through its map: counters, futexes, batch index, consumers."""

    def __init__(self, segment: Segment, smap: StrandMap) -> None:
        self.segment = segment
        self.map = smap
        self.atomic = segment.atomics
        self.buf = segment.buf
        self.mm = segment.mmap
        probe = np.frombuffer(self.buf, np.uint8, 1)
        self.base_address: int = probe.ctypes.data  # of the data mapping (stable until close)
        del probe
        self.ctrl = smap.control_offset
        self.heap_offset = smap.heap_offset
        self.heap_capacity = smap.heap_capacity
        self.index_capacity = smap.index_capacity
        self.mask = smap.index_capacity - 1
        self.batches_offset = smap.batches_offset
        self.pid, self.start = owner_identity()
        base = self.atomic.address
        self._commit_futex = base + self.ctrl + CTRL.COMMIT_FUTEX
        self._ack_futex = base + self.ctrl + CTRL.ACK_FUTEX
        self._liveness_checked = -1.0

    # -- words ------------------------------------------------------------------------

    def load(self, word: int) -> int:
        return self.atomic.load_u64(self.ctrl + word)

    def store(self, word: int, value: int) -> None:
        self.atomic.store_u64(self.ctrl + word, value)

    def cas(self, word: int, expected: int, desired: int) -> bool:
        return self.atomic.cas_u64(self.ctrl + word, expected, desired) == expected

    @property
    def status_code(self) -> int:
        return self.load(CTRL.STATUS)

    def status_name(self) -> str:
        """The ring's status; a streaming ring whose writer died reads as ``error``.

        The writer's liveness (a ``kill(pid, 0)`` and a ``/proc`` read) is checked at most
        every 0.1 s, so polling ``status`` in a read loop stays cheap.
        """
        code = self.load(CTRL.STATUS)
        if code in (STATUS_INIT, STATUS_STREAMING):
            now = time.monotonic()
            if now - self._liveness_checked >= 0.1:
                self._liveness_checked = now
                if self.writer_dead() and self.cas(CTRL.STATUS, code, STATUS_ERROR):
                    self.store(CTRL.STATUS_REASON, REASON_WRITER_DIED)
                    self.notify_commit()
                code = self.load(CTRL.STATUS)
        return STATUS_NAMES[code] if code < len(STATUS_NAMES) else "error"

    def _status_now(self) -> str:
        self._liveness_checked = -1.0
        return self.status_name()

    def writer_dead(self) -> bool:
        pid = self.load(CTRL.WRITER_PID)
        return pid != 0 and not process_alive(pid, self.load(CTRL.WRITER_START))

    # -- batch index ------------------------------------------------------------------

    def entry(self, batch: int) -> tuple[int, int, int, int]:
        """(first_seq, rows, block mono offset, heap start) of a batch number."""
        off = self.batches_offset + (batch & self.mask) * BATCH_ENTRY
        return _ENTRY.unpack_from(self.mm, off)

    def put_entry(self, batch: int, first: int, rows: int, block: int, heap_start: int) -> None:
        off = self.batches_offset + (batch & self.mask) * BATCH_ENTRY
        _ENTRY.pack_into(self.mm, off, first, rows, block, heap_start)

    def find_batch(self, seq: int, committed_batches: int) -> int:
        """Number of the committed batch holding record ``seq`` (binary search by first_seq).

        Only batches still in the index (the last ``index_capacity``) are searched; the
        caller guarantees ``seq`` is committed and not yet released.
        """
        lo = max(0, committed_batches - self.index_capacity)
        hi = committed_batches - 1
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if self.entry(mid)[0] <= seq:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def heap_phys(self, mono: int) -> int:
        """Byte offset inside the segment of a heap position."""
        return self.heap_offset + mono % self.heap_capacity

    # -- consumers --------------------------------------------------------------------

    def slot_word(self, slot: int, field: int) -> int:
        return CTRL.CONSUMERS + slot * CTRL.SLOT + field

    def register(self) -> int:
        """Claim a free consumer slot positioned at the current commit; returns its token.

        The slot is claimed first (token word 0 -> REGISTERING), then its pid and position
        are written, then the token is published; the writer ignores slots still
        registering, and nothing else ever writes a slot it does not own.
        """
        for slot in range(MAX_CONSUMERS):
            token_word = self.slot_word(slot, CTRL.SLOT_TOKEN)
            if self.load(token_word) != 0 or not self.cas(token_word, 0, REGISTERING):
                continue
            self.store(self.slot_word(slot, CTRL.SLOT_PID), self.pid)
            self.store(self.slot_word(slot, CTRL.SLOT_START), self.start)
            self.store(self.slot_word(slot, CTRL.SLOT_POS), self.load(CTRL.COMMIT_SEQ))
            token = (self.atomic.fetch_add_u64(self.ctrl + CTRL.REGISTER_SEQ, 1) + 1) << 6 | slot
            self.store(token_word, token)
            # re-read after publishing: the writer now sees this slot, so nothing from here
            # on can be overwritten before this consumer acknowledges it
            self.store(self.slot_word(slot, CTRL.SLOT_POS), self.load(CTRL.COMMIT_SEQ))
            self.notify_ack()
            return token
        raise StrandStateError(
            f"all {MAX_CONSUMERS} consumer slots are in use; release a consumer first"
        )

    def slot_of(self, token: int) -> int:
        slot = token & 63
        if (
            token < 64
            or slot >= MAX_CONSUMERS
            or self.load(self.slot_word(slot, CTRL.SLOT_TOKEN)) != token
        ):
            raise StrandStateError(
                f"consumer token {token} is not registered (released, or evicted because its "
                "process died); register_consumer() again"
            )
        return slot

    def _free(self, slot: int, token: int) -> None:
        """Take a slot from ``token`` (REGISTERING), clear its owner, then free it."""
        token_word = self.slot_word(slot, CTRL.SLOT_TOKEN)
        if self.cas(token_word, token, REGISTERING):
            self.store(self.slot_word(slot, CTRL.SLOT_PID), 0)
            self.store(self.slot_word(slot, CTRL.SLOT_START), 0)
            self.store(token_word, 0)

    def release(self, token: int) -> None:
        slot = token & 63
        if token >= 64 and slot < MAX_CONSUMERS:
            self._free(slot, token)
        self.notify_ack()

    def position(self, token: int) -> int:
        return self.load(self.slot_word(self.slot_of(token), CTRL.SLOT_POS))

    def acknowledge(self, token: int, upto: int) -> None:
        slot = self.slot_of(token)
        word = self.slot_word(slot, CTRL.SLOT_POS)
        if upto > self.load(word):
            self.store(word, upto)
            self.notify_ack()

    def min_position(self, evict: bool) -> int | None:
        """Lowest position among live consumers (None if there are none).

        With ``evict``, consumers whose process died are released first, so a crashed
        reader cannot hold the writer back. Slots still registering are skipped: they take
        their position from the commit count after they become visible.
        """
        lowest = None
        for slot in range(MAX_CONSUMERS):
            token = self.load(self.slot_word(slot, CTRL.SLOT_TOKEN))
            if token < 64:  # free or registering
                continue
            if evict:
                pid = self.load(self.slot_word(slot, CTRL.SLOT_PID))
                start = self.load(self.slot_word(slot, CTRL.SLOT_START))
                if pid and not process_alive(pid, start):
                    self._free(slot, token)
                    continue
            pos = self.load(self.slot_word(slot, CTRL.SLOT_POS))
            if lowest is None or pos < lowest:
                lowest = pos
        return lowest

    def consumers(self) -> int:
        return sum(
            1
            for slot in range(MAX_CONSUMERS)
            if self.load(self.slot_word(slot, CTRL.SLOT_TOKEN)) >= 64
        )

    # -- waking and waiting -----------------------------------------------------------

    def notify_commit(self) -> None:
        a = self.atomic
        a.fetch_add_u32(self.ctrl + CTRL.COMMIT_FUTEX, 1)
        if a.load_u32(self.ctrl + CTRL.COMMIT_WAITERS):
            futex_wake(self._commit_futex)

    def notify_ack(self) -> None:
        a = self.atomic
        a.fetch_add_u32(self.ctrl + CTRL.ACK_FUTEX, 1)
        if a.load_u32(self.ctrl + CTRL.ACK_WAITERS):
            futex_wake(self._ack_futex)

    def wait_commit(self, after: int, timeout: float, cancel: Any = None) -> int:
        """Block until more than ``after`` records are committed, or the stream ended.

        Returns the committed count. Raises ``StrandTimeoutError`` after ``timeout``.
        """
        a = self.atomic
        futex_word = self.ctrl + CTRL.COMMIT_FUTEX
        commit_word = self.ctrl + CTRL.COMMIT_SEQ
        status_word = self.ctrl + CTRL.STATUS
        for _ in range(_SPIN):
            count = a.load_u64(commit_word)
            if count > after:
                return count
            if a.load_u64(status_word) >= STATUS_EOS:
                # the writer stores its last commit before the end status, so the count read
                # before that status may be stale (the reader was preempted between the loads)
                return a.load_u64(commit_word)
        deadline = time.monotonic() + timeout
        waiters = self.ctrl + CTRL.COMMIT_WAITERS
        woke = True
        while True:
            seen = a.load_u32(futex_word)
            count = a.load_u64(commit_word)
            if count > after:
                return count
            if a.load_u64(status_word) >= STATUS_EOS:
                return a.load_u64(commit_word)  # (as above: the count may be stale)
            if not woke and self._status_now() == "error":  # the writer died
                return a.load_u64(commit_word)
            remaining = deadline - time.monotonic()
            if cancel is not None and cancel.is_set():
                return count
            if remaining <= 0:
                raise StrandTimeoutError(
                    f"no record after {after} was committed within {timeout:g} s "
                    f"(status {self.status_name()}, {count} committed)"
                )
            a.fetch_add_u32(waiters, 1)
            try:
                woke = futex_wait(self._commit_futex, seen, min(remaining, _SLICE_S))
            finally:
                a.fetch_sub_u32(waiters, 1)

    def wait_ack(self, ready, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        """Block the writer until ``ready(evict)`` holds (space freed by consumers).

        Checks for abort between sleeps; dead consumers are evicted once a sleep times
        out. Raises ``StrandAbortError`` or ``StrandTimeoutError``.
        """
        a = self.atomic
        futex_word = self.ctrl + CTRL.ACK_FUTEX
        waiters = self.ctrl + CTRL.ACK_WAITERS
        deadline = time.monotonic() + timeout
        evict = False
        spins = 20
        while True:
            seen = a.load_u32(futex_word)
            if self.load(CTRL.ABORT):
                raise StrandAbortError("a consumer signalled abort; stop and call abort()")
            if ready(evict):
                return
            if spins:
                spins -= 1
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StrandTimeoutError(
                    f"the writer waited {timeout:g} s for consumers to free {what}; the slowest "
                    "consumer is not acknowledging reads"
                )
            a.fetch_add_u32(waiters, 1)
            try:
                woke = futex_wait(self._ack_futex, seen, min(remaining, _SLICE_S))
            finally:
                a.fetch_sub_u32(waiters, 1)
            evict = not woke
