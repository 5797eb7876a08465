"""Decimals up to precision 38 read back exactly through the cursor and read_batch.

The oracle is pyarrow's own ``to_pylist`` of the array that was written: strand must give
the same ``Decimal`` (value and exponent), never one rounded to the default 28-digit context.
"""

from __future__ import annotations

import decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strand
from strand import StrandField, StrandSchema

MAX = 10**38 - 1
SCALES = (0, 10, 37, 38)
# Unscaled values: the extremes of decimal128(38, s), near-extremes, sign and zero.
UNSCALED = [MAX, -MAX, 0, 1, -1, 10**37, -(10**37), 12345678901234567890123456789012345678, -7]


def _exact(unscaled: int, scale: int) -> decimal.Decimal:
    """``unscaled * 10**-scale`` as a Decimal, built without any context rounding."""
    sign = 1 if unscaled < 0 else 0
    return decimal.Decimal((sign, tuple(int(d) for d in str(abs(unscaled))), -scale))


def _round_trip(
    name: str, fields: list[StrandField], columns: list[pa.Array], as_arrow: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Write ``columns`` once; return (pyarrow's rows, read_batch rows, cursor rows)."""
    schema = StrandSchema(fields)
    batch = pa.RecordBatch.from_arrays(columns, names=list(schema.names))
    expected = batch.to_pylist()
    seg = strand.create_strand(name, strand.compute_strand_map(schema, 256, 1 << 16))
    try:
        view = strand.StrandView(seg)
        writer = strand.StrandWriter(seg)
        writer.begin()
        writer.write_record_batch(batch if as_arrow else expected)
        got = view.read_batch(0, batch.num_rows)
        assert isinstance(got, pa.RecordBatch)
        rows = got.to_pylist()
        cursor = view.allocate_cursor()
        via_cursor = []
        for i in range(batch.num_rows):
            assert cursor.seek(i)
            via_cursor.append({f.name: cursor.get_decimal(f.name) for f in fields})
            assert via_cursor[-1] == {f.name: cursor.get(f.name) for f in fields}
        del got, cursor
        writer.close()
        view.close()
    finally:
        seg.unlink()
        seg.close(timeout=2)
    return expected, rows, via_cursor


def _as_text(rows: list[dict[str, Any]]) -> list[dict[str, str | None]]:
    """Rows with each Decimal as its exact text, so a rounded value or exponent differs."""
    return [{k: None if v is None else str(v) for k, v in row.items()} for row in rows]


@pytest.mark.parametrize("as_arrow", [True, False], ids=["arrow", "records"])
def test_precision_38_extremes_are_exact(name: str, as_arrow: bool) -> None:
    fields = [StrandField(f"s{s}", f"decimal(38, {s})") for s in SCALES]
    columns = [
        pa.array([_exact(u, s) for u in UNSCALED] + [None], pa.decimal128(38, s)) for s in SCALES
    ]
    expected, rows, via_cursor = _round_trip(name, fields, columns, as_arrow)
    # The oracle itself holds the exact values (guards the test against a lossy input).
    assert [r["s10"] for r in expected[:2]] == [
        decimal.Decimal("9999999999999999999999999999.9999999999"),
        decimal.Decimal("-9999999999999999999999999999.9999999999"),
    ]
    assert _as_text(rows) == _as_text(expected)
    assert _as_text(via_cursor) == _as_text(expected)
    assert via_cursor[-1] == dict.fromkeys(via_cursor[-1])  # the null row reads None


@st.composite
def _decimal_columns(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    precision = draw(st.integers(1, 38))
    scale = draw(st.integers(0, precision))
    top = 10**precision - 1
    values = draw(
        st.lists(
            st.integers(-top, top) | st.sampled_from([top, -top, 0]),
            min_size=1,
            max_size=20,
        )
    )
    return precision, scale, values


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(column=_decimal_columns())
def test_every_precision_and_scale_reads_exactly(
    column: tuple[int, int, list[int]], name: str
) -> None:
    precision, scale, unscaled = column
    field = StrandField("d", f"decimal({precision}, {scale})")
    array = pa.array([_exact(u, scale) for u in unscaled], pa.decimal128(precision, scale))
    expected, rows, via_cursor = _round_trip(name, [field], [array], as_arrow=True)
    assert _as_text(rows) == _as_text(expected)
    assert _as_text(via_cursor) == _as_text(expected)
