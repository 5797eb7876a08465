"""``hash_columns``: a stable 64-bit hash per row of some key columns, for partitioning.

The hash depends only on the values: it is the same in every process, run and machine (no
Python ``hash()``, no seeds), and the same for equal values stored differently (int32 or
int64, sliced or fresh, chunked or contiguous, plain or dictionary-encoded). It is not
meant to resist deliberately crafted collisions. Everything runs as numpy over Arrow
buffers; strings and lists are processed a bounded slice of rows at a time.

The algorithm, for reimplementation elsewhere (all arithmetic on unsigned 64-bit integers,
wrapping modulo 2**64)::

    M1 = 0xFF51AFD7ED558CCD  M2 = 0xC4CEB9FE1A85EC53  C_VAL = 0x9E3779B97F4A7C15
    C_NULL = 0x6A09E667F3BCC909  C_POS = 0xC2B2AE3D27D4EB4F  C_LEN = 0x165667B19E3779F9
    C_DEC = 0x27D4EB2F165667C5  C_SEED = 0xCBF29CE484222325  K_ROW = 0x9E3779B185EBCA87

    fmix(x) = MurmurHash3's fmix64: x ^= x >> 33; x *= M1; x ^= x >> 33; x *= M2; x ^= x >> 33

    word w(v) of a non-null value v, by Arrow type:
      integers of any width, bool (0/1), date32 (days), date64, time, duration:
          the value as a signed 64-bit integer, taken as its two's-complement bits
          (uint64 uses its own bits); timestamps are first converted to microseconds when
          their unit is s or ms (ns stays nanoseconds), then treated as integers
      float16/32/64: converted to float64; -0.0 becomes 0.0 and every NaN becomes
          0x7FF8000000000000; w = the IEEE-754 bits
      decimals (precision <= 38): the unscaled value as 128-bit two's complement,
          lo = low 64 bits, hi = high 64 bits; w = lo ^ fmix(hi ^ C_DEC)
      strings and binaries of every layout (same bytes, same word): split the n bytes into
          8-byte little-endian words x_0..x_{m-1}, the last one zero-padded;
          w = fmix(n ^ C_LEN) + sum over k of fmix(x_k ^ (k * C_POS))
      lists of every layout, with n elements e_0..e_{n-1}:
          w = fmix(n ^ C_LEN) + sum over k of fmix(h(e_k) ^ (k * C_POS))
      dictionary-encoded: the word of the decoded value; extension types: their storage
    value hash h(v) = fmix(w(v) + C_VAL), and h(NULL) = C_NULL
    row hash: r = C_SEED; then for each key column c in order: r = fmix(r * K_ROW + h(c))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from platform_core._suggest import column_not_found
from platform_core.errors import BadInputError

__all__ = ["hash_columns"]

U64 = NDArray[np.uint64]

_M1: Final = np.uint64(0xFF51AFD7ED558CCD)
_M2: Final = np.uint64(0xC4CEB9FE1A85EC53)
_C_VAL: Final = np.uint64(0x9E3779B97F4A7C15)
_C_NULL: Final = np.uint64(0x6A09E667F3BCC909)
_C_POS: Final = np.uint64(0xC2B2AE3D27D4EB4F)
_C_LEN: Final = np.uint64(0x165667B19E3779F9)
_C_DEC: Final = np.uint64(0x27D4EB2F165667C5)
_C_SEED: Final = np.uint64(0xCBF29CE484222325)
_K_ROW: Final = np.uint64(0x9E3779B185EBCA87)
_CANONICAL_NAN: Final = np.uint64(0x7FF8000000000000)
_SHIFT: Final = np.uint64(33)
_ALL_ONES: Final = np.uint64(0xFFFFFFFFFFFFFFFF)

# Bytes of string data, and list elements, hashed per step: temporaries stay a small
# multiple of a few MiB however large the batch.
_SLICE_BYTES: Final = 1 << 22
_SLICE_ITEMS: Final = 1 << 19


def hash_columns(batch: pa.RecordBatch | pa.Table, keys: Sequence[str] | str) -> pa.UInt64Array:
    """One uint64 per row of ``batch``, hashing the ``keys`` columns in order (no nulls).

    Raises BadInputError for an unknown key column or a column type with no defined hash
    (structs, maps, unions, run-end encoded, decimals wider than 38 digits).
    """
    if not isinstance(batch, pa.RecordBatch | pa.Table):
        raise BadInputError(
            f"hash_columns needs a pyarrow RecordBatch or Table, got {type(batch).__name__}"
        )
    key_list = [keys] if isinstance(keys, str) else list(keys)
    if not key_list:
        raise BadInputError("hash_columns needs at least one key column")
    names = batch.schema.names
    for key in key_list:
        if not isinstance(key, str):
            raise BadInputError(f"key columns must be named by strings, got {key!r}")
        if key not in names:
            raise column_not_found(key, names, what="key column")
        if names.count(key) > 1:
            raise BadInputError(f'key column "{key}" appears more than once in the batch')

    with np.errstate(over="ignore"):
        row = np.full(batch.num_rows, _C_SEED, dtype=np.uint64)
        for key in key_list:
            row *= _K_ROW
            row += _hash_column(batch.column(key), key)
            row = _fmix(row)
    return pa.array(row, type=pa.uint64())


def _hash_column(column: pa.Array | pa.ChunkedArray, name: str) -> U64:
    """Value hashes of one (possibly chunked) column; errors name the column."""
    try:
        if isinstance(column, pa.ChunkedArray):
            parts = [_hash_values(chunk) for chunk in column.chunks]
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
        return _hash_values(column)
    except BadInputError as exc:
        raise BadInputError(f'key column "{name}": {exc.message}', column=name) from None
    except pa.ArrowInvalid as exc:
        raise BadInputError(f'key column "{name}" cannot be hashed: {exc}', column=name) from None


def _hash_values(arr: pa.Array) -> U64:
    """h(v) for every slot of ``arr``, with C_NULL for nulls."""
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    if pa.types.is_null(arr.type):
        return np.full(len(arr), _C_NULL, dtype=np.uint64)
    if pa.types.is_dictionary(arr.type):
        hashes = _hash_values(arr.dictionary)
        if len(hashes) == 0:  # every index is null
            return np.full(len(arr), _C_NULL, dtype=np.uint64)
        indices = np.asarray(
            pc.fill_null(arr.indices, 0).to_numpy(zero_copy_only=False), dtype=np.intp
        )
        result: U64 = hashes[indices]
    else:
        result = _fmix(_words(arr) + _C_VAL)
    if arr.null_count:
        result[arr.is_null().to_numpy(zero_copy_only=False)] = _C_NULL
    return result


def _words(arr: pa.Array) -> U64:
    """w(v) for every slot (arbitrary for nulls), dispatching on the Arrow type."""
    t = arr.type
    types = pa.types
    if types.is_floating(t):
        filled = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        values = np.asarray(filled, dtype=np.float64) + 0.0  # a copy where -0.0 became 0.0
        bits = values.view(np.uint64)
        bits[np.isnan(values)] = _CANONICAL_NAN
        return bits
    if types.is_timestamp(t) and t.unit in ("s", "ms"):
        arr = arr.cast(pa.timestamp("us", t.tz))
    if (
        types.is_boolean(t)
        or types.is_integer(t)
        or (types.is_temporal(t) and not types.is_interval(t))
    ):
        return _integers(arr)
    if types.is_decimal(t):
        return _decimals(arr)
    if types.is_string(t) or types.is_binary(t):
        return _bytes_words(arr, np.int32)
    if types.is_large_string(t) or types.is_large_binary(t):
        return _bytes_words(arr, np.int64)
    if types.is_string_view(t) or types.is_binary_view(t) or types.is_fixed_size_binary(t):
        return _bytes_words(arr.cast(pa.large_binary()), np.int64)
    if (
        types.is_list(t)
        or types.is_large_list(t)
        or types.is_list_view(t)
        or types.is_large_list_view(t)
        or types.is_fixed_size_list(t)
    ):
        return _list_words(arr)
    raise BadInputError(
        f"cannot hash Arrow type {t}; key columns may be numbers, bools, dates, "
        "timestamps, decimals, strings, binaries, dictionaries of those, or lists of those"
    )


def _integers(arr: pa.Array) -> U64:
    t = arr.type
    if pa.types.is_uint64(t):
        arr = arr.view(pa.int64())
    elif pa.types.is_temporal(t):
        arr = arr.view(pa.int32() if t.bit_width == 32 else pa.int64())
    values = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def _decimals(arr: pa.Array) -> U64:
    t = arr.type
    if not pa.types.is_decimal128(t):
        if t.precision > 38:
            raise BadInputError(f"cannot hash {t}: precision above 38 is not supported")
        arr = arr.cast(pa.decimal128(t.precision, t.scale))
    if len(arr) == 0:
        return np.empty(0, dtype=np.uint64)
    # Arrow stores decimal128 as two little-endian 64-bit words, low word first.
    words = np.frombuffer(arr.buffers()[1], dtype="<u8", count=2 * (arr.offset + len(arr)))
    words = words[2 * arr.offset :].astype(np.uint64)
    return words[0::2] ^ _fmix(words[1::2] ^ _C_DEC)


def _bytes_words(arr: pa.Array, offset_type: type[np.int32] | type[np.int64]) -> U64:
    """w(v) for string/binary arrays with 32- or 64-bit offsets, a slice of bytes at a time."""
    n = len(arr)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    buffers = arr.buffers()
    raw_offsets = np.frombuffer(buffers[1], dtype=offset_type, count=arr.offset + n + 1)
    offsets = np.asarray(raw_offsets[arr.offset :], dtype=np.int64)
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.empty(0, dtype=np.uint8)
    )
    result = np.empty(n, dtype=np.uint64)
    for start, stop in _row_slices(offsets, _SLICE_BYTES):
        result[start:stop] = _bytes_slice(data, offsets[start : stop + 1])
    return result


def _bytes_slice(data: NDArray[np.uint8], offsets: NDArray[np.int64]) -> U64:
    first = int(offsets[0])
    lengths = np.diff(offsets)
    chunk = np.zeros(int(offsets[-1]) - first + 8, dtype=np.uint8)  # 8 bytes of zero padding
    chunk[:-8] = data[first : int(offsets[-1])]
    n_words = (lengths + 7) // 8
    starts, k = _positions(n_words)
    positions = np.repeat(offsets[:-1] - first, n_words) + 8 * k
    # Each word start read as one little-endian uint64: a view with a stride of one byte.
    unaligned = np.ndarray(buffer=chunk, dtype="<u8", shape=(len(chunk) - 7,), strides=(1,))
    words = np.asarray(unaligned[positions], dtype=np.uint64)
    # Keep only the bytes that belong to the value: the low 8 * min(remaining, 8) bits.
    remaining = np.minimum(np.repeat(lengths, n_words) - 8 * k, 8).astype(np.uint64)
    words &= _ALL_ONES >> (np.uint64(64) - np.uint64(8) * remaining)
    return _combine(words, n_words, lengths, starts=starts, k=k)


def _list_words(arr: pa.Array) -> U64:
    """w(v) for every list slot, hashing the elements of a slice of rows at a time."""
    # list_value_length and list_flatten both skip null lists, so they stay aligned.
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    counts = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts)])
    result = np.empty(len(arr), dtype=np.uint64)
    for start, stop in _row_slices(offsets, _SLICE_ITEMS):
        elements = _hash_values(pc.list_flatten(arr.slice(start, stop - start)))
        result[start:stop] = _combine(elements, counts[start:stop], counts[start:stop])
    return result


def _row_slices(offsets: NDArray[np.int64], budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges each spanning at most ``budget`` items (at least one row)."""
    n = len(offsets) - 1
    start = 0
    while start < n:
        stop = int(np.searchsorted(offsets, offsets[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        yield start, stop
        start = stop


def _positions(counts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start of each segment in the flat array, and each flat item's index in its segment."""
    starts = np.cumsum(counts) - counts
    k = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    return starts, k


def _combine(
    items: U64,
    counts: NDArray[np.int64],
    lengths: NDArray[np.int64],
    *,
    starts: NDArray[np.int64] | None = None,
    k: NDArray[np.int64] | None = None,
) -> U64:
    """Per segment: fmix(length ^ C_LEN) + sum of fmix(item_k ^ (k * C_POS))."""
    if starts is None or k is None:
        starts, k = _positions(counts)
    tweaks = k.astype(np.uint64)
    tweaks *= _C_POS
    tweaks ^= items
    mixed = _fmix(tweaks)
    sums = np.zeros(len(mixed) + 1, dtype=np.uint64)
    np.cumsum(mixed, out=sums[1:])  # wraps modulo 2**64, so differences are segment sums
    segment_sums: U64 = sums[starts + counts] - sums[starts]
    return segment_sums + _fmix(lengths.astype(np.uint64) ^ _C_LEN)


def _fmix(x: U64) -> U64:
    """MurmurHash3's 64-bit finaliser on a copy of ``x``."""
    x = x ^ (x >> _SHIFT)
    x *= _M1
    x ^= x >> _SHIFT
    x *= _M2
    x ^= x >> _SHIFT
    return x
