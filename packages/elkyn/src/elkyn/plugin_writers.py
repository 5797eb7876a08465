"""Writes for the other plugins in the gateway's process: local on a primary, forwarded on a
replica (the service ``elkyn.services.DB_WRITER`` the gateway plugin provides).

A replica's store is kept in step with the primary by its follower; a write into it would fork
it (and is refused, ``ReplicaWriteError``). Plugins that record state (elytra's job records)
write through a :class:`DatabaseWriter` instead: on a primary it writes into the store as the
admin; on a replica it sends the write to the primary's REST API with a cluster token (admin
there), then waits, bounded, until the follower applied it (read-your-writes). Reads stay on
the store (``elkyn.services.DB_STORE``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import quote

from .errors import (
    ElkynError,
    InvalidDataError,
    PermissionDeniedError,
    PrimaryUnavailableError,
)
from .paths import parse_path, path_str
from .settings import ElkynSettings
from .store import ADMIN, Store

if TYPE_CHECKING:
    import httpx

    from .replica import Follower

__all__ = ["DatabaseWriter", "ElectedWriter", "ForwardingWriter", "LocalWriter"]


@runtime_checkable
class DatabaseWriter(Protocol):
    """What a plugin writes through: the admin's set, update, push and delete; and ``get``,
    a read at the primary, for a decision a replica's own copy (which may lag) must not make."""

    role: str
    """``"primary"`` (writes land here) or ``"replica"`` (writes go to the primary)."""

    def set(self, path: str, value: Any) -> Any: ...

    def update(self, path: str, values: Mapping[str, Any]) -> Any: ...

    def push(self, path: str, value: Any) -> str: ...

    def delete(self, path: str) -> None: ...

    def get(self, path: str) -> Any: ...


class LocalWriter:
    """A primary's writer: straight into its store, as the admin."""

    role = "primary"

    def __init__(self, store: Store) -> None:
        self.store = store

    def set(self, path: str, value: Any) -> Any:
        return self.store.set(path, value, caller=ADMIN)

    def update(self, path: str, values: Mapping[str, Any]) -> Any:
        return self.store.update(path, values, caller=ADMIN)

    def push(self, path: str, value: Any) -> str:
        return self.store.push(path, value, caller=ADMIN)

    def delete(self, path: str) -> None:
        self.store.delete(path, caller=ADMIN)

    def get(self, path: str) -> Any:
        return self.store.get(path, caller=ADMIN)


_STATUS_ERRORS: dict[int, type[ElkynError]] = {
    400: InvalidDataError,
    401: PermissionDeniedError,
    403: PermissionDeniedError,
    503: PrimaryUnavailableError,
}


