"""``RecordCursor``: per-record access into committed batches without allocating.

``seek`` moves two integers when the record is in the current batch, and re-reads the
batch's column positions (a binary search over the batch index) when it is not. Getters
read straight from shared memory; ``get_string``/``get_json`` decode once per record and
cache; ``get_bytes``/``get_i32_array``/``get_f32_array`` return zero-copy views that stay
valid until the record is acknowledged.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import struct
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np

from strand import blocks
from strand.errors import StrandStateError, StrandValueError
from strand.layout import CTRL

if TYPE_CHECKING:
    from strand._intern import InternTable
    from strand._ring import Ring
    from strand.schema import StrandSchema

__all__ = ["RecordCursor"]

_STRUCTS: Final = {
    "u8": struct.Struct("<B"),
    "u16": struct.Struct("<H"),
    "u32": struct.Struct("<I"),
    "i32": struct.Struct("<i"),
    "i64": struct.Struct("<q"),
    "f32": struct.Struct("<f"),
    "f64": struct.Struct("<d"),
    "date": struct.Struct("<i"),
    "timestamp": struct.Struct("<q"),
    "utf8_ref": struct.Struct("<i"),
}
_OFFSETS = struct.Struct("<ii")
_EPOCH_DATE: Final = dt.date(1970, 1, 1)
_EPOCH_TS: Final = dt.datetime(1970, 1, 1)


class CursorView(Protocol):
    """What a cursor reads of the :class:`~strand.view.StrandView` that made it.

    Said here as a protocol, so this module does not import the view (which imports the
    cursor): the view's ring, schema, memory and intern table, the records already released,
    its consumer tokens, and its epoch and open checks.
    """

    schema: StrandSchema
    _ring: Ring
    _buf: memoryview
    _intern: InternTable
    _tokens: list[int]
    _released: int

    def _sync_epoch(self) -> bool: ...

    def _check_open(self) -> None: ...


class RecordCursor:
    """A reusable position in a strand: ``seek(seq)``, then typed getters by field name."""

    __slots__ = (
        "_atomic", "_cache", "_dat", "_end", "_epoch", "_epoch_word", "_first", "_index",
        "_kinds", "_mm", "_ring", "_row", "_seq", "_unpack", "_vat", "_view", "_widths", "_xat",
    )  # fmt: skip

    def __init__(self, view: CursorView) -> None:
        self._view = view
        self._ring = view._ring
        self._mm = view._ring.mm
        schema = view.schema
        n = len(schema)
        self._index = {f.name: i for i, f in enumerate(schema)}
        self._kinds = [f.type.kind for f in schema]
        self._widths = [f.width for f in schema]
        self._unpack = [_STRUCTS.get(f.type.kind) for f in schema]
        self._vat = [-1] * n
        self._xat = [0] * n
        self._dat = [0] * n
        self._first = 0
        self._end = 0
        self._row = 0
        self._seq = -1
        self._cache: dict[int, Any] = {}
        self._atomic = view._ring.atomic
        self._epoch_word = view._ring.ctrl + CTRL.EPOCH
        self._epoch = self._atomic.load_u64(self._epoch_word)

    @property
    def seq(self) -> int:
        """The current record, -1 before the first successful ``seek``."""
        return self._seq

    def seek(self, seq: int) -> bool:
        """Position on record ``seq``; False if it is not committed or already released."""
        if self._atomic.load_u64(self._epoch_word) != self._epoch:  # reset(): forget the batch
            self._epoch = self._atomic.load_u64(self._epoch_word)
            self._first = self._end = 0
            self._seq = -1
            self._view._sync_epoch()
        if seq < self._view._released or seq < 0:
            return False
        if self._first <= seq < self._end:
            self._row = seq - self._first
            if self._seq != seq:
                self._seq = seq
                if self._cache:
                    self._cache.clear()
            return True
        return self._locate(seq)

    def _locate(self, seq: int) -> bool:
        ring = self._ring
        self._view._check_open()
        if not self._view._tokens:
            raise StrandStateError(
                "the cursor's view has no registered consumer, so nothing protects records "
                "from being overwritten; register_consumer() first"
            )
        if seq >= ring.load(CTRL.COMMIT_SEQ):
            return False
        batch = ring.find_batch(seq, ring.load(CTRL.BATCH_COMMIT))
        first, rows, mono, _ = ring.entry(batch)
        if not first <= seq < first + rows:
            return False
        _, _, descs = blocks.read_descriptors(
            ring.buf, ring.heap_phys(mono), mono, self._view.schema
        )
        for c, (validity_at, values_at, data_at, _len, _nulls) in enumerate(descs):
            self._vat[c] = ring.heap_phys(validity_at) if validity_at != blocks.NONE else -1
            self._xat[c] = ring.heap_phys(values_at)
            self._dat[c] = ring.heap_phys(data_at) if data_at != blocks.NONE else 0
        self._first = first
        self._end = first + rows
        self._row = seq - first
        self._seq = seq
        self._cache.clear()
        return True

    # -- access -------------------------------------------------------------------------

    def _col(self, name: str, kinds: tuple[str, ...], getter: str) -> int:
        c = self._index.get(name)
        if c is None:
            raise StrandValueError(
                f'no field "{name}" in this strand; fields: {", ".join(self._index)}'
            )
        if self._kinds[c] not in kinds:
            raise StrandValueError(
                f'field "{name}" is {self._kinds[c]}, which {getter}() does not read; use '
                f"{_GETTERS[self._kinds[c]]}() or get()"
            )
        if self._seq < 0:
            raise StrandStateError("seek() to a record before reading it")
        return c

    def _is_null(self, c: int) -> bool:
        at = self._vat[c]
        if at < 0:
            return False
        row = self._row
        return not (self._mm[at + (row >> 3)] >> (row & 7)) & 1

    def _fixed(self, c: int) -> Any:
        if self._is_null(c):
            return None
        return self._unpack[c].unpack_from(self._mm, self._xat[c] + self._row * self._widths[c])[0]  # type: ignore[union-attr]

    def _span(self, c: int) -> tuple[int, int] | None:
        if self._is_null(c):
            return None
        o0, o1 = _OFFSETS.unpack_from(self._mm, self._xat[c] + 4 * self._row)
        return o0, o1

    def get_u8(self, name: str) -> int | None:
        return self._fixed(self._col(name, ("u8",), "get_u8"))  # type: ignore[no-any-return]

    def get_u16(self, name: str) -> int | None:
        return self._fixed(self._col(name, ("u16",), "get_u16"))  # type: ignore[no-any-return]

    def get_u32(self, name: str) -> int | None:
        return self._fixed(self._col(name, ("u32",), "get_u32"))  # type: ignore[no-any-return]

    def get_i32(self, name: str) -> int | None:
        return self._fixed(self._col(name, ("i32",), "get_i32"))  # type: ignore[no-any-return]

    def get_i64(self, name: str) -> int | None:
        return self._fixed(self._col(name, ("i64",), "get_i64"))  # type: ignore[no-any-return]

    def get_f32(self, name: str) -> float | None:
        return self._fixed(self._col(name, ("f32",), "get_f32"))  # type: ignore[no-any-return]

    def get_f64(self, name: str) -> float | None:
        return self._fixed(self._col(name, ("f64",), "get_f64"))  # type: ignore[no-any-return]

    def get_bool(self, name: str) -> bool | None:
        c = self._col(name, ("bool8",), "get_bool")
        if self._is_null(c):
            return None
        row = self._row
        return bool((self._mm[self._xat[c] + (row >> 3)] >> (row & 7)) & 1)

    def get_date(self, name: str) -> dt.date | None:
        days = self._fixed(self._col(name, ("date",), "get_date"))
        return None if days is None else _EPOCH_DATE + dt.timedelta(days=days)

    def get_timestamp(self, name: str) -> dt.datetime | None:
        """A naive datetime, or an aware one in the field's time zone."""
        c = self._col(name, ("timestamp",), "get_timestamp")
        micros = self._fixed(c)
        if micros is None:
            return None
        value = _EPOCH_TS + dt.timedelta(microseconds=micros)
        tz = self._view.schema.fields[c].type.tz
        if tz is None:
            return value
        import pyarrow as pa

        return pa.scalar(micros, pa.timestamp("us", tz)).as_py()  # type: ignore[no-any-return]

    def get_decimal(self, name: str) -> decimal.Decimal | None:
        """The exact value of a decimal field, with the field's scale as its exponent."""
        c = self._col(name, ("decimal",), "get_decimal")
        if self._is_null(c):
            return None
        at = self._xat[c] + 16 * self._row
        unscaled = int.from_bytes(self._mm[at : at + 16], "little", signed=True)
        scale = self._view.schema.fields[c].type.scale or 0
        # Built from sign, digits and exponent: exact for all 38 digits. Arithmetic such as
        # ``scaleb`` would round to the thread's context (28 digits by default).
        digits = decimal.Decimal(unscaled).as_tuple()
        return decimal.Decimal((digits.sign, digits.digits, -scale))

    def get_string(self, name: str) -> str | None:
        """UTF-8 text of a utf8 field, decoded once per record."""
        c = self._col(name, ("utf8",), "get_string")
        cache = self._cache
        if c in cache:
            return cache[c]  # type: ignore[no-any-return]
        span = self._span(c)
        value = (
            None
            if span is None
            else self._mm[self._dat[c] + span[0] : self._dat[c] + span[1]].decode()
        )
        cache[c] = value
        return value

    def get_json(self, name: str) -> Any:
        """The parsed value of a json field, parsed once per record."""
        c = self._col(name, ("json",), "get_json")
        cache = self._cache
        if c in cache:
            return cache[c]
        span = self._span(c)
        value = (
            None
            if span is None
            else json.loads(self._mm[self._dat[c] + span[0] : self._dat[c] + span[1]])
        )
        cache[c] = value
        return value

    def get_ref(self, name: str) -> str | None:
        """The interned string of a utf8_ref field (current intern table)."""
        handle: int | None = self._fixed(self._col(name, ("utf8_ref",), "get_ref"))
        if handle is None:
            return None
        table = self._view._intern.table()
        if not 0 <= handle < len(table):
            raise StrandValueError(
                f'field "{name}" holds handle {handle} but the intern table has {len(table)} entries'
            )
        return table[handle]

    def get_bytes(self, name: str) -> np.ndarray | None:
        """A zero-copy uint8 view of a bytes field (valid until the record is acknowledged)."""
        c = self._col(name, ("bytes",), "get_bytes")
        span = self._span(c)
        if span is None:
            return None
        return np.frombuffer(self._view._buf, np.uint8, span[1] - span[0], self._dat[c] + span[0])

    def _array(self, name: str, kind: str, dtype: type) -> np.ndarray | None:
        c = self._col(name, (kind,), f"get_{kind}")
        span = self._span(c)
        if span is None:
            return None
        return np.frombuffer(self._view._buf, dtype, span[1] - span[0], self._dat[c] + 4 * span[0])

    def get_i32_array(self, name: str) -> np.ndarray | None:
        """A zero-copy int32 view of an i32_array field."""
        return self._array(name, "i32_array", np.int32)

    def get_f32_array(self, name: str) -> np.ndarray | None:
        """A zero-copy float32 view of an f32_array field."""
        return self._array(name, "f32_array", np.float32)

    def get(self, name: str) -> Any:
        """Any field's value, typed by the field (arrays as numpy views, bytes as memoryview)."""
        c = self._index.get(name)
        if c is None:
            self._col(name, (), "get")
        kind = self._kinds[c]  # type: ignore[index]
        getter = _GETTERS[kind]
        return getattr(self, getter)(name)

    def is_null(self, name: str) -> bool:
        c = self._col(name, tuple(self._kinds), "is_null")
        return self._is_null(c)


_GETTERS: Final = {
    "u8": "get_u8",
    "u16": "get_u16",
    "u32": "get_u32",
    "i32": "get_i32",
    "i64": "get_i64",
    "f32": "get_f32",
    "f64": "get_f64",
    "bool8": "get_bool",
    "date": "get_date",
    "timestamp": "get_timestamp",
    "decimal": "get_decimal",
    "utf8": "get_string",
    "json": "get_json",
    "utf8_ref": "get_ref",
    "bytes": "get_bytes",
    "i32_array": "get_i32_array",
    "f32_array": "get_f32_array",
}
