"""A session on a running platform: ``elytra.connect("http://host:8080", token=...)``.

Pipelines are built and checked here against the datasets' schemas (fetched once), then sent
as their JSON form to the platform's ``/api/jobs``; the platform runs them on its pool, stores
the result on its disk, and it comes back as an Arrow stream read batch by batch
(``RemoteJob.batches``), never all at once unless asked (``result()``). Python functions never travel to a platform: a pipeline
holding one, or local files, or an Arrow table, has no JSON form and is refused with a clear
error — except ``read_csv``/``read_parquet``/``read_json``, which first upload the file as a
temporary dataset (deleted when the session closes).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pyarrow as pa

from platform_core import PlatformError, Schema, new_id
from platform_core.http import CONNECT_RETRIES, error_from_response, http_client
from platform_core.schema import Field
from platform_core.tls import connection_hint

from .errors import (
    BackendUnavailableError,
    ElytraError,
    JobTimeoutError,
    PipelineError,
    ResultGoneError,
)
from .jobs import FINAL
from .sources import LakeSource

__all__ = ["RemoteDriver", "RemoteJob", "Specified", "remote_dataset"]


class Specified(Protocol):
    """What the remote driver needs of a pipeline (``elytra.Pipeline``, which refers to this
    module's ``RemoteJob``): its JSON form, which the platform runs."""

    def to_spec(self) -> dict[str, Any]: ...


class _StreamFile:
    """A read-only file over an HTTP body's chunks, for ``pa.ipc.open_stream``."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buf = bytearray()
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buf += chunk
        size = len(self.buf) if n < 0 else min(n, len(self.buf))
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


# Elytra's classes for the kinds it has its own for; every other kind is core's class.
_KINDS: dict[str, type[PlatformError]] = {
    PipelineError.kind: PipelineError,
    JobTimeoutError.kind: JobTimeoutError,
    ResultGoneError.kind: ResultGoneError,
    BackendUnavailableError.kind: BackendUnavailableError,
}


def _raise(r: httpx.Response) -> None:
    """Raise the error of the platform's answer (the kit's wire table), if it is one."""
    if r.status_code < 400:
        return
    try:
        body = r.json()
    except ValueError:
        body = None
    raise error_from_response(r.status_code, body, r.text, _KINDS)


class RemoteJob:
    """A job on the platform: the same handle as a local ``Job``."""

    def __init__(self, driver: RemoteDriver, record: dict[str, Any]) -> None:
        self.driver = driver
        self.id: str = record["id"]
        self.record = record

    @property
    def state(self) -> str:
        return str(self.record["state"])

    def status(self) -> dict[str, Any]:
        self.record = self.driver.call("GET", f"/api/jobs/{self.id}").json()
        return dict(self.record)

    def done(self) -> bool:
        return self.status()["state"] in FINAL

    def wait(self, timeout: float | None = None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done():
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return self.state

    def cancel(self) -> None:
        self.record = self.driver.call("POST", f"/api/jobs/{self.id}/cancel").json()

    def _finished(self, timeout: float | None) -> None:
        if self.wait(timeout) not in FINAL:
            raise ElytraError(f"job {self.id} is still {self.state} after {timeout} s")

    def batches(
        self, offset: int = 0, limit: int | None = None, timeout: float | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The stored result's rows ``offset`` .. ``offset + limit`` (all by default) as
        Arrow batches, streamed: a result of any size is read one batch at a time."""
        self._finished(timeout)
        params: dict[str, Any] = {"format": "arrow", "offset": offset}
        if limit is not None:
            params["limit"] = limit
        path = f"/api/jobs/{self.id}/result"
        try:
            with self.driver.http.stream("GET", path, params=params) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise(r)
                yield from pa.ipc.open_stream(_StreamFile(r.iter_bytes(1 << 20)))
        except httpx.HTTPError as exc:
            why = connection_hint(exc, self.driver.url) or exc
            raise BackendUnavailableError(
                f"the platform at {self.driver.url} cannot be reached: {why}"
            ) from None

    def page(self, offset: int = 0, limit: int = 10_000) -> dict[str, Any]:
        """One JSON page of the result: ``rows``, ``total_rows``, ``next_offset`` (None on
        the last page)."""
        params = {"offset": offset, "limit": limit}
        return dict(self.driver.call("GET", f"/api/jobs/{self.id}/result", params=params).json())

    def result(self, timeout: float | None = None) -> pa.Table:
        """The whole result as one table (in this process's memory: see ``batches``)."""
        self._finished(timeout)
        r = self.driver.call("GET", f"/api/jobs/{self.id}/result", params={"format": "arrow"})
        return pa.ipc.open_stream(io.BytesIO(r.content)).read_all()

    def delete_result(self) -> None:
        """Remove the stored result from the platform (it also expires on its own)."""
        self.driver.call("DELETE", f"/api/jobs/{self.id}/result")


