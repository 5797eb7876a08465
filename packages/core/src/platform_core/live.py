"""Live state: a plugin with state to show publishes it; the plugin with a store receives it.

The lake knows its catalog and its members; Elkyn can stream any value to browsers over SSE.
Packages depend only on the core, so they meet here: a *source* (``Plugin.live_source``) is
handed a :class:`LiveSink` and publishes values at top-level paths it reserves; the *sink*
(``Plugin.live_sink``) is offered by the one plugin that provides a store. The gateway only
wires them (``platform_gateway.plugins.run_live``): sources start after every lifespan has
started and stop before any stops; with no sink they are not started at all.

``escape_key`` turns any text into a key every JSON tree store accepts (Firebase's rules: no
``. # $ / [ ]`` or control characters), reversibly, so an id becomes a path segment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

__all__ = ["LiveSink", "LiveSinkFactory", "LiveSource", "escape_key", "unescape_key"]


@runtime_checkable
class LiveSink(Protocol):
    """Where live state goes: a store of JSON values at ``/``-separated paths.

    Calls may block briefly (a local write); sources call them from a worker thread.
    """

    def reserve(self, key: str, rules: Mapping[str, Any]) -> None:
        """Own the top-level subtree ``key``: ``rules`` (the store's rule language) decide who
        reads it, and no user's rules can loosen them. Call before publishing under it."""
        ...

    def publish(self, path: str, value: Any) -> None:
        """Replace the JSON value at ``path`` (under a reserved key); ``None`` deletes it."""
        ...

    def publish_many(self, values: Mapping[str, Any]) -> None:
        """Several :meth:`publish` calls in one write (one event per changed path)."""
        ...


LiveSinkFactory = Callable[[], "LiveSink | None"]
"""``Plugin.live_sink``: the sink, once the plugin's lifespan has opened its store (else None)."""
LiveSource = Callable[[LiveSink], AbstractAsyncContextManager[None]]
"""``Plugin.live_source``: publishes while the context is open (entered after every lifespan)."""

_UNSAFE = re.compile(r"[.#$/\[\]%\x00-\x1f\x7f]")
_ESCAPED = re.compile(r"%([0-9A-F]{2})")


def escape_key(text: str) -> str:
    """``text`` as a store key: ``. # $ / [ ] %`` and control characters become ``%XX``."""
    if not text:
        raise ValueError("an empty text cannot be a key")
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def unescape_key(key: str) -> str:
    """The inverse of :func:`escape_key`."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), key)
