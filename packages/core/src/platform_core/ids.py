"""Sortable ids: 48-bit millisecond time + 80 random bits in Crockford base32 (ULID layout).

Ids made later sort after ids made earlier, also within one millisecond in one process
(the random part is incremented), so they make good keys for manifests, uploads and jobs.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import UTC, datetime

from .errors import BadInputError

__all__ = ["id_time", "is_valid_id", "new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_ID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_RANDOM_BITS = 80

_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id() -> str:
    """A new 26-character id, strictly greater than any id this process made before."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
            if rand >= 1 << _RANDOM_BITS:  # 2^80 ids in one ms: move to the next ms
                ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
        _last_ms, _last_rand = ms, rand
    return _encode((ms << _RANDOM_BITS) | rand, 26)


def is_valid_id(text: str) -> bool:
    """Whether ``text`` is a well-formed id (safe to use as a file or path name)."""
    return isinstance(text, str) and _ID_RE.fullmatch(text) is not None


def id_time(text: str) -> datetime:
    """The UTC time an id was made, to the millisecond."""
    if not is_valid_id(text):
        raise BadInputError(f"{text!r} is not a platform id (26 Crockford base32 characters)")
    value = 0
    for c in text:
        value = value * 32 + _DECODE[c]
    try:
        return datetime.fromtimestamp((value >> _RANDOM_BITS) / 1000, tz=UTC)
    except (ValueError, OverflowError):
        raise BadInputError(
            f"{text!r} names a time after the year 9999; it was not made here"
        ) from None
