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
from typing import TYPE_CHECKING, Any, Final

from platform_core.errors import BadInputError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

__all__ = ["SIZE_FORMS", "SIZE_UNITS", "MemCap", "format_size", "parse_bytes"]

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


def format_size(n: float) -> str:
    """``268435456`` -> ``256 MiB``, ``1536`` -> ``1.5 KiB``: a size for people (binary units,
    no decimals when exact)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    x, i = float(n), 0
    while abs(x) >= 1024 and i < len(units) - 1:
        x, i = x / 1024, i + 1
    if i == 0:
        return f"{n:.0f} B"
    return f"{x:.0f} {units[i]}" if x.is_integer() else f"{x:.1f} {units[i]}"


MAX_MEM_CAP = (1 << 62) - 1
"""The largest memory cap (4 EiB): above it a cap is no longer a size any engine reads (DuckDB
refuses such a ``memory_limit``, so every task fell back to emsqrt's operators, slowly)."""
_TOO_BIG = "not a memory cap: the largest is 2**62 - 1 bytes (4 EiB); write e.g. 256MiB or 64GiB"


class MemCap(int):
    """A memory cap in bytes: the one type a cap has from settings to task.

    An ``int`` (so arithmetic and ``%d`` work and it travels as a number in JSON), built from
    bytes or from text with a unit (``MemCap("64MiB")``, by :func:`parse_bytes`), and always
    positive: ``MemCap(0)``, ``MemCap(-1)``, ``MemCap("64")`` or ``MemCap(True)`` raise
    ``BadInputError`` naming ``what`` and what to write. As a settings field (pydantic), text
    reads as pydantic's ``ByteSize`` reads it, so environment variables keep their meaning (a
    bare number is bytes: ``ELYTRA_WORKER_MEM_CAP=268435456``), and the value must be > 0.

    The spellings it has: a process's cap is ``mem_cap`` where a user passes it (``run``,
    ``collect``, ``--mem-cap``) and ``mem_cap_bytes`` in emsqrt's settings and
    ``EngineConfig``; elytra's are ``worker_mem_cap`` (each task's) and ``driver_mem_cap``
    (the merge's); a running budget's is ``MemoryBudget.cap_bytes``.
    """

    def __new__(cls, value: int | str, *, what: str = "memory cap") -> MemCap:
        if isinstance(value, MemCap):
            return value
        positive = isinstance(value, bool) or not isinstance(value, int) or value > 0
        n = parse_bytes(value, what=what) if positive else 0
        if n <= 0:
            raise BadInputError(
                f"{what}: a memory cap is a positive size, got {value!r}; write e.g. 256MiB"
            )
        if n > MAX_MEM_CAP:
            raise BadInputError(f"{what}: {value!r} is {_TOO_BIG}")
        return super().__new__(cls, n)

    def __repr__(self) -> str:
        return f"MemCap({format_size(self)})"

    def __str__(self) -> str:
        """The bytes as digits, as any int prints (an error's ``f"{cap}-byte cap"``), not
        the repr: ``int.__str__`` would call :meth:`__repr__`."""
        return int.__repr__(self)

    __format__ = int.__format__

    @property
    def text(self) -> str:
        """The cap for people: ``256 MiB``."""
        return format_size(self)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic_core import core_schema

        checked = core_schema.no_info_after_validator_function(
            cls._from_int, core_schema.int_schema()
        )
        return core_schema.no_info_before_validator_function(
            cls._bytes_of_text,
            checked,
            serialization=core_schema.plain_serializer_function_ser_schema(int),
        )

    @staticmethod
    def _bytes_of_text(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        from pydantic import ByteSize, TypeAdapter, ValidationError

        try:
            return int(TypeAdapter(ByteSize).validate_python(value))
        except ValidationError:
            raise ValueError(f"not a size: {value!r}; write {SIZE_FORMS}") from None

    @classmethod
    def _from_int(cls, value: int) -> MemCap:
        if value <= 0:
            raise ValueError(f"a memory cap is a positive size, got {value}; write e.g. 256MiB")
        if value > MAX_MEM_CAP:
            raise ValueError(f"{value} is {_TOO_BIG}")
        return cls(value)
