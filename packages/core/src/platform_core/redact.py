"""Keep credentials out of every log line: query parameters, bearer headers and bare JWTs.

Browser clients (EventSource, WebSocket) can only send a token in the URL, and servers log
request paths with their query strings, so each server installs :class:`RedactTokens` on the
handlers it configures (a handler's filter sees every record that reaches it, whichever
logger it came from). Redaction is by name (``auth``, ``access_token``, ``password`` ...) and
by shape (``Bearer <x>``, anything that looks like a JWT), so a token in an error message or
an unknown parameter is caught too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

__all__ = ["CREDENTIAL_PARAMS", "RedactTokens", "install_log_redaction", "redact"]

CREDENTIAL_PARAMS = frozenset(
    {
        "auth",
        "access_token",
        "id_token",
        "refresh_token",
        "token",
        "jwt",
        "key",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "signature",
        "sig",
        "credential",
        "credentials",
        "session",
    }
)
"""Query parameter names whose values are credentials (compared decoded, any case)."""

_QUERY_PARAM = re.compile(r"(?<=[?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def _hide_param(match: re.Match[str]) -> str:
    name = match.group(1)
    # servers decode parameter names, so `%61uth=` is a token too
    if unquote_plus(name).lower() in CREDENTIAL_PARAMS:
        return f"{name}=***"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with credential query values, bearer credentials and JWTs replaced by ``***``."""
    if "=" in text:
        text = _QUERY_PARAM.sub(_hide_param, text)
    if "eyJ" in text:
        text = _JWT.sub("***", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)} ***", text)
    return text


class RedactTokens(logging.Filter):
    """A logging filter that redacts credentials in a record's message, args and traceback.

    It never drops a record. The args keep their shape (uvicorn's access formatter unpacks
    them); only string args change.
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
        if record.exc_info and record.exc_text is None and record.exc_info[0] is not None:
            # tracebacks quote request values too: format once here, redacted
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(
    logger_names: Iterable[str] = ("uvicorn.access", "uvicorn.error"),
    *,
    root_handlers: bool = True,
) -> None:
    """Add :class:`RedactTokens` to the named loggers and (by default) to the root logger's
    handlers, once each, so records from any logger are redacted before they are written."""
    targets: list[logging.Filterer] = [logging.getLogger(n) for n in logger_names]
    if root_handlers:
        targets += logging.getLogger().handlers
    for target in targets:
        if not any(isinstance(f, RedactTokens) for f in target.filters):
            target.addFilter(RedactTokens())
