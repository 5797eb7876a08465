"""Firebase-style push ids: 8 characters of milliseconds + 12 random, sorting by creation time.

Ids made in the same millisecond by one generator increment the random part, so they still sort
in creation order. The alphabet ``-0-9A-Z_a-z`` is in ASCII order, so ids compare as strings.
"""

from __future__ import annotations

import secrets
import threading

__all__ = ["PUSH_CHARS", "PushIds"]

PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


class PushIds:
    """A generator of strictly increasing push ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand: list[int] = []

    def next(self, now_ms: int) -> str:
        with self._lock:
            if now_ms <= self._last_ms:
                now_ms = self._last_ms
                rand = self._last_rand[:]
                i = 11
                while i >= 0 and rand[i] == 63:
                    rand[i] = 0
                    i -= 1
                if i < 0:  # 64^12 ids in one millisecond: borrow the next millisecond
                    now_ms += 1
                    rand = [secrets.randbelow(64) for _ in range(12)]
                else:
                    rand[i] += 1
            else:
                rand = [secrets.randbelow(64) for _ in range(12)]
            self._last_ms, self._last_rand = now_ms, rand
        ts = []
        n = now_ms
        for _ in range(8):
            n, r = divmod(n, 64)
            ts.append(PUSH_CHARS[r])
        return "".join(reversed(ts)) + "".join(PUSH_CHARS[r] for r in rand)
