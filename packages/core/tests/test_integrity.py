import dataclasses
import hashlib
import io
import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_core import (
    BadInputError,
    canonical_json,
    sha256_bytes,
    sha256_file,
    sha256_stream,
    stable_hash,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def test_sha256_helpers_agree_with_hashlib(tmp_path):
    data = b"chunk" * 300_000
    expected = hashlib.sha256(data).hexdigest()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert sha256_bytes(data) == expected
    assert sha256_file(path) == expected
    assert sha256_stream(io.BytesIO(data)) == expected
    assert sha256_stream([data[:10], data[10:]]) == expected


@given(json_values)
def test_canonical_json_round_trips_and_ignores_key_order(value):
    text = canonical_json(value)
    assert json.loads(text) == value
    if isinstance(value, dict):
        assert canonical_json(dict(reversed(list(value.items())))) == text


def test_stable_hash_is_pinned():
    # Pinned: plan hashes name cached results and tasks across versions and machines.
    assert stable_hash({"b": 1, "a": [1.5, None]}) == (
        "cf0c4895ed707baaf7f40eaf8263541a10f2599db4d8955d035dc0a8f254ee32"
    )


def test_canonical_form_is_exact():
    assert canonical_json({"b": 1, "a": [1, "é", None, True]}) == '{"a":[1,"é",null,true],"b":1}'


@dataclasses.dataclass(frozen=True)
class Filter:
    predicate: str
    columns: tuple[str, ...]


def test_dataclasses_hash_by_type_and_fields():
    a = stable_hash(Filter("x > 1", ("x",)))
    assert a == stable_hash(Filter("x > 1", ("x",)))
    assert a != stable_hash(Filter("x > 2", ("x",)))
    assert a != stable_hash({"predicate": "x > 1", "columns": ["x"]})


def test_stable_hash_is_the_same_in_another_process():
    value = {"op": "sort", "keys": ["a", "b"], "limit": 10, "x": 1.5}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from platform_core import stable_hash; print(stable_hash({value!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == stable_hash(value)


@pytest.mark.parametrize("bad", [math.nan, {"a": math.inf}, {1: "int key"}, object()])
def test_unrepresentable_values_are_refused(bad):
    with pytest.raises(BadInputError):
        canonical_json(bad)
