"""Errors on the wire, both ways: a ``PlatformError`` to its status and JSON body, and an
error response (status + body) back to the error class of its ``type``.

One table for every server and client: the status of a kind is the status of core's class
of that kind (``bad_input`` 400, ``unauthorized`` 401, ...); request validation errors are
``bad_input`` 400 like any other bad input. A client passes its package's classes for its
own kinds (lake's ``timeout``) or finer classes for core kinds (elytra's ``PipelineError``
for ``bad_input``); a package's wire quirks (Elkyn's Firebase statuses) stay in that
package's HTTP layer. Needs no web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from http import HTTPStatus
from typing import Any

from ..errors import BadInputError, PlatformError
from ..plugin import PluginError

__all__ = [
    "check_error_answer",
    "error_body",
    "error_class",
    "error_from_response",
    "kind_of_status",
    "status_of_kind",
]


def _core_classes() -> list[type[PlatformError]]:
    """Core's error classes, breadth first from the root (the most general first)."""
    found: list[type[PlatformError]] = []
    pending: list[type[PlatformError]] = [PlatformError]
    while pending:
        cls = pending.pop(0)
        if cls.__module__ in (PlatformError.__module__, PluginError.__module__):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


_CLASS_OF_KIND: dict[str, type[PlatformError]] = {}
_KIND_OF_STATUS: dict[int, str] = {}
for _cls in _core_classes():
    _CLASS_OF_KIND.setdefault(_cls.kind, _cls)
    _KIND_OF_STATUS.setdefault(_cls.status, _cls.kind)  # 500 is internal, 400 bad_input


def error_class(kind: str) -> type[PlatformError] | None:
    """Core's class of ``kind`` (``None`` for a kind core does not have)."""
    return _CLASS_OF_KIND.get(kind)


def status_of_kind(kind: str) -> int:
    """The HTTP status of core's ``kind`` (500 for a kind core does not have)."""
    cls = _CLASS_OF_KIND.get(kind)
    return cls.status if cls is not None else 500


def kind_of_status(status: int) -> str:
    """The ``type`` word for a bare HTTP status: core's kind of that status, else its phrase
    (``method_not_allowed``), so a 405 from routing has a ``type`` like every other error."""
    if status in _KIND_OF_STATUS:
        return _KIND_OF_STATUS[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def _jsonable(value: Any) -> Any:
    """Details may hold paths, dates, sets: the JSON form of each (``str`` when in doubt)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (date, time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


def error_body(exc: PlatformError) -> dict[str, Any]:
    """``{"error": message, "type": kind[, "details": {...}]}`` (``exc.to_dict()``), JSON-ready."""
    body: dict[str, Any] = _jsonable(exc.to_dict())
    return body


def _class_for(
    status: int, kind: str, kinds: Mapping[str, type[PlatformError]]
) -> type[PlatformError]:
    cls = kinds.get(kind) or _CLASS_OF_KIND.get(kind)
    if cls is not None:
        return cls
    # No (known) type: a proxy's answer, or an older server. Core's class of the status.
    return _CLASS_OF_KIND.get(_KIND_OF_STATUS.get(status, ""), PlatformError)


def error_from_response(
    status: int,
    body: Any,
    text: str = "",
    kinds: Mapping[str, type[PlatformError]] | None = None,
) -> PlatformError:
    """The error an answer of ``status`` with JSON ``body`` stands for (not raised).

    ``body`` is the decoded JSON (or ``None`` when the answer was not JSON; then ``text`` is
    the message). The class comes from ``type`` (``kinds`` first, then core's), else from
    the status; the message and details are the server's, unchanged, and ``http_status``
    says what the server answered.
    """
    if isinstance(body, Mapping):
        message = str(body.get("error") or text or HTTPStatus(status).phrase)
        kind = str(body.get("type") or "")
        raw = body.get("details")
        details = dict(raw) if isinstance(raw, Mapping) else {}
    else:
        message, kind, details = (text.strip() or _phrase(status)), "", {}
    cls = _class_for(status, kind, kinds or {})
    try:
        exc = cls(message, **{str(k): v for k, v in details.items()})
    except TypeError:  # a class whose constructor takes other keywords
        exc = cls(message)
        exc.details = details
    exc.http_status = status  # type: ignore[attr-defined]
    return exc


def _phrase(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def check_error_answer(status: int, body: Any) -> str:
    """The ``type`` of an error answer that keeps the contract, else ``BadInputError``.

    The contract every server keeps: a JSON object of ``error`` (a non-empty message),
    ``type`` and optional ``details``, nothing else; for a core kind, the kind's one status.
    A bare status without a core kind (405) has the status phrase as its ``type``.
    """
    if not isinstance(body, Mapping):
        raise BadInputError(f"an error answer must be a JSON object, got {body!r}")
    extra = set(body) - {"error", "type", "details"}
    if extra:
        raise BadInputError(f"an error answer has unexpected keys {sorted(extra)}: {body!r}")
    if not isinstance(body.get("error"), str) or not body["error"]:
        raise BadInputError(f"an error answer needs a message in 'error': {body!r}")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadInputError(f"an error answer needs its kind in 'type': {body!r}")
    expected = _CLASS_OF_KIND[kind].status if kind in _CLASS_OF_KIND else None
    if expected is None and kind != kind_of_status(status):
        raise BadInputError(f"status {status} with type {kind!r}, which is not a core kind")
    if expected is not None and expected != status:
        raise BadInputError(f"type {kind!r} is status {expected} on every server, not {status}")
    return kind
