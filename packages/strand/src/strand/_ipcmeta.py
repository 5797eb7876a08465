"""Where an Arrow IPC record batch message keeps its buffers, read from its flatbuffer.

A block's descriptors (for the record cursor) need only each column's null count and buffer
positions. Asking pyarrow means a ``RecordBatch`` and a Python object per column and buffer
(about 20 us for eight columns); the message's own metadata says the same in a few struct
reads. Every offset is bounds-checked: the bytes live in shared memory and may be garbage.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from strand.errors import StrandValueError

__all__ = ["BatchMeta", "read_batch_meta"]

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_HEAD = struct.Struct("<Ii")  # continuation marker, metadata length
_CONTINUATION: Final = 0xFFFFFFFF
_RECORD_BATCH: Final = 3  # MessageHeader.RecordBatch
# field numbers in Message.fbs / Schema.fbs
_MESSAGE_HEADER_TYPE, _MESSAGE_HEADER, _MESSAGE_BODY_LENGTH = 1, 2, 3
_BATCH_LENGTH, _BATCH_NODES, _BATCH_BUFFERS, _BATCH_COMPRESSION = 0, 1, 2, 3


class BatchMeta(NamedTuple):
    """A record batch message: rows, (length, null count) per node, (offset, length) per
    buffer with offsets from the start of the message, in Arrow's depth-first order."""

    rows: int
    nodes: list[tuple[int, int]]
    buffers: list[tuple[int, int]]


def read_batch_meta(mm: memoryview, at: int, length: int) -> BatchMeta:
    """The metadata of the record batch message of ``length`` bytes at ``at`` in ``mm``.

    Raises ``StrandValueError`` when the bytes are not such a message, or when a buffer
    would lie outside it.
    """
    try:
        meta = _parse(mm, at, length)
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        raise _corrupt(at, str(exc)) from None
    return meta


def _parse(mm: memoryview, at: int, length: int) -> BatchMeta:
    if length < 8:
        raise _corrupt(at, "no IPC message")
    marker, meta_len = _HEAD.unpack_from(mm, at)
    if marker != _CONTINUATION or meta_len <= 0 or 8 + meta_len > length:
        raise _corrupt(at, f"no IPC message (marker {marker:#x}, metadata length {meta_len})")
    meta = mm[at + 8 : at + 8 + meta_len].tobytes()  # a few hundred bytes, parsed locally
    end = len(meta)
    message = _table(meta, 0, end)
    if _scalar(meta, message, _MESSAGE_HEADER_TYPE, "<B", end) != _RECORD_BATCH:
        raise _corrupt(at, "not a record batch message")
    body_len = _scalar(meta, message, _MESSAGE_BODY_LENGTH, "<q", end)
    if not 0 <= body_len <= length - 8 - meta_len:
        raise _corrupt(at, f"body length {body_len}")
    batch = _table(meta, _ref(meta, message, _MESSAGE_HEADER, end), end)
    if _field(meta, batch, _BATCH_COMPRESSION, end):
        raise _corrupt(at, "compressed bodies are never written")
    rows = _scalar(meta, batch, _BATCH_LENGTH, "<q", end)
    nodes = _pairs(meta, batch, _BATCH_NODES, end)
    buffers = []
    body = 8 + meta_len
    for offset, size in _pairs(meta, batch, _BATCH_BUFFERS, end):
        if offset < 0 or size < 0 or offset + size > body_len:
            raise _corrupt(at, f"buffer [{offset}, +{size}) outside the {body_len}-byte body")
        buffers.append((body + offset, size))
    return BatchMeta(rows, nodes, buffers)


def _corrupt(at: int, why: str) -> StrandValueError:
    return StrandValueError(
        f"the batch message at segment offset {at} cannot be read ({why}): the segment is corrupted"
    )


def _table(mm: bytes, ref: int, hi: int) -> int:
    """The position of the table that the root offset (or a table field) ``ref`` points to."""
    table = ref + int(_U32.unpack_from(mm, ref)[0])
    if not 0 <= table < hi:
        raise ValueError(f"table at {table} outside the metadata")
    return table


def _field(mm: bytes, table: int, number: int, hi: int) -> int:
    """Position of field ``number`` of ``table``, 0 if absent."""
    vtable = table - int(_I32.unpack_from(mm, table)[0])
    if not 0 <= vtable < hi:  # (a negative offset would silently read from the end)
        raise ValueError(f"vtable at {vtable} outside the metadata")
    size = _U16.unpack_from(mm, vtable)[0]
    slot = 4 + 2 * number
    if slot + 2 > size:
        return 0
    offset = _U16.unpack_from(mm, vtable + slot)[0]
    if offset and table + offset >= hi:
        raise ValueError(f"field {number} outside the metadata")
    return table + offset if offset else 0


def _scalar(mm: bytes, table: int, number: int, fmt: str, hi: int) -> int:
    """A scalar field (flatbuffers' default, 0, when absent)."""
    pos = _field(mm, table, number, hi)
    return int(struct.unpack_from(fmt, mm, pos)[0]) if pos else 0


def _ref(mm: bytes, table: int, number: int, hi: int) -> int:
    pos = _field(mm, table, number, hi)
    if not pos:
        raise ValueError(f"field {number} missing")
    return pos


def _pairs(mm: bytes, table: int, number: int, hi: int) -> list[tuple[int, int]]:
    """A vector of 16-byte structs (FieldNode or Buffer) as (int64, int64) pairs."""
    pos = _field(mm, table, number, hi)
    if not pos:
        return []
    vector = pos + _U32.unpack_from(mm, pos)[0]
    count = _U32.unpack_from(mm, vector)[0]
    if vector + 4 + 16 * count > hi:
        raise ValueError("vector outside the metadata")
    flat = struct.unpack_from(f"<{2 * count}q", mm, vector + 4)
    return list(zip(flat[0::2], flat[1::2], strict=True))
