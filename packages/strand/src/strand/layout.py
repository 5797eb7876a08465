"""The segment's geometry and its static header.

A segment is five page-aligned regions::

    header   magic "STRN", version, geometry, CRC-32, binary schema, metadata JSON, owner
    control  64-bit counters and futex words, one 64-byte line per writer/reader group,
             then one line per consumer slot (token, position, pid, process start time)
    intern   the utf8_ref intern table (JSON list), replaced under a sequence lock
    batches  the batch index: per committed batch its first record, row count, block offset
             and the heap position it owns from (index_capacity entries of 32 bytes)
    heap     the data ring: each batch is one block of Arrow-aligned column buffers

Attach validates magic, then version, then the checksum, then the schema, and says which
check failed. All counters are 64-bit and monotonic; ring positions are taken modulo the
capacity, so nothing wraps in practice.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

from strand.errors import StrandConfigError, StrandHeaderError
from strand.schema import StrandSchema

__all__ = [
    "BATCH_ENTRY",
    "CTRL",
    "MAGIC",
    "MAX_CONSUMERS",
    "VERSION",
    "StrandMap",
    "compute_strand_map",
    "header_size",
    "init_strand_header",
    "read_strand_header",
]

MAGIC: Final = b"STRN"
VERSION: Final = 1
PAGE: Final = 4096
ALIGN: Final = 64
MAX_CONSUMERS: Final = 32
BATCH_ENTRY: Final = 32  # first_seq, rows, block mono offset, heap start: four u64
MIN_HEAP: Final = 64 * 1024
DEFAULT_INTERN_CAPACITY: Final = 64 * 1024

# first_seq-free fixed part of the header; "crc" is computed with its own field zeroed.
_FIXED = struct.Struct("<4sHHII13QII")
_CRC_OFFSET: Final = 12


class CTRL:
    """Byte offsets of the control words inside the control region (each a u64 unless noted)."""

    # line 0: written by the writer, read by everyone
    WRITE_SEQ = 0  # records claimed
    COMMIT_SEQ = 8  # records published (readable)
    BATCH_WRITE = 16  # batches claimed
    BATCH_COMMIT = 24  # batches published
    HEAP_WRITE = 32  # heap bytes claimed (monotonic position)
    HEAP_COMMIT = 40  # heap bytes published
    EPOCH = 48  # incremented by reset()
    # line 1: state
    STATUS = 64
    ABORT = 72
    WRITER_PID = 80
    WRITER_START = 88
    REGISTER_SEQ = 96  # source of consumer tokens
    STATUS_REASON = 104  # why the status is "error": REASON_WRITER_DIED or 0
    # line 2 and 3: futex words (u32) with waiter counts (u32)
    COMMIT_FUTEX = 128
    COMMIT_WAITERS = 132
    ACK_FUTEX = 192
    ACK_WAITERS = 196
    # line 4: intern table sequence lock
    INTERN_VERSION = 256
    INTERN_LEN = 264
    INTERN_OWNER = 272  # pid of the process rewriting the table (while the version is odd)
    # consumer slots from line 8, one line each
    CONSUMERS = 512
    SLOT = 64
    SLOT_TOKEN = 0
    SLOT_POS = 8
    SLOT_PID = 16
    SLOT_START = 24
    SIZE = 512 + 64 * MAX_CONSUMERS


STATUS_NAMES: Final = ("initializing", "streaming", "eos", "error")


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class StrandMap:
    """Complete geometry of one strand: what ``compute_strand_map`` plans and attach reads."""

    schema: StrandSchema
    index_capacity: int
    heap_capacity: int
    intern_capacity: int
    estimated_records: int
    meta: dict[str, Any]
    header_bytes: int
    control_offset: int
    intern_offset: int
    batches_offset: int
    heap_offset: int
    total_bytes: int
    owner_pid: int = 0
    owner_start: int = 0
    created_ns: int = 0
    _meta_json: bytes = field(default=b"", repr=False, compare=False)

    @property
    def max_block_bytes(self) -> int:
        """Largest block the heap ring can always place: half the heap (see the README)."""
        return self.heap_capacity // 2

    @property
    def intern_table(self) -> list[str]:
        """The intern table the strand was created with."""
        return list(self.meta.get("intern", []))

    @property
    def query(self) -> Any:
        """The ``query`` entry of the metadata (what the producer was asked for), if any."""
        return self.meta.get("query")


def compute_strand_map(
    schema: Any,
    index_capacity: int = 65_536,
    heap_capacity: int = 64 * 1024 * 1024,
    meta: dict[str, Any] | None = None,
    estimated_records: int = 0,
    *,
    intern: list[str] | None = None,
    intern_capacity: int = DEFAULT_INTERN_CAPACITY,
    sorted: dict[str, Any] | None = None,
) -> StrandMap:
    """Plan a strand's geometry.

    ``schema`` is a core ``Schema``, a ``pyarrow.Schema``, a ``StrandSchema`` or a list of
    ``StrandField``; ``index_capacity`` (records in flight, a power of two) bounds how far
    the slowest consumer may lag; ``heap_capacity`` (bytes) holds the batches' column data, so
    a single value can be up to about half of it. ``meta`` is any JSON object (the source's
    ``query`` goes here); ``intern`` is the initial utf8_ref table.
    """
    strand_schema = StrandSchema.of(schema, sorted=sorted)
    _check_int("index_capacity", index_capacity)
    if index_capacity < 2 or index_capacity & (index_capacity - 1) or index_capacity > 1 << 30:
        raise StrandConfigError(
            f"index_capacity must be a power of two between 2 and 2**30, got {index_capacity}; "
            f"for example {1 << max(1, min(30, index_capacity.bit_length()))}"
        )
    _check_int("heap_capacity", heap_capacity)
    if heap_capacity < MIN_HEAP or heap_capacity % ALIGN:
        raise StrandConfigError(
            f"heap_capacity must be a multiple of {ALIGN} bytes and at least {MIN_HEAP}, "
            f"got {heap_capacity}"
        )
    _check_int("estimated_records", estimated_records)
    if estimated_records < 0:
        raise StrandConfigError(f"estimated_records cannot be negative, got {estimated_records}")
    _check_int("intern_capacity", intern_capacity)
    if meta is not None and not isinstance(meta, dict):
        raise StrandConfigError(f"meta must be a JSON object (a dict), got {type(meta).__name__}")
    table = list(intern or [])
    _check_intern(table, intern_capacity)
    full_meta = {**(meta or {}), "columns": list(strand_schema.names), "intern": table}
    try:
        meta_json = json.dumps(full_meta, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise StrandConfigError(f"meta is not JSON-serialisable: {exc}") from None
    header_bytes = _round_up(_FIXED.size + len(strand_schema.to_binary()) + len(meta_json), PAGE)
    control_offset = header_bytes
    intern_offset = control_offset + _round_up(CTRL.SIZE, PAGE)
    batches_offset = intern_offset + _round_up(intern_capacity, PAGE)
    heap_offset = batches_offset + _round_up(index_capacity * BATCH_ENTRY, PAGE)
    total = heap_offset + _round_up(heap_capacity, PAGE)
    return StrandMap(
        schema=strand_schema,
        index_capacity=index_capacity,
        heap_capacity=heap_capacity,
        intern_capacity=intern_capacity,
        estimated_records=estimated_records,
        meta=full_meta,
        header_bytes=header_bytes,
        control_offset=control_offset,
        intern_offset=intern_offset,
        batches_offset=batches_offset,
        heap_offset=heap_offset,
        total_bytes=total,
        _meta_json=meta_json,
    )


def init_strand_header(buf: Any, smap: StrandMap, owner_pid: int = 0, owner_start: int = 0) -> None:
    """Write the header, zero the control region and store the intern table.

    The magic is written last, so a segment whose initialisation was interrupted never
    validates.
    """
    mv = memoryview(buf).cast("B")
    if len(mv) < smap.total_bytes:
        raise StrandConfigError(
            f"the buffer holds {len(mv)} bytes; this strand needs {smap.total_bytes}"
        )
    schema_bin = smap.schema.to_binary()
    mv[: smap.heap_offset] = bytes(smap.heap_offset)
    fixed = _FIXED.pack(
        b"\0\0\0\0",
        VERSION,
        0,
        smap.header_bytes,
        0,
        smap.index_capacity,
        smap.heap_capacity,
        smap.intern_capacity,
        smap.total_bytes,
        smap.control_offset,
        smap.intern_offset,
        smap.batches_offset,
        smap.heap_offset,
        smap.estimated_records,
        smap.schema.fingerprint,
        owner_pid,
        owner_start,
        time.time_ns(),
        len(schema_bin),
        len(smap._meta_json),
    )
    body = fixed + schema_bin + smap._meta_json
    mv[: len(body)] = body
    crc = zlib.crc32(MAGIC + body[4:])
    struct.pack_into("<I", mv, _CRC_OFFSET, crc)
    table = json.dumps(smap.intern_table, separators=(",", ":")).encode()
    mv[smap.intern_offset : smap.intern_offset + len(table)] = table
    struct.pack_into("<Q", mv, smap.control_offset + CTRL.INTERN_LEN, len(table))
    mv[:4] = MAGIC


def header_size(head: bytes) -> int:
    """The header's length from its first bytes (0 if they are too short to tell)."""
    if len(head) < _FIXED.size:
        return 0
    return int(struct.unpack_from("<I", head, 8)[0])


