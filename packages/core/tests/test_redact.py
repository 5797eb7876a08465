"""Credentials never reach a log line: by parameter name, bearer header or JWT shape."""

from __future__ import annotations

import logging

import pytest

from platform_core import RedactTokens, redact

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/db/x.json?access_token=abc", "/db/x.json?access_token=***"),
        ("/x?a=1&auth=abc&b=2", "/x?a=1&auth=***&b=2"),
        ("/x?PASSWORD=hunter2", "/x?PASSWORD=***"),
        ("/x?%61ccess_token=abc", "/x?%61ccess_token=***"),
        ("/x?api_key=k;secret=s", "/x?api_key=***;secret=***"),
        ("/x?oauth=keep&author=keep&tokens=keep", "/x?oauth=keep&author=keep&tokens=keep"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        (f"token {JWT} is expired", "token *** is expired"),
        ("/auth=not-a-query", "/auth=not-a-query"),
        ("plain text", "plain text"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_filter_redacts_messages_args_and_tracebacks() -> None:
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "GET %s", (f"/x?auth={JWT}",), exc_info=True
        )
        import sys

        record.exc_info = sys.exc_info()
    assert RedactTokens().filter(record)
    line = logging.Formatter().format(record)
    assert JWT not in line
    assert "auth=***" in line
    assert "bad token ***" in line
