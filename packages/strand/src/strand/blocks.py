"""Batch blocks: one committed batch as Arrow column buffers in the heap ring.

Two kinds, told apart by their magic:

- ``BLKI`` (what ``write_record_batch`` writes): a header, then the batch as an Arrow IPC
  stream (schema message, record batch message). Arrow's C++ writer copies every buffer in
  one call, and its reader wraps them again without a copy.
- ``BLK1`` (what producers that fill claimed slots in place commit): a header with one
  descriptor per column -- validity, values/offsets and data positions, data length, null
  count -- pointing at buffers laid out as Arrow lays them out.

Both give per-column descriptors for the record cursor, so it reads either without Arrow.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

import pyarrow as pa

from strand._ipcmeta import read_batch_meta
from strand.errors import StrandValueError
from strand.schema import Layout, StrandField, StrandSchema

__all__ = [
    "BLOCK_MAGIC",
    "IPC_HEADER",
    "IPC_MAGIC",
    "NONE",
    "IpcEncoder",
    "block_header_size",
    "build_array",
    "ipc_batch",
    "normalize_batch",
    "read_descriptors",
    "read_head",
    "wrap_storage",
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
) -> pa.RecordBatch:
    """Check a batch against the schema and return it in storage form (``ipc_schema``'s
    types: intern positions for utf8_ref, utf8 for json).

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
        # the fast path: columns already in storage form, only nulls and list items to check
        fields = schema.fields
        for i in schema.checked:
            _check_stored(fields[i], batch.column(i))
        if incoming.equals(schema.ipc_schema, check_metadata=True):
            return batch
        # metadata (pandas' on the schema, Parquet field ids or long descriptions on fields)
        # would be copied into every block's IPC schema message: lay the batch out on ours
        return pa.RecordBatch.from_arrays(batch.columns, schema=schema.ipc_schema)
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
    arrays = [
        _normalize(field, batch.column(field.name), intern, intern_values) for field in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema.ipc_schema)


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
    _check_stored(field, arr)
    return arr


def _check_stored(field: StrandField, arr: pa.Array) -> None:
    """What a column already in storage form may still break: nulls in a field that is not
    nullable, null list items."""
    if arr.null_count and not field.nullable:
        raise StrandValueError(
            f'column "{field.name}" holds {arr.null_count} null(s) but the field is not nullable'
        )
    if field.layout is Layout.LIST and len(arr) and arr.flatten().null_count:
        raise StrandValueError(
            f'column "{field.name}" ({field.type}): array elements cannot be null '
            "(the list itself may be null)"
        )


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


# -- Arrow IPC blocks: what write_record_batch writes -------------------------------------


IPC_MAGIC: Final = b"BLKI"
_IPC_HEAD = struct.Struct("<4sIQQQQ")  # magic, columns, rows, first record, message at, length
IPC_HEADER: Final = _align(_IPC_HEAD.size)
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(use_threads=False)
_EOS: Final = 8  # room for an end-of-stream marker, should a writer ever write one


class IpcEncoder:
    """Lays a whole batch into a block with one call into Arrow's C++ IPC writer.

    A block is our header, then the batch's IPC schema message (a stream must start with
    one; readers skip it), then the record batch message whose body holds the buffers. The
    copy of every buffer happens inside Arrow, with the GIL released; Python pays a fixed
    few microseconds per batch, not per column.
    """

    __slots__ = ("_prefix", "_schema")

    def __init__(self) -> None:
        self._schema: pa.Schema | None = None
        self._prefix = 0

    def size(self, batch: pa.RecordBatch) -> tuple[int, int, int]:
        """(block bytes, schema message bytes, batch message bytes) for ``batch``."""
        schema = batch.schema
        if self._schema is None or not schema.equals(self._schema, check_metadata=True):
            self._prefix = schema.serialize().size
            self._schema = schema
        message = pa.ipc.get_record_batch_size(batch)
        return _align(IPC_HEADER + self._prefix + message + _EOS), self._prefix, message

    @staticmethod
    def emit(
        mm: memoryview,
        phys: int,
        sizes: tuple[int, int, int],
        batch: pa.RecordBatch,
        first_seq: int,
    ) -> None:
        """Write ``batch`` as a block at segment offset ``phys``."""
        total, prefix, message = sizes
        _IPC_HEAD.pack_into(
            mm, phys, IPC_MAGIC, batch.num_columns, batch.num_rows, first_seq,
            IPC_HEADER + prefix, message,
        )  # fmt: skip
        sink = pa.FixedSizeBufferWriter(pa.py_buffer(mm[phys + IPC_HEADER : phys + total]))
        pa.ipc.new_stream(sink, batch.schema, options=_WRITE_OPTIONS).write_batch(batch)
        if sink.tell() != prefix + message:  # Arrow's own size functions disagree: never ship
            raise StrandValueError(
                f"Arrow wrote {sink.tell()} bytes for a block planned as {prefix + message}; "
                "this pyarrow version lays IPC streams out differently than expected"
            )


