"""Batch blocks: one committed batch as Arrow-aligned column buffers in the heap ring.

A block is a header (magic, column count, rows, first record) with one descriptor per
column -- validity, values/offsets and data positions, data length, null count -- followed
by the buffers themselves, each 64-byte aligned exactly as Arrow lays them out. Writing is a
few memcpys per column; reading wraps the same bytes in ``pyarrow`` buffers with no copy.
"""

from __future__ import annotations

import ctypes
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

from strand.errors import StrandValueError
from strand.schema import Layout, StrandField, StrandSchema

__all__ = [
    "BLOCK_MAGIC",
    "NONE",
    "BlockPlan",
    "block_header_size",
    "build_array",
    "emit_block",
    "normalize_batch",
    "plan_block",
    "read_descriptors",
    "write_header",
]

BLOCK_MAGIC: Final = b"BLK1"
NONE: Final = (1 << 64) - 1
_HEAD = struct.Struct("<4sIQQ")
_DESC = struct.Struct("<5Q")
_ALIGN: Final = 64


def _align(n: int) -> int:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


def block_header_size(ncols: int) -> int:
    return _align(_HEAD.size + _DESC.size * ncols)


# -- incoming data ------------------------------------------------------------------------


def normalize_batch(
    schema: StrandSchema, batch: pa.RecordBatch, intern: dict[str, int], intern_values: pa.Array
) -> list[pa.Array]:
    """Check a batch against the schema and return one storage array per field.

    Columns are matched by name; a column whose type differs is cast safely (int64 into i32
    only if every value fits), so a value that does not fit its field is a
    ``StrandValueError`` naming the column, never a silent change.
    """
    incoming = batch.schema
    last = schema.last_input
    if (last is not None and incoming.equals(last)) or (
        incoming.names == schema.names_list and incoming.types == schema.storage_types
    ):
        schema.last_input = incoming  # an equal schema next time skips the type comparison
        # the fast path: columns already in storage form, only nullability to check
        columns = batch.columns
        for field, arr in zip(schema, columns, strict=True):
            if (not field.nullable and arr.null_count) or field.layout is Layout.LIST:
                _normalize(field, arr, intern, intern_values)  # checks nulls and list elements
        return list(columns)
    names = incoming.names
    if set(names) != set(schema.names) or len(names) != len(schema.names):
        missing = [n for n in schema.names if n not in names]
        extra = [n for n in names if n not in schema.names]
        raise StrandValueError(
            "the batch's columns do not match the strand's fields"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(extra)}" if extra else "")
            + f" (fields: {', '.join(schema.names)})"
        )
    return [_normalize(field, batch.column(field.name), intern, intern_values) for field in schema]


def _normalize(
    field: StrandField, arr: pa.Array, intern: dict[str, int], intern_values: pa.Array
) -> pa.Array:
    kind = field.type.kind
    if kind == "utf8_ref":
        arr = _encode_refs(field, arr, intern, intern_values)
        target: pa.DataType = pa.int32()
    elif kind == "json":
        if isinstance(arr.type, pa.ExtensionType):
            arr = arr.storage
        target = pa.utf8()
    else:
        target = field.arrow_type
    if arr.type != target:
        try:
            arr = arr.cast(target, safe=True)
        except pa.ArrowInvalid as exc:
            raise StrandValueError(
                f'column "{field.name}" ({field.type}): a value does not fit the field type: {exc}'
            ) from None
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise StrandValueError(
                f'column "{field.name}" is {arr.type}, which cannot be stored in a {field.type} '
                f"field; cast it to {target} first"
            ) from None
    if arr.null_count and not field.nullable:
        raise StrandValueError(
            f'column "{field.name}" holds {arr.null_count} null(s) but the field is not nullable'
        )
    if field.layout is Layout.LIST and len(arr) and arr.flatten().null_count:
        raise StrandValueError(
            f'column "{field.name}" ({field.type}): array elements cannot be null '
            "(the list itself may be null)"
        )
    return arr


def _encode_refs(
    field: StrandField, arr: pa.Array, intern: dict[str, int], intern_values: pa.Array
) -> pa.Array:
    """Map strings (plain or dictionary-encoded) to int32 positions in the intern table."""
    import pyarrow.compute as pc

    if pa.types.is_dictionary(arr.type):
        mapping = pc.index_in(arr.dictionary.cast(pa.utf8()), value_set=intern_values)
        codes = mapping.take(arr.indices)
        source = arr.dictionary.take(arr.indices)
    elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        codes = pc.index_in(arr, value_set=intern_values)
        source = arr
    else:
        raise StrandValueError(
            f'column "{field.name}" is {arr.type}; a utf8_ref field takes strings or '
            "dictionary-encoded strings"
        )
    if codes.null_count != arr.null_count:
        unknown = pc.unique(pc.filter(source, pc.and_(pc.is_null(codes), pc.is_valid(source))))
        shown = ", ".join(repr(v) for v in unknown.to_pylist()[:5])
        raise StrandValueError(
            f'column "{field.name}": {len(unknown)} value(s) are not in the intern table '
            f"({shown}); call update_intern_table() with them first"
        )
    return codes.cast(pa.int32())


