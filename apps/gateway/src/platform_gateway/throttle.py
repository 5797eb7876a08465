"""Failed-login throttle: after a few failures in a window, a key is refused until they age out.

Login counts failures per user name and per client address; while either has reached its
limit, the login is refused with 429 and ``Retry-After`` *before* the password is checked,
so guessing stops paying off. Memory is bounded: at most ``max_keys`` keys are tracked, the
stalest dropped first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["FailureThrottle"]


class FailureThrottle:
    """At most ``limit`` failures per key within ``window`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 if it may now."""
        times = self._recent(key)
        if times is None or len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[0] + self.window - self._clock()))

    def failed(self, key: str) -> None:
        """Record a failure of ``key``."""
        times = self._recent(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(self._clock())
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        """Clear ``key``'s failures (after a successful login)."""
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float] | None:
        """``key``'s failures within the window (older ones dropped), or None."""
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = self._clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