class ForwardingWriter:
    """A replica's writer: each write is a REST call to the primary with a cluster token."""

    role = "replica"

    def __init__(
        self, follower: Follower, token_fn: Callable[[], str], settings: ElkynSettings
    ) -> None:
        self.follower = follower
        self.token_fn = token_fn
        self.settings = settings
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def set(self, path: str, value: Any) -> Any:
        return self._send("PUT", path, value)

    def update(self, path: str, values: Mapping[str, Any]) -> Any:
        return self._send("PATCH", path, dict(values))

    def push(self, path: str, value: Any) -> str:
        return str(self._send("POST", path, value)["name"])

    def delete(self, path: str) -> None:
        self._send("DELETE", path, None)

    def get(self, path: str) -> Any:
        """The value at ``path`` on the primary (this replica's copy may lag behind it)."""
        return self._send("GET", path, None)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _client_for(self) -> httpx.Client:
        from platform_core.http import http_client

        with self._lock:
            if self._client is None:
                s = self.settings
                # no retries: a primary that is gone must fail the write at once (503)
                self._client = http_client(
                    s,
                    timeout=s.forward_timeout,
                    connect=s.forward_connect_timeout,
                    pool=s.forward_connect_timeout,
                    verify=self.follower.context,
                )
            return self._client

    def _send(self, method: str, path: str, value: Any) -> Any:
        import httpx

        from .catchup import wait_caught_up_sync
        from .forward import SEQ, primary_unavailable

        primary = self.follower.primary
        url = primary + quote(path_str(parse_path(path)), safe="/") + ".json"
        body = (
            None if method in ("DELETE", "GET") else json.dumps(value, ensure_ascii=False).encode()
        )
        if body is not None and len(body) > self.settings.max_write_bytes:
            raise InvalidDataError(
                f"Invalid data; the write ({len(body)} bytes) is larger than the write size "
                f"limit of {self.settings.max_write_bytes} bytes"
            )
        headers = {"Authorization": f"Bearer {self.token_fn()}"}
        limit = self.settings.forward_max_answer_bytes
        try:
            with self._client_for().stream(method, url, headers=headers, content=body) as resp:
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        raise PrimaryUnavailableError(
                            f"the primary {primary} answered more than {limit} bytes to a "
                            f"{method} of {path} (status {resp.status_code})",
                        )
                status, seq = resp.status_code, resp.headers.get("x-elkyn-seq", "")
                database = resp.headers.get("x-elkyn-database", "")
        except httpx.HTTPError as exc:
            raise primary_unavailable(primary, exc, self.settings.forward_timeout) from None
        answer = _json_or_text(b"".join(chunks))
        if not 200 <= status < 300:
            message = answer.get("error") if isinstance(answer, dict) else None
            error = _STATUS_ERRORS.get(status, ElkynError)
            raise error(
                f"the primary {primary} refused the {method} of {path} ({status}): "
                f"{message or str(answer)[:200]}"
            )
        if SEQ.fullmatch(seq) and database:
            wait_caught_up_sync(
                self.follower.store, database, int(seq), self.settings.catch_up_seconds
            )
        return answer


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")


class ElectedWriter:
    """The writer of a platform in an election cluster: into its store while it is the
    unfenced primary, else forwarded to the primary it follows in the current term; during
    an election (no primary yet) set, update, delete and get are retried for ``RETRY_SECONDS``
    (they are idempotent; a push is not, so it fails at once with the 503)."""

    RETRY_SECONDS = 10.0

    def __init__(self, app: Any, store: Store, settings: ElkynSettings) -> None:
        self.app, self.store, self.settings = app, store, settings
        self.local = LocalWriter(store)
        self._forwarding: ForwardingWriter | None = None

    @property
    def role(self) -> str:
        fence = self.app.fence
        return "primary" if fence is not None and fence.serving() else "replica"

    def set(self, path: str, value: Any) -> Any:
        return self._retried(lambda w: w.set(path, value))

    def update(self, path: str, values: Mapping[str, Any]) -> Any:
        return self._retried(lambda w: w.update(path, values))

    def push(self, path: str, value: Any) -> str:
        return str(self._writer().push(path, value))

    def delete(self, path: str) -> None:
        self._retried(lambda w: w.delete(path))

    def get(self, path: str) -> Any:
        return self._retried(lambda w: w.get(path))

    def close(self) -> None:
        if self._forwarding is not None:
            self._forwarding.close()

    def _retried(self, write: Callable[[Any], Any]) -> Any:
        import time

        deadline = time.monotonic() + self.RETRY_SECONDS
        while True:
            try:
                return write(self._writer())
            except PrimaryUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def _writer(self) -> LocalWriter | ForwardingWriter:
        """The writer of this moment's role (a new forwarding one per followed primary)."""
        fence, follower = self.app.fence, self.app.follower
        if fence is not None and fence.serving() and follower is None:
            return self.local
        if follower is None or follower.stop.is_set():
            raise PrimaryUnavailableError(
                "no primary is elected at the moment (an election is under way); retry"
            )
        if self._forwarding is None or self._forwarding.follower is not follower:
            if self._forwarding is not None:
                self._forwarding.close()
            self._forwarding = ForwardingWriter(follower, follower.token_fn, self.settings)
        return self._forwarding
