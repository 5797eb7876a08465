"""Follow an Elkyn location over its SSE stream (Firebase's put/patch events) in a thread,
keeping the value as it stands, so a test can wait for a condition on what a browser sees."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx


def _apply(root: Any, path: str, data: Any, patch: bool) -> Any:
    keys = [k for k in path.split("/") if k]
    if not keys:
        if patch:
            base = dict(root) if isinstance(root, dict) else {}
            for k, v in data.items():
                base = _apply(base, k, v, False)
            return base
        return data
    base = dict(root) if isinstance(root, dict) else {}
    head, rest = keys[0], "/".join(keys[1:])
    child = _apply(base.get(head), rest, data, patch)
    if child is None:
        base.pop(head, None)
    else:
        base[head] = child
    return base or None


class LiveTree:
    """``with LiveTree(url, path, token) as t: t.wait_for(lambda v: ..., 10, "what")``."""

    def __init__(self, base_url: str, path: str, token: str) -> None:
        self.url = f"{base_url}/db/{path.strip('/')}.json"
        self.token = token
        self.value: Any = None
        self.events = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))

    def __enter__(self) -> LiveTree:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(5)

    def _follow(self) -> None:
        headers = {"accept": "text/event-stream", "authorization": f"Bearer {self.token}"}
        try:
            with self._client.stream("GET", self.url, headers=headers) as r:
                r.raise_for_status()
                event = ""
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event in ("put", "patch"):
                        body = json.loads(line[5:])
                        with self._cond:
                            self.value = _apply(
                                self.value, body["path"], body["data"], event == "patch"
                            )
                            self.events += 1
                            self._cond.notify_all()
        except (httpx.HTTPError, RuntimeError):
            if not self._stop.is_set():
                raise

    def wait_for(self, check: Callable[[Any], Any], timeout: float, what: str) -> Any:
        """Return ``check(value)`` once truthy; fail saying ``what`` and the value after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                try:
                    got = check(self.value)
                except (KeyError, TypeError, AttributeError):
                    got = None
                if got:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout} s waiting for {what}: {self.value!r}"
                    )
                self._cond.wait(left)
