"""``hash_columns``: a stable 64-bit hash per row of some key columns, for partitioning.

The hash depends only on the values: it is the same in every process, run and machine (no
Python ``hash()``, no seeds), and the same for equal values stored differently (int32 or
int64, sliced or fresh, chunked or contiguous, plain or dictionary-encoded). It is not
meant to resist deliberately crafted collisions. Everything runs as numpy over Arrow
buffers, a bounded block of rows at a time, so temporaries stay small and in cache.

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

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from platform_core._suggest import column_not_found
from platform_core.errors import BadInputError

__all__ = ["hash_columns"]

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
# (start, stop, values) for consecutive row ranges of an array. ``values`` may be a scratch
# buffer that the producer reuses for the next block: use it before advancing, never modify it.
Blocks = Iterator[tuple[int, int, U64]]

_MASK64: Final = (1 << 64) - 1
_M1: Final = np.uint64(0xFF51AFD7ED558CCD)
_M2: Final = np.uint64(0xC4CEB9FE1A85EC53)
_C_VAL: Final = np.uint64(0x9E3779B97F4A7C15)
_C_NULL: Final = np.uint64(0x6A09E667F3BCC909)
_C_POS_INT: Final = 0xC2B2AE3D27D4EB4F
_C_POS: Final = np.uint64(_C_POS_INT)
_C_LEN: Final = np.uint64(0x165667B19E3779F9)
_C_DEC: Final = np.uint64(0x27D4EB2F165667C5)
_C_SEED_INT: Final = 0xCBF29CE484222325
_K_ROW_INT: Final = 0x9E3779B185EBCA87
_K_ROW: Final = np.uint64(_K_ROW_INT)
_SEED_TIMES_K_ROW: Final = np.uint64(_C_SEED_INT * _K_ROW_INT & _MASK64)  # r before column 1
_CANONICAL_NAN: Final = np.uint64(0x7FF8000000000000)
_SHIFT: Final = np.uint64(33)
# _BYTE_MASKS[r]: the low r bytes of a word (r = 0..8).
_BYTE_MASKS: Final = np.array([(1 << (8 * r)) - 1 for r in range(9)], dtype=np.uint64)

# Rows, bytes of string data and list elements per block: temporaries stay a small multiple
# of these (a few MiB, mostly in cache) however large the batch, unless one value is larger.
_SLICE_ROWS: Final = 1 << 15
_SLICE_BYTES: Final = 1 << 20
_SLICE_ITEMS: Final = 1 << 19
# Words 0.._SHORT_WORDS-1 of every string in a block are hashed one word index at a time;
# only the longer strings' further words take the general (repeat and cumsum) path.
_SHORT_WORDS: Final = 4
# _WORD_MASKS[k, n]: the bytes of word k that belong to a value of n bytes (n clipped to the
# last column, where word k is whole).
_WORD_MASKS: Final = _BYTE_MASKS[
    np.clip(np.arange(8 * _SHORT_WORDS + 9)[None, :] - 8 * np.arange(_SHORT_WORDS)[:, None], 0, 8)
]


def _fmix(x: U64) -> U64:
    """MurmurHash3's 64-bit finaliser on a copy of ``x``."""
    x = x ^ (x >> _SHIFT)
    x *= _M1
    x ^= x >> _SHIFT
    x *= _M2
    x ^= x >> _SHIFT
    return x


def _fmix_inplace(x: U64, tmp: U64) -> None:
    """MurmurHash3's 64-bit finaliser on ``x`` itself, using ``tmp`` (at least as long)."""
    t = tmp[: len(x)]
    np.right_shift(x, _SHIFT, out=t)
    x ^= t
    x *= _M1
    np.right_shift(x, _SHIFT, out=t)
    x ^= t
    x *= _M2
    np.right_shift(x, _SHIFT, out=t)
    x ^= t


