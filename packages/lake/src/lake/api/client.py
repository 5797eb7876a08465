"""``lake.Client``: upload files in parallel checksummed parts, query, list and delete datasets.

It talks to any lake node or gateway (``url`` is the base, the client adds ``/api/lake``).
Parts are read with ``os.pread`` (no whole file in memory), sent by a thread pool, and
retried on connection errors and 5xx; ``upload(..., upload_id=...)`` resumes an interrupted
upload by asking which parts the node already has. Progress is reported through a callback
(the CLI draws it); the library never prints.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from platform_core import UnavailableError, errors
from platform_core.http import CONNECT_RETRIES, error_from_response, http_client
from platform_core.tls import connection_hint

from ..errors import QueryTimeoutError
from ..names import check_backup_name, check_dataset_name, check_query_id, check_upload_id

__all__ = ["Client"]

Progress = Callable[[int, int], None]


_KINDS = {QueryTimeoutError.kind: QueryTimeoutError}  # lake's own kind; the rest are core's


def _raise_for(response: httpx.Response) -> None:
    """Raise the error class of the node's answer (the kit's wire table), if it is an error."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_from_response(response.status_code, body, response.text, _KINDS)


class Client:
    """A client of one lake node (or of the gateway that embeds one)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """``verify`` checks an ``https://`` node's certificate (default:
        ``platform_core.tls.client_context()``, i.e. ``PLATFORM_TLS_CA`` or the system trust)."""
        self.base = url.rstrip("/") + "/api/lake"
        # retries: a node just started may not accept connections yet (nothing is resent)
        self.http = http_client(
            token=token, timeout=timeout, verify=verify, retries=CONNECT_RETRIES
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, self.base + path, **kw)
        except httpx.RemoteProtocolError as exc:
            hint = connection_hint(exc, self.base)
            if hint is not None:
                raise UnavailableError(f"cannot talk to the lake node: {hint}") from exc
            raise UnavailableError(
                f"the lake node at {self.base} cut the answer off ({exc}): a streamed result "
                "that passed its timeout or LAKE_MAX_STREAM_BYTES, or was cancelled"
            ) from exc
        except httpx.TransportError as exc:
            why = connection_hint(exc, self.base) or exc
            raise UnavailableError(f"cannot reach the lake node at {self.base}: {why}") from exc
        _raise_for(r)
        return r

    # --- datasets and queries ------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/datasets").json()  # type: ignore[no-any-return]

    def dataset(self, name: str, version: int | None = None) -> dict[str, Any]:
        params = {"version": version} if version else None
        # Checked here, not only by the node: pasted into the path, '../uploads' or 'a#b'
        # would name another route or another dataset.
        name = check_dataset_name(name)
        return self._call("GET", f"/datasets/{name}", params=params).json()  # type: ignore[no-any-return]

    def delete(self, name: str) -> dict[str, Any]:
        name = check_dataset_name(name)
        return self._call("DELETE", f"/datasets/{name}").json()  # type: ignore[no-any-return]

    def backup(
        self, target: str, *, all_versions: bool = False, timeout: float = 3600.0
    ) -> dict[str, Any]:
        """Ask the node (admin) to back itself up into ``LAKE_BACKUP_DIR/<target>``."""
        body = {"target": check_backup_name(target), "all_versions": all_versions}
        return self._call("POST", "/admin/backup", json=body, timeout=timeout).json()  # type: ignore[no-any-return]

    def query(
        self, sql: str, *, timeout: float | None = None, query_id: str | None = None
    ) -> dict[str, Any]:
        """A query's JSON result: ``columns``, ``rows``, ``row_count``, ``reads``."""
        body = {"sql": sql, "format": "json", "timeout": timeout, "query_id": query_id}
        return self._call("POST", "/query", json=body).json()  # type: ignore[no-any-return]

    def query_arrow(self, sql: str, *, timeout: float | None = None) -> pa.Table:
        """A query's result as an Arrow table (sent as an Arrow IPC stream)."""
        r = self._call("POST", "/query", json={"sql": sql, "format": "arrow", "timeout": timeout})
        return pa.ipc.open_stream(r.content).read_all()

    def query_csv(self, sql: str, *, timeout: float | None = None) -> str:
        """A query's result as CSV text (streamed by the node, so not capped like JSON)."""
        body = {"sql": sql, "format": "csv", "timeout": timeout}
        return self._call("POST", "/query", json=body).text

    def cancel(self, query_id: str) -> bool:
        query_id = check_query_id(query_id)
        return bool(self._call("DELETE", f"/query/{query_id}").json()["cancelled"])

    # --- uploads -------------------------------------------------------------------------

    def start_upload(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        format: str | None = None,
        overrides: Mapping[str, str] | None = None,
        part_size: int = 8 << 20,
        append: bool = False,
    ) -> dict[str, Any]:
        file = Path(path)
        body = {
            "name": name,
            "size": file.stat().st_size,
            "filename": file.name,
            "format": format,
            "part_size": part_size,
            "overrides": dict(overrides or {}),
            "append": append,
        }
        return self._call("POST", "/uploads", json=body).json()  # type: ignore[no-any-return]

    def uploads(self) -> list[dict[str, Any]]:
        """The caller's uploads on this node, oldest first (an admin's: everyone's)."""
        return self._call("GET", "/uploads").json()  # type: ignore[no-any-return]

    def upload_status(self, upload_id: str) -> dict[str, Any]:
        upload_id = check_upload_id(upload_id)
        return self._call("GET", f"/uploads/{upload_id}").json()  # type: ignore[no-any-return]

    def send_part(
        self, path: str | os.PathLike[str], info: Mapping[str, Any], n: int, *, retries: int = 3
    ) -> int:
        """Read part ``n`` of the file and PUT it with its SHA-256; retried on transient errors."""
        size, part = int(info["size"]), int(info["part_size"])
        length = min(part, size - n * part)
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, length, n * part)
        finally:
            os.close(fd)
        sha = hashlib.sha256(data).hexdigest()
        url = f"/uploads/{info['id']}/parts/{n}"
        for attempt in range(retries + 1):
            try:
                self._call("PUT", url, content=data, headers={"x-content-sha256": sha})
                return length
            except (UnavailableError, errors.BadInputError) as exc:
                retriable = isinstance(exc, UnavailableError) or "SHA-256" in exc.message
                if not retriable or attempt == retries:
                    raise
                time.sleep(0.2 * (attempt + 1))
        return length

    def upload(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        format: str | None = None,
        overrides: Mapping[str, str] | None = None,
        part_size: int = 8 << 20,
        parallel: int = 4,
        append: bool = False,
        upload_id: str | None = None,
        wait: bool = True,
        timeout: float = 3600.0,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Upload a CSV, JSONL or Parquet file as dataset ``name``; resume with ``upload_id``.

        Returns the upload's final status (``state`` is ``committed`` with ``version`` and
        ``rows``) when ``wait``; raises the node's error if the conversion failed.
        """
        if upload_id is None:
            info = self.start_upload(
                path, name, format=format, overrides=overrides, part_size=part_size, append=append
            )
        else:
            info = self.upload_status(upload_id)
        total = int(info["size"])
        have = set(info["received"])
        todo = [n for n in range(int(info["parts"])) if n not in have]
        done = total - sum(
            min(int(info["part_size"]), total - n * int(info["part_size"])) for n in todo
        )
        if progress:
            progress(done, total)
        pool = ThreadPoolExecutor(max_workers=max(1, parallel))
        try:
            for sent in pool.map(lambda n: self.send_part(path, info, n), todo):
                done += sent
                if progress:
                    progress(done, total)
        finally:
            # On Ctrl-C or an error, parts not yet started are dropped, not sent first.
            pool.shutdown(wait=True, cancel_futures=True)
        status = self._call("POST", f"/uploads/{info['id']}/complete").json()
        if not wait:
            return status  # type: ignore[no-any-return]
        return self.wait_upload(info["id"], timeout=timeout)

    def wait_upload(self, upload_id: str, *, timeout: float = 3600.0) -> dict[str, Any]:
        """Poll an upload until it is committed (returned) or failed (raised)."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            status = self.upload_status(upload_id)
            if status["state"] == "committed":
                return status
            if status["state"] in ("failed", "aborted"):
                raise errors.BadInputError(
                    f"upload {upload_id} {status['state']}: {status['error']}"
                )
            if time.monotonic() > deadline:
                raise UnavailableError(f"upload {upload_id} not committed within {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