# -- layout of one block -------------------------------------------------------------------


@dataclass(slots=True)
class BlockPlan:
    """How to lay one batch into a block: total size, plain copies, rare fix-ups, descriptors.

    Planned before the heap space is reserved (the size decides where it goes), then emitted
    with one ``memmove`` per buffer -- the copies release the GIL and there is no per-row
    Python anywhere.
    """

    rows: int
    total: int
    copies: list[tuple[int, int, int]]  # (offset in block, source address, bytes)
    bit_copies: list[tuple[int, pa.Buffer, int]]  # (offset, bitmap, bit offset): unaligned
    rebases: list[tuple[int, np.ndarray]]  # (offset, source offsets): rebased to start at 0
    descs: list[int]  # five per column, positions relative to the block (NONE: absent)


def plan_block(schema: StrandSchema, arrays: list[pa.Array]) -> BlockPlan:
    """Plan the block for ``arrays`` (already checked by ``normalize_batch``)."""
    rows = len(arrays[0]) if arrays else 0
    at = block_header_size(len(schema))
    copies: list[tuple[int, int, int]] = []
    bit_copies: list[tuple[int, pa.Buffer, int]] = []
    rebases: list[tuple[int, np.ndarray]] = []
    descs: list[int] = []
    bitmap_bytes = (rows + 7) >> 3
    for field, arr in zip(schema.fields, arrays, strict=True):
        buffers = arr.buffers()
        offset = arr.offset
        nulls = arr.null_count
        validity_at = NONE
        if nulls:
            validity_at = at
            if offset & 7:
                bit_copies.append((at, buffers[0], offset))
            else:
                copies.append((at, buffers[0].address + (offset >> 3), bitmap_bytes))
            at += _align(bitmap_bytes)
        values_at = at
        data_at = NONE
        data_len = 0
        layout = field.layout
        if layout is Layout.FIXED:
            n = rows * field.width
            copies.append((at, buffers[1].address + offset * field.width, n))
            at += _align(n)
        elif layout is Layout.BOOL:
            if offset & 7:
                bit_copies.append((at, buffers[1], offset))
            else:
                copies.append((at, buffers[1].address + (offset >> 3), bitmap_bytes))
            at += _align(bitmap_bytes)
        else:
            offsets = _offsets(arr)
            base = int(offsets[0]) if rows else 0
            end = int(offsets[-1]) if rows else 0
            n = 4 * (rows + 1)
            if base == 0 and offsets.dtype == np.int32:
                copies.append((at, buffers[1].address + 4 * offset, n))
            else:
                rebases.append((at, offsets))
            at += _align(n)
            data_at = at
            if layout is Layout.VAR:
                data_len = end - base
                if data_len:
                    copies.append((at, buffers[2].address + base, data_len))
            else:
                child = arr.values
                data_len = (end - base) * field.width
                if data_len:
                    source = child.buffers()[1].address + (child.offset + base) * field.width
                    copies.append((at, source, data_len))
            at += _align(data_len)
        descs += (validity_at, values_at, data_at, data_len, nulls)
    return BlockPlan(rows, at, copies, bit_copies, rebases, descs)


def emit_block(
    mm: memoryview, base_address: int, phys: int, mono: int, plan: BlockPlan, first_seq: int
) -> None:
    """Write a planned block at segment offset ``phys`` (heap position ``mono``)."""
    dst = base_address + phys
    for at, source, nbytes in plan.copies:
        ctypes.memmove(dst + at, source, nbytes)
    rows = plan.rows
    for at, bitmap, bit_offset in plan.bit_copies:
        _copy_bits(mm, phys + at, bitmap, bit_offset, rows)
    for at, offsets in plan.rebases:
        out = np.frombuffer(mm, dtype=np.int32, count=rows + 1, offset=phys + at)
        np.subtract(offsets, offsets[0], out=out, casting="unsafe")
        del out
    descs = plan.descs
    for i in range(0, len(descs), 5):  # positions become heap positions
        for j in (i, i + 1, i + 2):
            if descs[j] != NONE:
                descs[j] += mono
    ncols = len(descs) // 5
    _HEAD.pack_into(mm, phys, BLOCK_MAGIC, ncols, rows, first_seq)
    _descs_struct(ncols).pack_into(mm, phys + _HEAD.size, *descs)