# fmix(n ^ C_LEN) for the lengths n of most strings.
_LENGTH_HASHES: Final = _fmix(np.arange(1024, dtype=np.uint64) ^ _C_LEN)


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

    row = np.empty(batch.num_rows, dtype=np.uint64)
    tmp = np.empty(min(batch.num_rows, _SLICE_ROWS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, key in enumerate(key_list):
            for start, stop, hashes in _column_blocks(batch.column(key), key):
                part = row[start:stop]
                if i == 0:  # r = C_SEED, so r * K_ROW + h is a constant plus h
                    np.add(hashes, _SEED_TIMES_K_ROW, out=part)
                else:
                    part *= _K_ROW
                    part += hashes
                _fmix_inplace(part, tmp)
    return pa.array(row, type=pa.uint64())


def _column_blocks(column: pa.Array | pa.ChunkedArray, name: str) -> Blocks:
    """Value hashes of one (possibly chunked) column, by blocks; errors name the column."""
    try:
        if isinstance(column, pa.ChunkedArray):
            base = 0
            for chunk in column.chunks:
                for start, stop, hashes in _value_blocks(chunk):
                    yield base + start, base + stop, hashes
                base += len(chunk)
        else:
            yield from _value_blocks(column)
    except BadInputError as exc:
        raise BadInputError(f'key column "{name}": {exc.message}', column=name) from None
    except pa.ArrowInvalid as exc:
        raise BadInputError(f'key column "{name}" cannot be hashed: {exc}', column=name) from None


def _hash_values(arr: pa.Array) -> U64:
    """h(v) for every slot of ``arr``, with C_NULL for nulls."""
    result = np.empty(len(arr), dtype=np.uint64)
    for start, stop, hashes in _value_blocks(arr):
        result[start:stop] = hashes
    return result


def _value_blocks(arr: pa.Array) -> Blocks:
    """h(v) for every slot of ``arr``, with C_NULL for nulls, a block of rows at a time."""
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    n = len(arr)
    if n == 0:
        return
    if pa.types.is_null(arr.type):
        yield from _constant_blocks(n, _C_NULL)
        return
    hashes = np.empty(min(n, _SLICE_ROWS), dtype=np.uint64)
    has_nulls = arr.null_count > 0
    if pa.types.is_dictionary(arr.type):
        dictionary = _hash_values(arr.dictionary)
        if len(dictionary) == 0:  # every index is null
            yield from _constant_blocks(n, _C_NULL)
            return
        indices = _buffer_values(arr.indices)
        if indices is None:
            indices = np.asarray(pc.fill_null(arr.indices, 0).to_numpy(zero_copy_only=False))
        if indices.dtype == np.uint64:  # np.take wants signed indices; valid ones are small
            indices = indices.view(np.int64)
        for start, stop in _fixed_slices(n):
            part = hashes[: stop - start]
            # Indices under nulls are arbitrary: clip keeps them in range, then they are reset.
            np.take(dictionary, indices[start:stop], out=part, mode="clip")
            if has_nulls:
                _set_nulls(arr, start, stop, part)
            yield start, stop, part
        return
    tmp = np.empty_like(hashes)
    for start, stop, words in _word_blocks(arr):
        part = hashes[: stop - start]
        # The cast is a no-op for 64-bit words; narrower integers are sign- (or zero-)
        # extended, as when converted to int64 and taken as unsigned.
        np.add(words, _C_VAL, out=part, dtype=np.uint64, casting="unsafe")
        _fmix_inplace(part, tmp)
        if has_nulls:
            _set_nulls(arr, start, stop, part)
        yield start, stop, part


def _constant_blocks(n: int, value: np.uint64) -> Blocks:
    block = np.full(min(n, _SLICE_ROWS), value, dtype=np.uint64)
    for start, stop in _fixed_slices(n):
        yield start, stop, block[: stop - start]


def _set_nulls(arr: pa.Array, start: int, stop: int, hashes: U64) -> None:
    nulls = arr.slice(start, stop - start).is_null().to_numpy(zero_copy_only=False)
    hashes[nulls] = _C_NULL


def _word_blocks(arr: pa.Array) -> Iterator[tuple[int, int, NDArray[np.generic]]]:
    """w(v) for every slot (arbitrary for nulls), dispatching on the Arrow type.

    The words come as uint64, or as narrower integers standing for their int64 value.
    """
    t = arr.type
    types = pa.types
    if types.is_floating(t):
        yield from _float_blocks(arr)
        return
    if types.is_timestamp(t) and t.unit in ("s", "ms"):
        arr = arr.cast(pa.timestamp("us", t.tz))
    if types.is_boolean(t):
        yield from _converted_blocks(arr, _integers)
    elif types.is_integer(t) or (types.is_temporal(t) and not types.is_interval(t)):
        values = _buffer_values(arr)
        if values is None:
            yield from _converted_blocks(arr, _integers)
        else:
            for start, stop in _fixed_slices(len(arr)):
                yield start, stop, values[start:stop]
    elif types.is_decimal(t):
        yield from _converted_blocks(_as_decimal128(arr), _decimals)
    elif types.is_string(t) or types.is_binary(t):
        yield from _bytes_blocks(arr, np.int32)
    elif types.is_large_string(t) or types.is_large_binary(t):
        yield from _bytes_blocks(arr, np.int64)
    elif types.is_string_view(t) or types.is_binary_view(t) or types.is_fixed_size_binary(t):
        yield from _bytes_blocks(arr.cast(pa.large_binary()), np.int64)
    elif (
        types.is_list(t)
        or types.is_large_list(t)
        or types.is_list_view(t)
        or types.is_large_list_view(t)
        or types.is_fixed_size_list(t)
    ):
        yield from _list_blocks(arr)
    else:
        raise BadInputError(
            f"cannot hash Arrow type {t}; key columns may be numbers, bools, dates, "
            "timestamps, decimals, strings, binaries, dictionaries of those, or lists of those"
        )


def _fixed_slices(n: int) -> Iterator[tuple[int, int]]:
    rows = _SLICE_ROWS
    for start in range(0, n, rows):
        yield start, min(start + rows, n)


def _buffer_values(arr: pa.Array) -> NDArray[Any] | None:
    """The values of a fixed-width numeric or temporal array as numpy, without a copy."""
    t = arr.type
    if pa.types.is_integer(t):
        dtype = np.dtype(f"<{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    elif pa.types.is_floating(t):
        dtype = np.dtype(f"<f{t.bit_width // 8}")
    else:  # dates, times, timestamps, durations: signed integers
        dtype = np.dtype(f"<i{t.bit_width // 8}")
    buffers = arr.buffers()
    if len(buffers) != 2 or buffers[1] is None:
        return None
    values: NDArray[Any] = np.frombuffer(buffers[1], dtype=dtype, count=arr.offset + len(arr))
    return values[arr.offset :]


def _converted_blocks(arr: pa.Array, words: Callable[[pa.Array], U64]) -> Blocks:
    """Words computed by ``words`` for one block of ``arr`` at a time."""
    for start, stop in _fixed_slices(len(arr)):
        yield start, stop, words(arr.slice(start, stop - start))


def _float_blocks(arr: pa.Array) -> Blocks:
    values = _buffer_values(arr)
    if values is None:
        values = np.asarray(pc.fill_null(arr, 0.0).to_numpy(zero_copy_only=False))
    n = len(arr)
    floats = np.empty(min(n, _SLICE_ROWS), dtype=np.float64)
    bits = floats.view(np.uint64)
    nans = np.empty(len(floats), dtype=np.bool_)
    for start, stop in _fixed_slices(n):
        part = floats[: stop - start]
        np.add(values[start:stop], 0.0, out=part)  # as float64, where -0.0 became 0.0
        is_nan = np.isnan(part, out=nans[: stop - start])
        np.copyto(bits[: stop - start], _CANONICAL_NAN, where=is_nan)
        yield start, stop, bits[: stop - start]


def _integers(arr: pa.Array) -> U64:
    t = arr.type
    if pa.types.is_uint64(t):
        arr = arr.view(pa.int64())
    elif pa.types.is_temporal(t):
        arr = arr.view(pa.int32() if t.bit_width == 32 else pa.int64())
    values = pc.fill_null(arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def _as_decimal128(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_decimal128(t):
        return arr
    if t.precision > 38:
        raise BadInputError(f"cannot hash {t}: precision above 38 is not supported")
    return arr.cast(pa.decimal128(t.precision, t.scale))


def _decimals(arr: pa.Array) -> U64:
    """Words of a decimal128 array."""
    if len(arr) == 0:
        return np.empty(0, dtype=np.uint64)
    # Arrow stores decimal128 as two little-endian 64-bit words, low word first.
    words = np.frombuffer(arr.buffers()[1], dtype="<u8", count=2 * (arr.offset + len(arr)))
    words = words[2 * arr.offset :].astype(np.uint64)
    return words[0::2] ^ _fmix(words[1::2] ^ _C_DEC)


def _bytes_blocks(arr: pa.Array, offset_type: type[np.int32] | type[np.int64]) -> Blocks:
    """w(v) for string/binary arrays with 32- or 64-bit offsets, a block of rows at a time."""
    n = len(arr)
    buffers = arr.buffers()
    offsets: NDArray[Any] = np.frombuffer(buffers[1], dtype=offset_type, count=arr.offset + n + 1)[
        arr.offset :
    ]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.empty(0, dtype=np.uint8)
    )
    scratch = _BytesScratch(min(n, _SLICE_ROWS))
    # Where the data is 8-byte aligned (Arrow allocates it so), rows ending at least 16 bytes
    # before its end read their words in place, as aligned uint64s: reading whole words may
    # run past a value into bytes that are then masked off. Other rows are read from a
    # zero-padded, aligned copy of their block's bytes.
    in_place = 0
    if data.ctypes.data % 8 == 0:
        limit = len(data) - 16
        in_place = n
        if limit < int(offsets[n]):
            bound = offsets.dtype.type(max(limit, -1))
            in_place = int(np.searchsorted(offsets[1:], bound, "right"))
    if in_place:
        words = data[: len(data) // 8 * 8].view(np.uint64)
        for start, stop in _row_slices(offsets[: in_place + 1], _SLICE_BYTES, _SLICE_ROWS):
            yield start, stop, _bytes_block(words, offsets, start, stop, 0, scratch)
    if in_place < n:
        tail = offsets[in_place:]
        for start, stop in _row_slices(tail, _SLICE_BYTES, _SLICE_ROWS):
            first, last = int(tail[start]), int(tail[stop])
            words = scratch.padded_words(data[first:last])
            block = _bytes_block(words, tail, start, stop, first, scratch)
            yield in_place + start, in_place + stop, block


class _BytesScratch:
    """Buffers reused block after block by ``_bytes_block``."""

    def __init__(self, rows: int) -> None:
        self.starts = np.empty(rows, dtype=np.int64)
        self.lengths = np.empty(rows, dtype=np.int64)
        self.index = np.empty(rows, dtype=np.int64)
        self.low_shift = np.empty(rows, dtype=np.uint64)
        self.high_shift = np.empty(rows, dtype=np.uint64)
        self.low = np.empty(rows, dtype=np.uint64)
        self.high = np.empty(rows, dtype=np.uint64)
        self.word = np.empty(rows, dtype=np.uint64)
        self.masks = np.empty(rows, dtype=np.uint64)
        self.active = np.empty(rows, dtype=np.bool_)
        self.tmp = np.empty(rows, dtype=np.uint64)
        self.result = np.empty(rows, dtype=np.uint64)
        self.padded = np.empty(0, dtype=np.uint64)

    def padded_words(self, data: NDArray[np.uint8]) -> U64:
        """``data`` followed by 16 zero bytes, as aligned words (valid until the next call)."""
        n_words = len(data) // 8 + 3
        if len(self.padded) < n_words:
            self.padded = np.empty(max(n_words, (_SLICE_BYTES >> 3) + 3), dtype=np.uint64)
        words = self.padded[:n_words]
        words[-3:] = 0
        words.view(np.uint8)[: len(data)] = data
        return words


def _bytes_block(
    words: U64,
    offsets: NDArray[np.int32] | I64,
    start: int,
    stop: int,
    shift: int,
    scratch: _BytesScratch,
) -> U64:
    """w(v) for rows start..stop-1, whose bytes start at byte offsets[row] - shift of
    ``words``, which extend at least 15 bytes past the end of every one of those rows."""
    m = stop - start
    starts: NDArray[np.int32] | I64 = offsets[start:stop]
    if shift:
        starts = np.subtract(starts, shift, out=scratch.starts[:m], dtype=np.int64)
    lengths = scratch.lengths[:m]
    np.subtract(offsets[start + 1 : stop + 1], offsets[start:stop], out=lengths)  # no overflow
    tmp = scratch.tmp[:m]
    result = scratch.result[:m]
    shortest, longest = int(lengths.min()), int(lengths.max())
    if longest < len(_LENGTH_HASHES):
        np.take(_LENGTH_HASHES, lengths, out=result, mode="clip")
    else:
        np.bitwise_xor(lengths.view(np.uint64), _C_LEN, out=result)
        _fmix_inplace(result, tmp)
    n_short = min(-(-longest // 8), _SHORT_WORDS)
    if n_short:
        # A value starting at byte 8q + r has word k = (words[q + k] >> 8r) | (words[q + k +
        # 1] << (64 - 8r)); numpy defines a shift by 64 as giving 0, as needed when r = 0.
        # Indices past the end (for rows without word k) are clipped, and the words masked.
        index = scratch.index[:m]
        low_shift = scratch.low_shift[:m]
        high_shift = scratch.high_shift[:m]
        np.right_shift(starts, 3, out=index)
        np.bitwise_and(starts, 7, out=low_shift.view(np.int64))
        low_shift <<= np.uint64(3)
        np.subtract(np.uint64(64), low_shift, out=high_shift)
        low, high, word = scratch.low[:m], scratch.high[:m], scratch.word[:m]
        np.take(words, index, out=low, mode="clip")
        # Word k of every row at once; rows with no word k add fmix(0) = 0 at k = 0 (their
        # mask is 0 and so is the tweak), and are left out by ``where`` for k > 0.
        for k in range(n_short):
            np.take(words[k + 1 :], index, out=high, mode="clip")
            np.right_shift(low, low_shift, out=word)
            np.left_shift(high, high_shift, out=tmp)
            word |= tmp
            if 8 * (k + 1) > shortest:  # keep only the bytes that belong to each value
                word &= np.take(_WORD_MASKS[k], lengths, out=scratch.masks[:m], mode="clip")
            if k:
                word ^= np.uint64(k * _C_POS_INT & _MASK64)
            _fmix_inplace(word, tmp)
            if k and 8 * k >= shortest:
                active = np.greater(lengths, 8 * k, out=scratch.active[:m])
                np.add(result, word, out=result, where=active)
            else:
                result += word
            low, high = high, low
    if longest > 8 * _SHORT_WORDS:
        long_rows = np.flatnonzero(lengths > 8 * _SHORT_WORDS)
        rest = lengths[long_rows] - 8 * _SHORT_WORDS
        counts = (rest + 7) // 8
        segment_starts, k_rest = _positions(counts)
        first_positions = starts[long_rows].astype(np.int64) + 8 * _SHORT_WORDS
        positions = np.repeat(first_positions, counts) + 8 * k_rest
        word_index = positions >> 3
        low_shifts = (positions & 7).astype(np.uint64) << np.uint64(3)
        long_words = np.take(words, word_index) >> low_shifts
        long_words |= np.take(words, word_index + 1) << (np.uint64(64) - low_shifts)
        remaining = np.minimum(np.repeat(rest, counts) - 8 * k_rest, 8)
        long_words &= _BYTE_MASKS[remaining]
        result[long_rows] += _segment_sums(
            long_words, counts, segment_starts, k_rest + _SHORT_WORDS
        )
    return result


def _list_blocks(arr: pa.Array) -> Blocks:
    """w(v) for every list slot, hashing the elements of a slice of rows at a time."""
    # list_value_length and list_flatten both skip null lists, so they stay aligned.
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False)
    counts = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts)])
    for start, stop in _row_slices(offsets, _SLICE_ITEMS, _SLICE_ROWS):
        elements = _hash_values(pc.list_flatten(arr.slice(start, stop - start)))
        yield start, stop, _combine(elements, counts[start:stop], counts[start:stop])


def _row_slices(
    offsets: NDArray[np.int32] | I64, budget: int, max_rows: int
) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges each spanning at most ``budget`` items and ``max_rows`` rows
    (at least one row)."""
    n = len(offsets) - 1
    end = int(offsets[n])
    start = 0
    while start < n:
        # The bound has the offsets' own type, so that searchsorted does not convert them.
        bound = offsets.dtype.type(min(int(offsets[start]) + budget, end))
        stop = int(np.searchsorted(offsets, bound, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, n)
        yield start, stop
        start = stop


def _positions(counts: I64) -> tuple[I64, I64]:
    """Start of each segment in the flat array, and each flat item's index in its segment."""
    starts = np.cumsum(counts) - counts
    k = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    return starts, k


def _segment_sums(items: U64, counts: I64, starts: I64, k: I64) -> U64:
    """Per segment: the sum of fmix(item ^ (k * C_POS)) over its items."""
    tweaks = k.astype(np.uint64)
    tweaks *= _C_POS
    tweaks ^= items
    _fmix_inplace(tweaks, np.empty_like(tweaks))
    sums = np.zeros(len(tweaks) + 1, dtype=np.uint64)
    np.cumsum(tweaks, out=sums[1:])  # wraps modulo 2**64, so differences are segment sums
    segment_sums: U64 = sums[starts + counts] - sums[starts]
    return segment_sums


def _combine(items: U64, counts: I64, lengths: I64) -> U64:
    """Per segment: fmix(length ^ C_LEN) + sum of fmix(item_k ^ (k * C_POS))."""
    starts, k = _positions(counts)
    return _segment_sums(items, counts, starts, k) + _fmix(lengths.astype(np.uint64) ^ _C_LEN)
