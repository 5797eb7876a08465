"""The shared utf8_ref intern table, replaced under a sequence lock.

Whoever updates it bumps the version to odd (recording its pid), writes the JSON list, then
bumps it to even; readers copy it and retry if the version moved. Every cursor and writer
checks the version (one atomic load) before resolving or encoding a handle, so an update is
seen everywhere at once. An updater that died mid-way is detected by its pid: the next
``update_intern_table`` takes the lock over, and readers say what happened instead of
spinning.
"""

from __future__ import annotations

import json
import time

import pyarrow as pa
from atomicshm import fence

from strand._ring import Ring
from strand.errors import StrandStateError, StrandTimeoutError
from strand.layout import CTRL, _check_intern
from strand.sync import process_alive

__all__ = ["InternTable"]

_WAIT_S = 2.0


class InternTable:
    """One process's cached view of a strand's intern table."""

    def __init__(self, ring: Ring) -> None:
        self._ring = ring
        self._version = -1
        self._table: list[str] = []
        self._lookup: dict[str, int] = {}
        self._values = pa.array([], pa.utf8())

    def _owner_dead(self) -> bool:
        owner = self._ring.load(CTRL.INTERN_OWNER)
        return owner != 0 and not process_alive(owner, 0)

    def _refresh(self) -> None:
        ring = self._ring
        deadline = 0.0
        spins = 0
        while True:
            v1 = ring.load(CTRL.INTERN_VERSION)
            if v1 == self._version:
                return
            if not v1 & 1:
                n = ring.load(CTRL.INTERN_LEN)
                start = ring.map.intern_offset
                fence()  # the copy below must not be ordered before the version load
                raw = bytes(ring.buf[start : start + min(n, ring.map.intern_capacity)])
                fence()
                if ring.load(CTRL.INTERN_VERSION) == v1:
                    table = json.loads(raw) if raw else []
                    self._table = table
                    self._lookup = {value: i for i, value in enumerate(table)}
                    self._values = pa.array(table, pa.utf8())
                    self._version = v1
                    return
            spins += 1
            if spins < 100:
                continue
            if not deadline:
                deadline = time.monotonic() + _WAIT_S
            if self._owner_dead():
                raise StrandStateError(
                    "the intern table was being replaced by a process that died; call "
                    "update_intern_table() to write it again"
                )
            if time.monotonic() > deadline:
                raise StrandTimeoutError(
                    f"the intern table stayed locked for {_WAIT_S:g} s by pid "
                    f"{ring.load(CTRL.INTERN_OWNER)}"
                )
            time.sleep(0.0001)

    def table(self) -> list[str]:
        self._refresh()
        return self._table

    def current(self) -> tuple[pa.Array, dict[str, int]]:
        """(values as an Arrow array, value -> handle) for encoding and decoding."""
        self._refresh()
        return self._values, self._lookup

    def update(self, table: list[str]) -> None:
        """Replace the table for every process attached to the strand."""
        table = list(table)
        ring = self._ring
        _check_intern(table, ring.map.intern_capacity)
        raw = json.dumps(table, separators=(",", ":")).encode()
        deadline = time.monotonic() + _WAIT_S
        while True:
            version = ring.load(CTRL.INTERN_VERSION)
            if version & 1:
                # locked: take it over only from an updater that died
                if self._owner_dead() and ring.cas(CTRL.INTERN_VERSION, version, version + 2):
                    locked = version + 2  # held by us now, still odd
                    break
                if time.monotonic() > deadline:
                    raise StrandTimeoutError(
                        f"the intern table stayed locked for {_WAIT_S:g} s by pid "
                        f"{ring.load(CTRL.INTERN_OWNER)}"
                    )
                time.sleep(0.0001)
                continue
            if ring.cas(CTRL.INTERN_VERSION, version, version + 1):
                locked = version + 1
                break
        ring.store(CTRL.INTERN_OWNER, ring.pid)
        fence()
        start = ring.map.intern_offset
        ring.buf[start : start + len(raw)] = raw
        ring.store(CTRL.INTERN_LEN, len(raw))
        fence()
        ring.store(CTRL.INTERN_OWNER, 0)
        ring.store(CTRL.INTERN_VERSION, locked + 1)
