import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_core import BadInputError, id_time, is_valid_id, new_id


def test_ids_sort_in_creation_order_within_one_millisecond():
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(is_valid_id(i) and len(i) == 26 for i in ids)


def test_later_id_sorts_after_earlier_across_milliseconds():
    a = new_id()
    time.sleep(0.002)
    assert new_id() > a


def test_id_time_is_creation_time():
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    t = id_time(new_id())
    assert before <= t <= datetime.now(UTC) + timedelta(milliseconds=1)


def test_ids_from_two_processes_do_not_collide():
    code = "from platform_core import new_id; print(' '.join(new_id() for _ in range(5000)))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    a, b = (set(p.communicate(timeout=60)[0].split()) for p in procs)
    assert len(a) == len(b) == 5000
    assert not a & b


@given(st.text(max_size=30))
def test_random_text_is_not_an_id(text):
    assert not is_valid_id(text)  # 26 Crockford characters are a vanishing fraction of text
    with pytest.raises(BadInputError, match="not a platform id"):
        id_time(text)


@given(st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26))
def test_well_formed_text_is_an_id_with_a_time(text):
    assert is_valid_id(text) == (text[0] <= "7")
    if is_valid_id(text) and text[:10] < "76EZ91ZP0R":  # 9999-12-31: later times have no datetime
        assert id_time(text).year >= 1970
    elif is_valid_id(text):
        with pytest.raises(BadInputError):
            id_time(text)


@pytest.mark.parametrize(
    "bad", ["../etc/passwd", "01M80CZ5F37R5DCZBDBN5SCR5", "01m80cz5f37r5dczbdbn5scr57"]
)
def test_path_like_or_malformed_ids_are_invalid(bad):
    assert not is_valid_id(bad)
