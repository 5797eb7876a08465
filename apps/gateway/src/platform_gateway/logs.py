"""Keep tokens out of the gateway's logs (the rule itself lives in ``platform_core.redact``).

Protected routes accept ``?auth=<token>`` because EventSource (SSE) and browser WebSocket
clients cannot set headers, and uvicorn logs each request's path with its query string (the
access log; WebSocket handshakes go to ``uvicorn.error``). The ``platform`` CLI installs
:class:`RedactTokens` on both loggers and on the handler it configures; programs that serve
``create_app()`` with their own server call :func:`install_log_redaction` themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from platform_core import RedactTokens, redact
from platform_core import install_log_redaction as _install

__all__ = ["ACCESS_LOGGER", "REDACTED_LOGGERS", "RedactTokens", "install_log_redaction", "redact"]

ACCESS_LOGGER = "uvicorn.access"
REDACTED_LOGGERS = (ACCESS_LOGGER, "uvicorn.error")
"""The loggers that print request paths with their query strings."""


def install_log_redaction(logger_names: Iterable[str] = REDACTED_LOGGERS) -> None:
    """Add :class:`RedactTokens` to each named logger (default: uvicorn's two), once each."""
    _install(logger_names, root_handlers=False)
