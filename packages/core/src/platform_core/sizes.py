"""Byte sizes written by people (``64MB``, ``64 MiB``): one parser, units required.

Decimal units are powers of 1000 and binary units powers of 1024, as pydantic's ``ByteSize``
(the platform's settings) reads them::

    B          1
    KB  MB  GB  TB      10^3  10^6  10^9  10^12
    KiB MiB GiB TiB     2^10  2^20  2^30  2^40

Case does not matter and a space may separate number and unit (``64 mib``). A bare number is
refused: ``64`` as 64 bytes was a cap nobody meant. Single letters (``64M``) are refused too,
since they do not say which of the two they mean.
"""

from __future__ import annotations

import re
from typing import Final

from platform_core.errors import BadInputError

__all__ = ["SIZE_FORMS", "SIZE_UNITS", "parse_bytes"]

#: Each accepted unit (lower case) and its bytes.
SIZE_UNITS: Final[dict[str, int]] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

#: The accepted spellings, for help texts and error messages.
SIZE_FORMS: Final = (
    "a number and a unit: KB, MB, GB, TB are powers of 1000 (64MB = 64,000,000 bytes); "
    "KiB, MiB, GiB, TiB are powers of 1024 (64MiB = 67,108,864 bytes); B is bytes; "
    "case-insensitive, a space allowed (64 MiB)"
)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_bytes(value: int | str, *, what: str = "size") -> int:
    """``"64MB"`` -> 64_000_000, ``"64 MiB"`` -> 67_108_864; an ``int`` is already bytes.

    Raises ``BadInputError`` naming ``what`` and the accepted forms for a bare number, an
    unknown unit or anything else that is not a size.
    """
    if isinstance(value, bool):
        raise BadInputError(f"{what}: expected a size, got {value!r} ({SIZE_FORMS})")
    if isinstance(value, int):
        if value < 0:
            raise BadInputError(f"{what}: a size cannot be negative, got {value}")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise BadInputError(f"{what}: not a size: {value!r}; write {SIZE_FORMS}")
    number, unit = m.group(1), m.group(2).lower()
    if not unit:
        raise BadInputError(
            f"{what}: {value!r} has no unit; write e.g. {number}MB or {number}MiB ({SIZE_FORMS})"
        )
    if unit not in SIZE_UNITS:
        raise BadInputError(f"{what}: unknown unit {m.group(2)!r} in {value!r}; write {SIZE_FORMS}")
    return int(float(number) * SIZE_UNITS[unit])
