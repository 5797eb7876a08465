"""Byte sizes: decimal and binary units, units required, the refusal names the accepted forms."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from platform_core import BadInputError, parse_bytes

CASES = {
    "64MB": 64 * 10**6,
    "64mb": 64 * 10**6,
    "64 MB": 64 * 10**6,
    "64MiB": 64 * 2**20,
    "64 mib": 64 * 2**20,
    "64MIB": 64 * 2**20,
    "1KB": 1000,
    "1KiB": 1024,
    "2GB": 2 * 10**9,
    "2GiB": 2 * 2**30,
    "1TB": 10**12,
    "1TiB": 2**40,
    "1.5 GiB": 3 * 2**29,
    "512B": 512,
    " 8 kb ": 8000,
}


@pytest.mark.parametrize(("text", "want"), CASES.items())
def test_every_spelling(text: str, want: int) -> None:
    assert parse_bytes(text) == want


def test_an_int_is_bytes() -> None:
    assert parse_bytes(100) == 100
    with pytest.raises(BadInputError, match="negative"):
        parse_bytes(-1)


@pytest.mark.parametrize("text", ["64", "64 ", "1.5"])
def test_a_bare_number_is_refused_with_the_forms(text: str) -> None:
    with pytest.raises(BadInputError, match=r"has no unit; write e\.g\. .*MB or .*MiB") as info:
        parse_bytes(text, what="--mem-cap")
    assert info.value.message.startswith("--mem-cap: ")
    assert "powers of 1000" in info.value.message
    assert "powers of 1024" in info.value.message


@pytest.mark.parametrize("text", ["64M", "64k", "1G", "64 megabytes", "lots", "", "MB", "-5MB"])
def test_ambiguous_or_unknown_is_refused(text: str) -> None:
    with pytest.raises(BadInputError, match="KiB"):
        parse_bytes(text)


@settings(deadline=None)  # the first example imports pydantic's validators (480 ms, loaded)
@given(st.integers(0, 10**6), st.sampled_from(["KB", "MB", "GB", "KiB", "MiB", "GiB"]))
def test_decimal_and_binary_agree_with_pydantic(n: int, unit: str) -> None:
    from pydantic import ByteSize, TypeAdapter

    assert parse_bytes(f"{n}{unit}") == TypeAdapter(ByteSize).validate_python(f"{n}{unit}")


# --- MemCap: the one type of a memory cap, from settings to task (issue 33 item 7) ----------


@pytest.mark.parametrize(("text", "want"), CASES.items())
def test_a_memcap_reads_every_size_parse_bytes_reads(text: str, want: int) -> None:
    from platform_core import MemCap

    cap = MemCap(text)
    assert cap == want
    assert isinstance(cap, int)
    assert MemCap(cap) is cap  # already a cap: kept as it is


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (0, "positive size, got 0"),
        ("0MiB", "positive size, got '0MiB'"),
        (-5, "positive size, got -5"),
        ("64", "has no unit"),
        (True, "expected a size"),
        ("lots", "not a size"),
        ("64M", "unknown unit 'M'"),
    ],
)
def test_a_bad_memcap_names_the_setting_and_what_to_write(bad: object, said: str) -> None:
    from platform_core import MemCap

    with pytest.raises(BadInputError, match=f"^worker_mem_cap: .*{said}") as info:
        MemCap(bad, what="worker_mem_cap")  # type: ignore[arg-type]
    assert "MiB" in info.value.message  # says what to write


def test_a_memcap_setting_reads_env_text_as_before_and_must_be_positive() -> None:
    """As a settings field, text reads as pydantic's ByteSize reads it (a bare number from an
    environment variable is bytes), the value becomes a MemCap, and 0 is refused."""
    from pydantic import BaseModel, ValidationError

    from platform_core import MemCap

    class S(BaseModel):
        cap: MemCap = MemCap(1 << 20)

    for given_, want in [("268435456", 256 << 20), ("256MiB", 256 << 20), ("1GB", 10**9)]:
        got = S(cap=given_).cap  # type: ignore[arg-type]
        assert got == want
        assert isinstance(got, MemCap)
    assert S(cap=7).model_dump() == {"cap": 7}
    for bad in (0, "0", "-1", "lots"):
        with pytest.raises(ValidationError, match=r"memory cap is a positive size|not a size"):
            S(cap=bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=1 << 50))
@example(8448)  # 8.25 KiB, said 8.2: exactly half a decimal off (a CI run found it)
def test_a_memcap_is_its_bytes_and_says_them_for_people(n: int) -> None:
    from platform_core import MemCap, format_size

    cap = MemCap(n)
    assert int(cap) == n
    assert cap + 1 == n + 1
    assert type(cap + 1) is int
    text = format_size(n)
    assert repr(cap) == f"MemCap({text})"
    assert cap.text == text
    number, unit = text.split()
    scale = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
    # one decimal at most off, exactly (8448 B is 8.25 KiB, said 8.2: 0.05 KiB off, which
    # a float product missed by 7e-13)
    assert abs(Fraction(number) * scale - n) <= Fraction(1, 20) * scale


@given(st.integers(min_value=1, max_value=(1 << 62) - 1))
def test_a_memcap_prints_its_bytes_in_messages(n: int) -> None:
    """Found from outside (issue 33): error messages wrote ``f"{cap}-byte cap"`` and said
    "the MemCap(7.1 MiB)-byte share", since ``int.__str__`` calls an int subclass's repr."""
    from platform_core import MemCap

    cap = MemCap(n)
    assert f"{cap}" == str(cap) == "%d" % cap == "{}".format(cap) == str(n)  # noqa: UP031, UP032
    assert f"{cap:,}" == f"{n:,}"
    assert repr(cap).startswith("MemCap(")


def test_a_memcap_past_what_an_engine_reads_is_refused_naming_the_largest() -> None:
    """1e23 bytes was taken as a cap; DuckDB then refused its memory_limit in every task,
    which fell back to emsqrt's operators with a warning per task."""
    from pydantic import BaseModel, ValidationError

    from platform_core import MAX_MEM_CAP, BadInputError, MemCap

    assert MemCap(MAX_MEM_CAP) == MAX_MEM_CAP
    for bad in (MAX_MEM_CAP + 1, 99999999999999999999999, "9999999TiB"):
        with pytest.raises(BadInputError, match=r"largest is 2\*\*62 - 1 bytes"):
            MemCap(bad)

    class S(BaseModel):
        cap: MemCap

    with pytest.raises(ValidationError, match=r"largest is 2\*\*62 - 1 bytes"):
        S(cap="99999999999999999999999")  # type: ignore[arg-type]
