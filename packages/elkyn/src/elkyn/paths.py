"""Paths and keys: Firebase's rules for legal keys, depth and the wire form ``/a/b/c``.

A key is 1-768 UTF-8 bytes without ``. $ # [ ] /`` or ASCII control characters; a path has at
most 32 keys. Paths are held as tuples of keys; ``()`` is the root.
"""

from __future__ import annotations

import re

from .errors import InvalidDataError

__all__ = [
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "Path",
    "check_key",
    "is_prefix",
    "join",
    "parse_path",
    "path_str",
]

Path = tuple[str, ...]

MAX_DEPTH = 32
MAX_KEY_BYTES = 768
_BAD_CHARS = re.compile(r"[.$#\[\]/\x00-\x1f\x7f]")


def check_key(key: str, where: str = "") -> str:
    """Return ``key`` if it is a legal Firebase key, else raise ``InvalidDataError``."""
    if not isinstance(key, str):
        raise InvalidDataError(f"Invalid key {key!r}{where}: keys must be strings")
    if not key:
        raise InvalidDataError(f"Invalid key ''{where}: keys must be non-empty strings")
    bad = _BAD_CHARS.search(key)
    if bad is not None:
        raise InvalidDataError(
            f"Invalid key {key[:80]!r}{where}: keys can't contain '.', '#', '$', '/', '[', ']' "
            f"or control characters (found {bad.group()!r})"
        )
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidDataError(
            f"Invalid key {key[:40]!r}...{where}: key is longer than {MAX_KEY_BYTES} bytes"
        )
    return key


def parse_path(text: str) -> Path:
    """Split ``/a/b`` (leading, trailing and doubled slashes ignored) and check every key."""
    keys = tuple(k for k in text.split("/") if k)
    if len(keys) > MAX_DEPTH:
        raise InvalidDataError(
            f"Invalid path {text[:120]!r}: it is {len(keys)} levels deep; the limit is {MAX_DEPTH}"
        )
    for key in keys:
        check_key(key, f" in path {text[:120]!r}")
    return keys


def path_str(path: Path) -> str:
    """The wire form: ``/`` for the root, ``/a/b`` otherwise."""
    return "/" + "/".join(path)


def join(base: Path, rel: Path) -> Path:
    """``base`` followed by ``rel``, checking the depth limit."""
    out = base + rel
    if len(out) > MAX_DEPTH:
        raise InvalidDataError(
            f"Invalid path {path_str(out)[:120]!r}: it is {len(out)} levels deep; "
            f"the limit is {MAX_DEPTH}"
        )
    return out


def is_prefix(prefix: Path, path: Path) -> bool:
    """Whether ``prefix`` is ``path`` or one of its ancestors."""
    return len(prefix) <= len(path) and path[: len(prefix)] == prefix
