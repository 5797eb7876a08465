"""The shared utf8_ref intern table, replaced under a sequence lock.

Whoever updates it bumps the version to odd, writes the JSON list, then bumps it to even;
readers copy it and retry if the version moved. Every cursor and writer checks the version
(one atomic load) before resolving or encoding a handle, so an update is seen everywhere at
once.
"""

from __future__ import annotations

import json

import pyarrow as pa

from strand._ring import Ring
from strand.errors import StrandConfigError, StrandStateError
from strand.layout import CTRL

__all__ = ["InternTable"]


class InternTable:
    """One process's cached view of a strand's intern table."""

    def __init__(self, ring: Ring) -> None:
        self._ring = ring
        self._version = -1
        self._table: list[str] = []
        self._lookup: dict[str, int] = {}
        self._values = pa.array([], pa.utf8())

    def _refresh(self) -> None:
        ring = self._ring
        for _ in range(100_000):
            v1 = ring.load(CTRL.INTERN_VERSION)
            if v1 == self._version:
                return
            if v1 & 1:
                continue
            n = ring.load(CTRL.INTERN_LEN)
            start = ring.map.intern_offset
            raw = bytes(ring.buf[start : start + min(n, ring.map.intern_capacity)])
            if ring.load(CTRL.INTERN_VERSION) != v1:
                continue
            table = json.loads(raw) if raw else []
            self._table = table
            self._lookup = {value: i for i, value in enumerate(table)}
            self._values = pa.array(table, pa.utf8())
            self._version = v1
            return
        raise StrandStateError("the intern table is being rewritten and never settles")

    def table(self) -> list[str]:
        self._refresh()
        return self._table

    def current(self) -> tuple[pa.Array, dict[str, int]]:
        """(values as an Arrow array, value -> handle) for encoding and decoding."""
        self._refresh()
        return self._values, self._lookup

    def update(self, table: list[str]) -> None:
        """Replace the table for every process attached to the strand."""
        from strand.layout import _check_intern

        table = list(table)
        ring = self._ring
        try:
            _check_intern(table, ring.map.intern_capacity)
        except StrandConfigError:
            raise
        raw = json.dumps(table, separators=(",", ":")).encode()
        while True:
            version = ring.load(CTRL.INTERN_VERSION)
            if not version & 1 and ring.cas(CTRL.INTERN_VERSION, version, version + 1):
                break
        start = ring.map.intern_offset
        ring.buf[start : start + len(raw)] = raw
        ring.store(CTRL.INTERN_LEN, len(raw))
        ring.store(CTRL.INTERN_VERSION, version + 2)