def read_strand_header(buf: Any, expected: Any = None, *, partial: bool = False) -> StrandMap:
    """Validate magic, then version, then checksum, then schema, and return the map.

    ``expected`` (anything ``compute_strand_map`` accepts as a schema) must equal the
    stored schema; ``StrandHeaderError`` names the first check that failed. ``partial``
    accepts a buffer holding only the header (for inspecting a segment without mapping it).
    """
    mv = memoryview(buf).cast("B")
    _check_magic(mv)
    (
        _,
        version,
        _flags,
        header_bytes,
        crc,
        index_capacity,
        heap_capacity,
        intern_capacity,
        total_bytes,
        control_offset,
        intern_offset,
        batches_offset,
        heap_offset,
        estimated_records,
        fingerprint,
        owner_pid,
        owner_start,
        created_ns,
        schema_len,
        meta_len,
    ) = _FIXED.unpack_from(mv, 0)
    if version != VERSION:
        raise StrandHeaderError(
            f"header version {version} is not supported (this code reads version {VERSION}); "
            "use the same platform-strand version on both sides"
        )
    end = _FIXED.size + schema_len + meta_len
    if end > header_bytes or header_bytes > len(mv):
        raise StrandHeaderError(
            f"header lengths are inconsistent (schema {schema_len} B, meta {meta_len} B in a "
            f"{header_bytes} B header): the header is corrupted"
        )
    _check_checksum(mv, end, crc)
    schema = _read_schema(mv, schema_len, fingerprint, expected)
    meta_json = bytes(mv[_FIXED.size + schema_len : end])
    meta = json.loads(meta_json)
    if total_bytes > len(mv) and not partial:
        raise StrandHeaderError(
            f"the header describes {total_bytes} bytes but the segment holds {len(mv)}"
        )
    return StrandMap(
        schema=schema,
        index_capacity=index_capacity,
        heap_capacity=heap_capacity,
        intern_capacity=intern_capacity,
        estimated_records=estimated_records,
        meta=meta,
        header_bytes=header_bytes,
        control_offset=control_offset,
        intern_offset=intern_offset,
        batches_offset=batches_offset,
        heap_offset=heap_offset,
        total_bytes=total_bytes,
        owner_pid=owner_pid,
        owner_start=owner_start,
        created_ns=created_ns,
        _meta_json=meta_json,
    )


