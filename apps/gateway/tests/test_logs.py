"""Tokens sent as `?auth=` never reach the logs: the filter on uvicorn's access logger."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from platform_gateway import RedactTokens, install_log_redaction
from platform_gateway.cli import _configure_logging
from platform_gateway.logs import ACCESS_LOGGER, REDACTED_LOGGERS, redact

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"


@pytest.fixture
def access_logger() -> Iterator[logging.Logger]:
    """uvicorn's access logger, and its error logger, without filters; restored afterwards."""
    saved = {name: list(logging.getLogger(name).filters) for name in REDACTED_LOGGERS}
    for name in REDACTED_LOGGERS:
        logging.getLogger(name).filters.clear()
    yield logging.getLogger(ACCESS_LOGGER)
    for name, filters in saved.items():
        logging.getLogger(name).filters[:] = filters


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/db/jobs?auth={TOKEN}", "/db/jobs?auth=***"),
        (f"/x?a=1&auth={TOKEN}&b=2", "/x?a=1&auth=***&b=2"),
        (f"/x?auth={TOKEN}#frag", "/x?auth=***#frag"),
        (f"/x?AUTH={TOKEN}", "/x?AUTH=***"),
        (f"/x?%61uth={TOKEN}", "/x?%61uth=***"),
        (
            f'1.2.3.4:5 - "WebSocket /ws?auth={TOKEN}" [accepted]',
            '1.2.3.4:5 - "WebSocket /ws?auth=***" [accepted]',
        ),
        ("/x?auth=", "/x?auth=***"),
        ("/x?oauth=keep&author=keep", "/x?oauth=keep&author=keep"),
        ("/auth=not-a-query", "/auth=not-a-query"),
    ],
)
def test_redact(path: str, expected: str) -> None:
    assert redact(path) == expected


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access log makes it."""
    return logging.LogRecord(
        ACCESS_LOGGER,
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_the_filter_redacts_an_access_line_and_keeps_its_shape() -> None:
    record = access_record(f"/api/jobs/events?auth={TOKEN}")
    assert RedactTokens().filter(record) is True
    line = AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s').format(record)
    assert TOKEN not in line
    assert line == '127.0.0.1:5000 "GET /api/jobs/events?auth=*** HTTP/1.1" 200 OK'


def test_the_installed_filter_keeps_tokens_out_of_captured_logs(
    access_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_redaction()
    install_log_redaction()  # idempotent
    for name in REDACTED_LOGGERS:
        assert sum(isinstance(f, RedactTokens) for f in logging.getLogger(name).filters) == 1
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        access_logger.info('"GET %s HTTP/1.1" 200', f"/x?auth={TOKEN}")
    assert TOKEN not in caplog.text
    assert "auth=***" in caplog.text


def test_the_cli_logging_setup_installs_the_filter(access_logger: logging.Logger) -> None:
    assert not access_logger.filters
    _configure_logging("info")  # pytest's handlers are in place: only the filters are added
    for name in REDACTED_LOGGERS:
        assert any(isinstance(f, RedactTokens) for f in logging.getLogger(name).filters), name