class RemoteDriver:
    """Runs a session's actions on a platform over HTTP."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        # PLATFORM_TLS_CA, else the system trust; retries: the platform may be starting
        self.http = http_client(
            base_url=self.url, token=token, timeout=timeout, retries=CONNECT_RETRIES
        )
        self.temporary: list[str] = []
        self.last: Any = None

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            why = connection_hint(exc, self.url) or exc
            raise BackendUnavailableError(
                f"the platform at {self.url} cannot be reached: {why}"
            ) from None
        _raise(r)
        return r

    def submit(
        self, p: Specified, *, timeout: float | None = None, write: str | None = None, **_: Any
    ) -> RemoteJob:
        body: dict[str, Any] = {"pipeline": p.to_spec()}
        if timeout is not None:
            body["timeout"] = timeout
        if write is not None:
            body["write"] = write
        return RemoteJob(self, self.call("POST", "/api/jobs", json=body).json())

    def write_dataset(self, p: Specified, name: str, **_: Any) -> dict[str, Any]:
        job = self.submit(p, write=name)
        if job.wait() != "succeeded":
            error = job.record.get("error") or {}
            raise ElytraError(f"job {job.id} {job.state}: {error.get('message', '')}")
        return dict(job.record["result"])

    def collect(self, p: Specified) -> pa.Table:
        job = self.submit(p)
        if job.wait() != "succeeded":
            error = job.record.get("error") or {}
            raise ElytraError(f"job {job.id} {job.state}: {error.get('message', '')}")
        return job.result()

    def explain(self, p: Specified) -> str:
        import json

        return f"runs on the platform at {self.url} as:\n{json.dumps(p.to_spec(), indent=2)}"

    def write_file(self, p: Specified, path: str, format: str | None) -> dict[str, Any]:
        from .outfile import write_table

        return write_table(self.collect(p), path, format)

    def close(self) -> None:
        for name in self.temporary:
            with contextlib.suppress(PlatformError):
                self.call("DELETE", f"/api/lake/datasets/{name}")
        self.temporary.clear()
        self.http.close()


def remote_dataset(driver: RemoteDriver, name: str, version: int | None) -> LakeSource:
    """A dataset of the platform as a source (its schema only: the platform reads the chunks)."""
    params = {"version": version} if version is not None else None
    r = driver.http.get(f"/api/lake/datasets/{name}", params=params)
    if r.status_code == 404:
        from platform_core._suggest import did_you_mean

        names = [d["name"] for d in driver.call("GET", "/api/lake/datasets").json()]
        raise PipelineError(
            f"no dataset {name!r}"
            + (f" version {version}" if version is not None else "")
            + (did_you_mean(name, names) or f"; datasets: {', '.join(names) or 'none yet'}")
        )
    _raise(r)
    info = r.json()
    schema = Schema([Field(c["name"], c["type"], c["nullable"]) for c in info["columns"]])
    return LakeSource(
        f"dataset:{name}:{new_id()}",
        schema.to_arrow(),
        dataset=name,
        version=int(info["version"]),
        origin=str(info.get("origin", "")),
        row_count=int(info["rows"]) if isinstance(info.get("rows"), int) else None,
    )


def upload_temporary(driver: RemoteDriver, token: str, path: str | os.PathLike[str]) -> str:
    """Upload a local file as a temporary dataset of the platform; its name."""
    from lake import Client

    file = Path(path)
    if not file.is_file():
        raise PipelineError(f"no file {str(path)!r} to upload (globs: upload each file first)")
    name = f"elytra_tmp_{new_id().lower()}"
    with Client(driver.url, token) as client:
        client.upload(file, name)
    driver.temporary.append(name)
    return name