def read_head(mm: memoryview, phys: int, ncols: int) -> tuple[bool, int, int, int, int]:
    """(is an IPC block, rows, first record, message offset, message bytes) of a block."""
    magic = bytes(mm[phys : phys + 4])
    if magic == IPC_MAGIC:
        _, count, rows, first, at, length = _IPC_HEAD.unpack_from(mm, phys)
        if count == ncols:
            if phys + at + length > len(mm):  # a corrupted header must not reach Arrow
                raise StrandValueError(
                    f"the batch block at heap offset {phys} says its message ends at "
                    f"{phys + at + length}, past the segment's {len(mm)} bytes: the segment "
                    "is corrupted"
                )
            return True, rows, first, at, length
    elif magic == BLOCK_MAGIC:
        _, count, rows, first = _HEAD.unpack_from(mm, phys)
        if count == ncols:
            return False, rows, first, 0, 0
    raise StrandValueError(
        f"no batch block at heap offset {phys} (magic {magic!r}): the record was "
        "overwritten, or the segment is corrupted"
    )


def ipc_batch(
    root: pa.Buffer, phys: int, at: int, length: int, schema: pa.Schema
) -> pa.RecordBatch:
    """The zero-copy batch of the IPC block at ``phys`` (``root``: the whole segment).

    Checked as Arrow checks arrays built from buffers (sizes, first and last offsets), so a
    corrupted block is an error here, never a batch whose offsets point outside its buffers.
    """
    try:
        batch = pa.ipc.read_record_batch(root.slice(phys + at, length), schema)
        batch.validate()
        return batch
    except (pa.ArrowException, OSError, EOFError, OverflowError) as exc:
        raise StrandValueError(
            f"the batch block at heap offset {phys} cannot be read ({exc}): the segment is "
            "corrupted"
        ) from None


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


# -- reading -------------------------------------------------------------------------------


def read_descriptors(
    mm: memoryview, phys: int, mono: int, schema: StrandSchema
) -> tuple[int, int, list[tuple[int, int, int, int, int]]]:
    """(rows, first_seq, per-column descriptors) of the block at segment offset ``phys``
    (heap position ``mono``); positions in descriptors are heap positions."""
    ipc, rows, first, at, length = read_head(mm, phys, len(schema))
    if ipc:
        return rows, first, _ipc_descriptors(mm, phys, mono, at, length, schema)
    # one 5-tuple per column: tuples this small are recycled, so seeking retains nothing
    at = phys + _HEAD.size
    descs = [_DESC.unpack_from(mm, at + i * _DESC.size) for i in range(len(schema))]
    return rows, first, descs


def _ipc_descriptors(
    mm: memoryview, phys: int, mono: int, at: int, length: int, schema: StrandSchema
) -> list[tuple[int, int, int, int, int]]:
    """Descriptors of an IPC block, from the buffer positions in its message's metadata."""
    meta = read_batch_meta(mm, phys + at, length)
    nodes, buffers = meta.nodes, meta.buffers
    base = mono + at  # heap position of the message
    descs = []
    node = buf = 0
    for field in schema.fields:
        layout = field.layout
        wanted_nodes, wanted_buffers = _IPC_SHAPE[layout]
        if node + wanted_nodes > len(nodes) or buf + wanted_buffers > len(buffers):
            raise StrandValueError(
                f"the batch block at heap offset {phys} holds fewer columns than the schema: "
                "the segment is corrupted"
            )
        rows, nulls = nodes[node]
        bitmap, values = buffers[buf], buffers[buf + 1]
        if rows != meta.rows or values[1] < _IPC_MIN[layout](field, rows):
            raise StrandValueError(
                f'column "{field.name}" of the batch block at heap offset {phys} is shorter '
                "than its rows: the segment is corrupted"
            )
        validity = base + bitmap[0] if nulls and bitmap[1] else NONE
        data, data_len = NONE, 0
        if layout is Layout.VAR or layout is Layout.LIST:
            # offsets index the data buffer as Arrow lays it out, exactly as readers use them
            offsets = phys + at + values[0]
            first = _OFFSET.unpack_from(mm, offsets)[0]
            last = _OFFSET.unpack_from(mm, offsets + 4 * rows)[0]
            unit = 1 if layout is Layout.VAR else field.width
            source = buffers[buf + 2] if layout is Layout.VAR else buffers[buf + 3]
            data_len = (last - first) * unit
            if not 0 <= first <= last or last * unit > source[1]:
                raise StrandValueError(
                    f'column "{field.name}" of the batch block at heap offset {phys} has '
                    "offsets beyond its data: the segment is corrupted"
                )
            if source[1]:
                data = base + source[0]
        descs.append((validity, base + values[0], data, data_len, nulls))
        node += wanted_nodes
        buf += wanted_buffers
    return descs


_OFFSET = struct.Struct("<i")
# (nodes, buffers) of a column in an IPC message, and the bytes its values buffer needs
_IPC_SHAPE: Final = {
    Layout.FIXED: (1, 2),
    Layout.BOOL: (1, 2),
    Layout.VAR: (1, 3),
    Layout.LIST: (2, 4),
}
_IPC_MIN: Final = {
    Layout.FIXED: lambda f, rows: rows * f.width,
    Layout.BOOL: lambda f, rows: (rows + 7) // 8,
    Layout.VAR: lambda f, rows: 4 * (rows + 1),
    Layout.LIST: lambda f, rows: 4 * (rows + 1),
}


def wrap_storage(field: StrandField, column: pa.Array, dictionary: pa.Array | None) -> pa.Array:
    """A stored column as the user sees it: intern positions become a dictionary array over
    the intern table, JSON text becomes the JSON extension type; others are returned as is."""
    kind = field.type.kind
    if kind == "utf8_ref":
        assert dictionary is not None
        return pa.DictionaryArray.from_arrays(column, dictionary, safe=True)
    if kind == "json":
        return pa.ExtensionArray.from_storage(pa.json_(), column)
    return column


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
