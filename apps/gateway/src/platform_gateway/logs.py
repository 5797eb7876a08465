"""Keep tokens out of the logs: redact ``auth=<token>`` query parameters in uvicorn's lines.

Protected routes accept ``?auth=<token>`` because EventSource (SSE) and browser WebSocket
clients cannot set headers, and uvicorn logs each request's path with its query string (the
access log; WebSocket handshakes go to ``uvicorn.error``). The ``platform`` CLI installs
:class:`RedactTokens` on both loggers; programs that serve ``create_app()`` with their own
server call :func:`install_log_redaction` themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

__all__ = ["ACCESS_LOGGER", "REDACTED_LOGGERS", "RedactTokens", "install_log_redaction", "redact"]

ACCESS_LOGGER = "uvicorn.access"
REDACTED_LOGGERS = (ACCESS_LOGGER, "uvicorn.error")
"""The loggers that print request paths with their query strings."""

_QUERY_PARAM = re.compile(r"(?<=[?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")


def _hide_auth(match: re.Match[str]) -> str:
    name = match.group(1)
    # Starlette decodes parameter names, so `%61uth=` is a token too.
    return f"{name}=***" if unquote_plus(name).lower() == "auth" else match.group(0)


def redact(text: str) -> str:
    """``text`` with the value of every ``auth=`` query parameter replaced by ``***``."""
    return _QUERY_PARAM.sub(_hide_auth, text) if "=" in text else text


class RedactTokens(logging.Filter):
    """A logging filter that redacts ``auth=`` query values in a record's message and args.

    It never drops a record. The args keep their shape (uvicorn's access formatter unpacks
    them), only string args change.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def install_log_redaction(logger_names: Iterable[str] = REDACTED_LOGGERS) -> None:
    """Add :class:`RedactTokens` to each named logger (default: uvicorn's two), once each."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
            logger.addFilter(RedactTokens())
