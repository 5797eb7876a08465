"""Schema: lookups, JSON/dict/Arrow round trips, a stable fingerprint, clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_core.errors import BadInputError
from platform_core.schema import Field, Schema
from platform_core.types import VOCABULARY, FieldType, decimal, timestamp

field_types = st.one_of(
    st.sampled_from([k for k in VOCABULARY if k not in ("timestamp", "decimal")]).map(FieldType),
    st.sampled_from([None, "UTC", "Europe/Paris", "-03:00"]).map(timestamp),
    st.integers(1, 38).flatmap(lambda p: st.integers(0, p).map(lambda s: decimal(p, s))),
)
schemas = st.lists(
    st.tuples(st.text(min_size=1, max_size=12), field_types, st.booleans()),
    max_size=8,
    unique_by=lambda entry: entry[0],
).map(lambda entries: Schema(Field(n, t, nullable) for n, t, nullable in entries))

ORDERS = Schema(
    [
        Field("id", "i64", nullable=False),
        Field("amount", "decimal(10, 2)"),
        Field("ts", "timestamp[us, UTC]"),
        Field("région", "utf8_ref"),
    ]
)


@given(schemas)
def test_round_trips(schema: Schema) -> None:
    assert Schema.from_json(schema.to_json()) == schema
    assert Schema.from_dict(schema.to_dict()) == schema
    assert Schema.from_arrow(schema.to_arrow()) == schema
    assert Schema.from_json(schema.to_json()).fingerprint == schema.fingerprint
    assert hash(Schema.from_json(schema.to_json())) == hash(schema)


@given(schemas)
def test_fingerprint_is_sha256_of_canonical_json(schema: Schema) -> None:
    canonical = json.dumps(
        schema.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert schema.to_json() == canonical
    assert schema.fingerprint == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_canonical_json_and_pinned_fingerprint() -> None:
    # Pinned: any process, machine or language that writes this JSON gets this fingerprint.
    assert ORDERS.to_json() == (
        '{"fields":[{"name":"id","nullable":false,"type":"i64"},'
        '{"name":"amount","nullable":true,"type":"decimal(10, 2)"},'
        '{"name":"ts","nullable":true,"type":"timestamp[us, UTC]"},'
        '{"name":"région","nullable":true,"type":"utf8_ref"}]}'
    )
    assert ORDERS.fingerprint == hashlib.sha256(ORDERS.to_json().encode()).hexdigest()
    assert ORDERS.fingerprint == "920e2778c460acc4e78739f9eff36a8c169dc3ca98b53ceabb97af74e8443e6a"


def test_fingerprint_ignores_spelling_but_not_meaning() -> None:
    spelled_differently = Schema.from_json(
        """{"fields": [ {"type": "Int64", "name": "id", "nullable": false},
        {"name": "amount", "type": "decimal128(10,2)"},
        {"name": "ts", "type": "timestamp[ms, tz=UTC]", "nullable": true},
        {"name": "r\\u00e9gion", "type": "dictionary<values=string, indices=int8, ordered=0>"}]}"""
    )
    assert spelled_differently.fingerprint == ORDERS.fingerprint
    fields = list(ORDERS)
    reordered = Schema([fields[1], fields[0], *fields[2:]])
    nullable_id = Schema([Field("id", "i64"), *fields[1:]])
    renamed = Schema([Field("ID", "i64", nullable=False), *fields[1:]])
    retyped = Schema([Field("id", "i32", nullable=False), *fields[1:]])
    prints = {s.fingerprint for s in (ORDERS, reordered, nullable_id, renamed, retyped)}
    assert len(prints) == 5


def test_lookups() -> None:
    assert ORDERS.names == ("id", "amount", "ts", "région")
    assert len(ORDERS) == 4
    assert [f.name for f in ORDERS] == list(ORDERS.names)
    assert ORDERS[0] is ORDERS["id"] is ORDERS.field("id")
    assert ORDERS[-1].type == FieldType("utf8_ref")
    assert ORDERS.index("ts") == 2
    assert "amount" in ORDERS
    assert "amout" not in ORDERS
    assert not ORDERS["id"].nullable
    with pytest.raises(IndexError, match="out of range"):
        ORDERS[4]


def test_unknown_column_names_it_and_the_closest() -> None:
    with pytest.raises(BadInputError) as info:
        ORDERS.field("amout")
    assert info.value.message == (
        'column "amout" not found; did you mean "amount"? (columns: id, amount, ts, région)'
    )
    with pytest.raises(BadInputError, match='column "zzz" not found \\(columns'):
        ORDERS["zzz"]


def test_arrow_conversion() -> None:
    arrow = ORDERS.to_arrow()
    assert arrow == pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("amount", pa.decimal128(10, 2)),
            pa.field("ts", pa.timestamp("us", "UTC")),
            pa.field("région", pa.dictionary(pa.int32(), pa.utf8())),
        ]
    )
    widened = Schema.from_arrow(pa.schema([("a", pa.int8()), ("b", pa.large_string())]))
    assert widened == Schema([Field("a", "i32"), Field("b", "utf8")])


def test_arrow_rejection_names_the_column() -> None:
    with pytest.raises(BadInputError, match='column "n": Arrow type uint64 is not supported'):
        Schema.from_arrow(pa.schema([("ok", pa.int64()), ("n", pa.uint64())]))


def test_field_and_schema_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ORDERS.fields = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ORDERS["id"].name = "x"  # type: ignore[misc]
    assert repr(ORDERS["id"]) == "Field('id', 'i64', nullable=False)"


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Field("", "i64"), "non-empty string, got ''"),
        (
            lambda: Field(3, "i64"),  # type: ignore[arg-type]
            "non-empty string, got 3",
        ),
        (lambda: Field("a\udc80", "i64"), "not valid Unicode"),
        (lambda: Field("x", "i46"), 'field "x": unknown field type "i46"; did you mean "i64"'),
        (
            lambda: Field("x", "i64", nullable="yes"),  # type: ignore[arg-type]
            'nullable of field "x"',
        ),
        (lambda: Schema([Field("a", "i64"), Field("a", "utf8")]), 'duplicate column name "a"'),
        (
            lambda: Schema([("a", "i64")]),  # type: ignore[list-item]
            "schema entry 0 must be a Field",
        ),
    ],
)
def test_invalid_fields(build: object, fragment: str) -> None:
    with pytest.raises(BadInputError) as info:
        build()  # type: ignore[operator]
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{", "schema is not valid JSON"),
        ("[]", 'a schema must be an object with "fields", got list []'),
        ("{}", 'a schema must have a "fields" list'),
        ('{"fields": [], "version": 2}', "unexpected key(s) in schema: version"),
        ('{"fields": {}}', 'schema "fields" must be a list, got dict {}'),
        ('{"fields": [1]}', "schema field 0 must be an object, got int 1"),
        ('{"fields": [{"name": "a"}]}', 'schema field 0 needs a string "type", got nothing'),
        ('{"fields": [{"name": 1, "type": "i64"}]}', 'needs a string "name", got int 1'),
        ('{"fields": [{"name": "a", "type": "i64", "nulable": true}]}', "nulable"),
        ('{"fields": [{"name": "a", "type": "i64", "nullable": 1}]}', "must be true or false"),
        ('{"fields": [{"name": "a", "type": "bigint"}]}', 'unknown field type "bigint"'),
        (
            '{"fields": [{"name": "a", "type": "i64"}, {"name": "a", "type": "i64"}]}',
            'duplicate column name "a"',
        ),
    ],
)
def test_malformed_json(text: str, fragment: str) -> None:
    with pytest.raises(BadInputError) as info:
        Schema.from_json(text)
    assert fragment in info.value.message


def test_empty_schema_is_allowed() -> None:
    empty = Schema([])
    assert len(empty) == 0
    assert empty.to_json() == '{"fields":[]}'
    assert Schema.from_arrow(empty.to_arrow()) == empty
