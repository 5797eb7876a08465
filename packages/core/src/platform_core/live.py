"""Live state: a plugin with state to show publishes it; the plugin with a store receives it.

The lake knows its catalog and its members; Elkyn can stream any value to browsers over SSE.
Packages depend only on the core, so they meet here: a *source* (``Plugin.live_source``) is
handed a :class:`LiveSink` and publishes values at top-level paths it reserves; the *sink*
(``Plugin.live_sink``) is offered by the one plugin that provides a store. The gateway only
wires them (``platform_gateway.plugins.run_live``): sources start after every lifespan has
started and stop before any stops; with no sink they are not started at all.

The sink may also be a :class:`ClusterState`: state the platform itself keeps and every
platform of a cluster shares (revoked tokens, login counters, the audit trail). Reads are
local (a replica's copy, seconds old at most); writes are atomic and cluster-wide (forwarded to
the primary on a replica), and the reserved subtrees can be *platform-only*: written by the
platform alone, never by a token over REST, an admin's included.

``escape_key`` turns any text into a key every JSON tree store accepts (Firebase's rules: no
``. # $ / [ ]`` or control characters), reversibly, so an id becomes a path segment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "ClusterState",
    "LiveSink",
    "LiveSinkFactory",
    "LiveSource",
    "escape_key",
    "unescape_key",
]


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


@runtime_checkable
class ClusterState(Protocol):
    """State the platform keeps for itself and shares across a cluster (see the module doc).

    Calls block (a local commit, or a round trip to the primary): call them off the loop.
    """

    def reserve_platform(self, key: str, rules: Mapping[str, Any]) -> None:
        """Like ``LiveSink.reserve``, and no token may write there over REST, not even an
        admin's: only the platform (in process, or a peer with the cluster token)."""
        ...

    def read(self, path: str) -> Any:
        """The JSON value at ``path`` in this platform's copy (``None`` if absent)."""
        ...

    def update(self, path: str, values: Mapping[str, Any]) -> Any:
        """Set each ``"rel/path": value`` below ``path`` in one atomic, cluster-wide write and
        return the stored values: ``{".sv": {"increment": n}}`` adds ``n`` atomically (so
        the answer is the count after this caller's increment); ``None`` deletes."""
        ...

    def push(self, path: str, value: Any) -> str:
        """Append ``value`` under a new chronological key below ``path``; returns the key."""
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
