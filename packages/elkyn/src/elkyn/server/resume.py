"""Signed SSE resume ids: ``Last-Event-ID`` is honoured only for the stream it was issued on.

A bare sequence number would let any caller replay the operation log from any point, so the
server sends ``<seq>.<mac>`` where the MAC (HMAC-SHA256 under a key derived from the platform
secret) covers the caller's identity, the streamed path and the sequence number. A resume id
is accepted only from the same identity (uid and claims, not the token's expiry) on the same
path; anything else gets a fresh snapshot.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from ..paths import Path
from ..store import Caller

__all__ = ["ResumeIds"]

_CONTEXT = b"elkyn sse resume id v1"
_TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")


def _identity(caller: Caller) -> str:
    """The caller as the rules see it, minus the token's timing (refreshed tokens still match)."""
    auth: Any = caller.auth
    if isinstance(auth, dict) and isinstance(auth.get("token"), dict):
        token = {k: v for k, v in auth["token"].items() if k not in _TIME_CLAIMS}
        auth = {**auth, "token": token}
    return json.dumps([caller.admin, auth], sort_keys=True, separators=(",", ":"), default=str)


_LINES: dict[tuple[bytes, int], bytes] = {}
"""Recent ``id:`` lines by (stream scope, seq): streams of the same caller and path (a
thousand anonymous readers of one feed) share one MAC per change instead of one each."""
_MAX_LINES = 4096


class ResumeIds:
    """Issues and checks the resume ids of one stream (one caller, one path, one database)."""

    def __init__(self, secret: bytes, database: str, caller: Caller, path: Path) -> None:
        key = hmac.new(secret, _CONTEXT, hashlib.sha256).digest()
        scope = json.dumps([database, _identity(caller), list(path)], separators=(",", ":"))
        self._base = hmac.new(key, scope.encode() + b"\0", hashlib.sha256)
        self.scope = hashlib.sha256(key + scope.encode()).digest()
        """Names what the MACs cover: streams with the same ``scope`` get the same ids."""

    def _mac(self, seq: int) -> str:
        h = self._base.copy()
        h.update(str(seq).encode())
        return base64.urlsafe_b64encode(h.digest()[:18]).decode()

    def issue(self, seq: int) -> str:
        return f"{seq}.{self._mac(seq)}"

    def line(self, seq: int) -> bytes:
        """The ``id:`` line of an SSE frame for a change with sequence number ``seq``."""
        cached = _LINES.get((self.scope, seq))
        if cached is None:
            if len(_LINES) >= _MAX_LINES:
                _LINES.clear()
            cached = _LINES[(self.scope, seq)] = f"id: {self.issue(seq)}\n".encode()
        return cached

    def check(self, resume_id: str) -> int | None:
        """The sequence number of a resume id issued for this stream, else ``None``."""
        seq_text, dot, mac = resume_id.strip().partition(".")
        if not dot or not seq_text.isdigit() or len(seq_text) > 19:
            return None
        seq = int(seq_text)
        return seq if hmac.compare_digest(mac, self._mac(seq)) else None