def _check_magic(mv: memoryview) -> None:
    """The segment is long enough for the fixed header and starts with Strand's magic."""
    if len(mv) < _FIXED.size:
        raise StrandHeaderError(f"the segment is {len(mv)} bytes, too small for a Strand header")
    magic = bytes(mv[:4])
    if magic != MAGIC:
        raise StrandHeaderError(
            f"wrong magic {magic!r}: this segment is not a Strand (expected {MAGIC!r}), "
            "or its creator has not finished initialising it"
        )


def _check_checksum(mv: memoryview, end: int, crc: int) -> None:
    """The header's first ``end`` bytes (its checksum field as zeros) have CRC32 ``crc``."""
    body = bytearray(mv[:end])
    body[_CRC_OFFSET : _CRC_OFFSET + 4] = b"\0\0\0\0"
    actual = zlib.crc32(bytes(body))
    if actual != crc:
        raise StrandHeaderError(
            f"header checksum mismatch (stored {crc:#010x}, computed {actual:#010x}): "
            "the header is corrupted; recreate the strand"
        )


def _read_schema(mv: memoryview, schema_len: int, fingerprint: int, expected: Any) -> StrandSchema:
    """The stored schema, checked against its stored fingerprint and against ``expected``."""
    schema_bin = bytes(mv[_FIXED.size : _FIXED.size + schema_len])
    schema = StrandSchema.from_binary(schema_bin)
    if schema.fingerprint != fingerprint:
        raise StrandHeaderError(
            f"schema fingerprint mismatch (stored {fingerprint:#018x}, "
            f"computed {schema.fingerprint:#018x})"
        )
    if expected is not None:
        want = StrandSchema.of(expected)
        if want != schema:
            raise StrandHeaderError(
                f"schema differs: {want.diff(schema)} in the strand "
                f"(fingerprint {want.fingerprint:#018x} vs {schema.fingerprint:#018x})"
            )
    return schema


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StrandConfigError(f"{name} must be an integer, got {value!r}")


def _check_intern(table: list[str], capacity: int) -> None:
    for i, value in enumerate(table):
        if not isinstance(value, str):
            raise StrandConfigError(f"intern table entry {i} must be a string, got {value!r}")
    if len(set(table)) != len(table):
        raise StrandConfigError("intern table entries must be unique")
    size = len(json.dumps(table, separators=(",", ":")).encode())
    if size > capacity:
        raise StrandConfigError(
            f"the intern table needs {size} bytes as JSON but intern_capacity is {capacity}; "
            "raise intern_capacity"
        )
