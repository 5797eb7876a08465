"""platform_core.live: the LiveSink protocol, the Plugin fields, and escaping ids into keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_core import LiveSink, Plugin, escape_key, unescape_key

FORBIDDEN = set(".#$/[]") | {chr(c) for c in range(32)} | {"\x7f"}


class Sink:
    def reserve(self, key: str, rules: Mapping[str, Any]) -> None: ...
    def publish(self, path: str, value: Any) -> None: ...
    def publish_many(self, values: Mapping[str, Any]) -> None: ...


def test_a_class_with_the_three_methods_is_a_sink() -> None:
    assert isinstance(Sink(), LiveSink)
    assert not isinstance(object(), LiveSink)


def test_plugins_may_offer_a_sink_or_a_source_without_serving_http() -> None:
    p = Plugin(name="store", live_sink=lambda: None)
    assert p.live_sink is not None
    assert p.live_source is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("node-1", "node-1"),
        ("host.example:8080", "host%2Eexample:8080"),
        ("a/b#c$d[e]", "a%2Fb%23c%24d%5Be%5D"),
        ("50%", "50%25"),
        ("tab\there", "tab%09here"),
    ],
)
def test_escape_key_examples(text: str, key: str) -> None:
    assert escape_key(text) == key
    assert unescape_key(key) == text


@given(st.text(min_size=1, max_size=50))
def test_escape_key_is_a_valid_key_and_reversible(text: str) -> None:
    key = escape_key(text)
    assert not FORBIDDEN & set(key)
    assert unescape_key(key) == text


def test_an_empty_text_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="empty"):
        escape_key("")