@functools.cache
def _descs_struct(ncols: int) -> struct.Struct:
    return struct.Struct(f"<{5 * ncols}Q")


def _offsets(arr: pa.Array) -> np.ndarray:
    dtype = np.int64 if arr.type in (pa.large_string(), pa.large_binary()) else np.int32
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset : arr.offset + len(arr) + 1]


def write_header(
    mm: memoryview,
    phys: int,
    descs: list[tuple[int, int, int, int, int]],
    rows: int,
    first_seq: int,
) -> None:
    """Write a block header from descriptors (the claim/commit path)."""
    _HEAD.pack_into(mm, phys, BLOCK_MAGIC, len(descs), rows, first_seq)
    for i, desc in enumerate(descs):
        _DESC.pack_into(mm, phys + _HEAD.size + i * _DESC.size, *desc)


def _bytes(buf: pa.Buffer) -> memoryview:
    """An unsigned-byte view of an Arrow buffer (pyarrow exports signed bytes)."""
    return memoryview(buf).cast("B")


def _copy_bits(mm: memoryview, at: int, src: pa.Buffer, bit_offset: int, n: int) -> None:
    """Copy ``n`` bits starting at ``bit_offset`` of ``src`` to byte ``at``, bit 0 aligned."""
    nbytes = (n + 7) // 8
    if bit_offset % 8 == 0:
        start = bit_offset // 8
        mm[at : at + nbytes] = _bytes(src)[start : start + nbytes]
        return
    first = bit_offset // 8
    raw = np.frombuffer(src, dtype=np.uint8)[first : (bit_offset + n + 7) // 8 + 1]
    bits = np.unpackbits(raw, bitorder="little")[bit_offset % 8 : bit_offset % 8 + n]
    mm[at : at + nbytes] = np.packbits(bits, bitorder="little").data


# -- reading -------------------------------------------------------------------------------


def read_descriptors(
    mm: memoryview, phys: int, ncols: int
) -> tuple[int, int, list[tuple[int, int, int, int, int]]]:
    """(rows, first_seq, per-column descriptors) of the block at segment offset ``phys``."""
    magic, count, rows, first = _HEAD.unpack_from(mm, phys)
    if magic != BLOCK_MAGIC or count != ncols:
        raise StrandValueError(
            f"no batch block at heap offset {phys} (magic {magic!r}): the record was "
            "overwritten, or the segment is corrupted"
        )
    # one 5-tuple per column: tuples this small are recycled, so seeking retains nothing
    at = phys + _HEAD.size
    descs = [_DESC.unpack_from(mm, at + i * _DESC.size) for i in range(ncols)]
    return rows, first, descs


def build_array(
    root: pa.Buffer,
    heap_phys: Callable[[int], int],
    field: StrandField,
    desc: tuple[int, int, int, int, int],
    rows: int,
    dictionary: pa.Array | None,
) -> pa.Array:
    """A zero-copy Arrow array over one column of a block.

    ``root`` is ``pa.py_buffer(segment.buf)``: every buffer is a slice of it, so the
    segment's memoryview stays exported (and ``close()`` refuses) while the array lives.
    """
    validity_at, values_at, data_at, data_len, nulls = desc
    validity = None
    if validity_at != NONE:
        p = heap_phys(validity_at)
        validity = root.slice(p, (rows + 7) // 8)
    layout = field.layout
    kind = field.type.kind
    p = heap_phys(values_at)
    if layout is Layout.FIXED:
        values = root.slice(p, rows * field.width)
        if kind == "utf8_ref":
            indices = pa.Array.from_buffers(pa.int32(), rows, [validity, values], nulls)
            assert dictionary is not None
            return pa.DictionaryArray.from_arrays(indices, dictionary, safe=True)
        return pa.Array.from_buffers(field.arrow_type, rows, [validity, values], nulls)
    if layout is Layout.BOOL:
        values = root.slice(p, (rows + 7) // 8)
        return pa.Array.from_buffers(pa.bool_(), rows, [validity, values], nulls)
    offsets = root.slice(p, 4 * (rows + 1))
    d = heap_phys(data_at) if data_len else 0
    data = root.slice(d, data_len)
    if layout is Layout.VAR:
        storage_type = pa.binary() if kind == "bytes" else pa.utf8()
        storage = pa.Array.from_buffers(storage_type, rows, [validity, offsets, data], nulls)
        if kind == "json":
            return pa.ExtensionArray.from_storage(pa.json_(), storage)
        return storage
    child_type = pa.int32() if kind == "i32_array" else pa.float32()
    child = pa.Array.from_buffers(child_type, data_len // 4, [None, data], 0)
    return pa.Array.from_buffers(
        field.arrow_type, rows, [validity, offsets], nulls, children=[child]
    )
