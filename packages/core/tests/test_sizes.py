"""Byte sizes: decimal and binary units, units required, the refusal names the accepted forms."""

from __future__ import annotations

import pytest
from hypothesis import given
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


@given(st.integers(0, 10**6), st.sampled_from(["KB", "MB", "GB", "KiB", "MiB", "GiB"]))
def test_decimal_and_binary_agree_with_pydantic(n: int, unit: str) -> None:
    from pydantic import ByteSize, TypeAdapter

    assert parse_bytes(f"{n}{unit}") == TypeAdapter(ByteSize).validate_python(f"{n}{unit}")
