"""Sessions: where pipelines start (``connect()``) and where their tasks run.

``connect()`` is embedded: this process drives, tasks run on the configured backend, and
lake datasets are read from the lake node on ``PLATFORM_HOME``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from emsqrt.planning import decoded
from lake import Catalog, lake_settings, open_catalog
from lake.errors import DatasetNotFoundError
from platform_core import BadInputError, find_running, load_settings, new_id
from platform_core._suggest import did_you_mean

from .backends import Backend, InlineBackend
from .driver import Driver, Ingest
from .errors import PipelineError, SQLPlanError
from .jobs import JobRecorder
from .pipeline import Pipeline
from .remote import RemoteDriver, remote_dataset, upload_temporary
from .settings import ElytraSettings
from .sources import ArrowSource, FileSource, LakeSource, Source

if TYPE_CHECKING:
    from .nativequery import NativeQuery

__all__ = ["Session", "connect", "make_backend"]


class Session:
    """Pipelines' entry point; close it (or use ``with``) to stop its workers."""

    def __init__(
        self,
        settings: ElytraSettings,
        backend: Backend | None = None,
        recorder: JobRecorder | None = None,
        catalog: Catalog | None = None,
        fetch: Callable[[str, str], bytes] | None = None,
        ingest: Ingest | None = None,
        remote: RemoteDriver | None = None,
        token: str | None = None,
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        """Where submitted jobs are recorded: the platform's Elkyn ``/jobs``, or, for a session
        from ``connect()`` with no platform, the home's (``HomeRecorder``); or None."""
        self._catalog = catalog
        """The lake catalog (the gateway's node's, or one opened on ``home`` when asked)."""
        self.fetch = fetch
        """``fetch(sha, origin)``: a chunk's checked bytes from a replica (in a cluster)."""
        given = backend
        self.remote = remote
        self._token = token
        self.driver: Driver | RemoteDriver = remote or Driver(
            settings,
            lambda: given or make_backend(settings),
            owns=given is None,
            fetch=fetch,
            ingest=ingest or self._ingest_here,
        )

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.driver.close()

    def _ingest_here(self, path: Path, name: str, owner: str | None, admin: bool) -> int:
        """Embedded, with no platform on this home: a lake node opened for the commit only.
        The local user owns the home, so writes as its owner (and admin), named as the CLIs
        name this machine's user on a platform (``admin``): one person, one identity."""
        from lake import LakeNode
        from platform_core.cli.credentials import CLI_SUBJECT

        node = LakeNode(lake_settings(self.settings))
        try:
            info = node.ingest(path, name, owner=owner or CLI_SUBJECT, admin=True)
        finally:
            node.stop()
        assert info.version is not None
        return info.version

    # --- sources ----------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = open_catalog(lake_settings(self.settings))
        return self._catalog

    def _start(self, source: Source) -> Pipeline:
        spec = None
        if isinstance(source, LakeSource):
            spec = {"source": {"dataset": source.dataset, "version": source.version}, "steps": []}
        return Pipeline(self, source.leaf(), {source.name: source}, spec)

    def dataset(self, name: str, version: int | None = None) -> Pipeline:
        """A lake dataset (its head version, or ``version``)."""
        if self.remote is not None:
            return self._start(remote_dataset(self.remote, name, version))
        try:
            manifest = self.catalog.get(name, version)
        except DatasetNotFoundError:
            names = self.catalog.names()
            raise PipelineError(
                f"no dataset {name!r}"
                + (f" version {version}" if version is not None else "")
                + (did_you_mean(name, names) or f"; datasets: {', '.join(names) or 'none yet'}")
            ) from None
        if manifest.schema is None:
            raise PipelineError(f"dataset {name!r} has no schema (it is empty)")
        chunks = []
        for ref in manifest.chunks:
            path = self.catalog.chunks.path(ref.sha256)
            if path.is_file():
                chunks.append((ref.sha256, str(path), ref.bytes))
            elif self.fetch is not None:
                chunks.append((ref.sha256, "", ref.bytes))  # fetched from a replica per job
            else:
                raise PipelineError(
                    f"chunk {ref.sha256[:12]} of {name!r} is not on this node; run the pipeline "
                    "on the platform (its /api/jobs), which reads it from a replica"
                )
        return self._start(
            LakeSource(
                f"dataset:{name}:{new_id()}",
                manifest.schema.to_arrow(),
                dataset=name,
                version=manifest.version,
                chunks=tuple(chunks),
                origin=manifest.origin,
                row_count=manifest.rows,
                int_ranges=tuple(_int_ranges(ref.stats) for ref in manifest.chunks),
            )
        )

    def _upload(self, path: str | os.PathLike[str]) -> Pipeline:
        assert self.remote is not None
        assert self._token is not None
        return self.dataset(upload_temporary(self.remote, self._token, path))

    def read_csv(self, path: str | os.PathLike[str]) -> Pipeline:
        """CSV files (a path or a glob), read as DuckDB's ``read_csv`` would. Connected to a
        platform, the (one) file is uploaded first as a temporary dataset."""
        if self.remote is not None:
            return self._upload(path)
        return self._start(FileSource.open(path, "csv"))

    def read_parquet(self, path: str | os.PathLike[str]) -> Pipeline:
        if self.remote is not None:
            return self._upload(path)
        return self._start(FileSource.open(path, "parquet"))

    def read_json(self, path: str | os.PathLike[str]) -> Pipeline:
        """JSON-lines files (one object per line)."""
        if self.remote is not None:
            return self._upload(path)
        return self._start(FileSource.open(path, "jsonl"))

    def sql(self, query: str, tables: Mapping[str, Pipeline] | None = None) -> Pipeline:
        """One SELECT as a pipeline, planned into the same stages and tasks as any other
        (``elytra.sqlplan``): each table name is a lake dataset, or the pipeline ``tables``
        gives it (``{"sales": session.read_parquet("sales/*.parquet")}``). The pipeline can
        go on with more steps. A construct not planned into stages is a ``SQLPlanError``
        that names it."""
        from .sqlplan import parse_query, plan_sql, table_names

        given = {k.lower(): v for k, v in (tables or {}).items()}
        if len(given) != len(tables or {}):  # SQL's names are case-insensitive
            raise SQLPlanError(f"tables {sorted(tables or {})} name one table twice, in two cases")
        tree = parse_query(query)
        for name in table_names(tree):
            if name not in given:
                try:
                    given[name] = self.dataset(name)
                except SQLPlanError:
                    raise
                except (PipelineError, BadInputError) as exc:  # no such dataset, or a name
                    # no dataset can have (a path): a table the query names
                    raise SQLPlanError(f"table {name!r}: {exc}") from None
        return plan_sql(query, given, tree)

    def native_sql(self, query: str) -> NativeQuery | None:
        """``query`` over this session's lake datasets as a query DuckDB runs whole before it
        is planned (``nativequery``: the SQL route's short path), or None when it must be
        planned first (``sql`` then says what is wrong with it, if anything is)."""
        from .nativequery import native_query
        from .sqlplan import parse_query, table_names

        try:
            tree = parse_query(query)
            tables = {name: self.dataset(name) for name in table_names(tree)}
        except (PipelineError, BadInputError):  # ``sql`` raises it again, with its context
            return None
        return native_query(query, tree, tables)

    def from_arrow(self, table: pa.Table | pa.RecordBatch) -> Pipeline:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if not isinstance(table, pa.Table):
            raise PipelineError(
                f"from_arrow takes a pyarrow Table or RecordBatch, not {type(table).__name__}"
            )
        table = table.cast(decoded(table.schema))  # categorical columns as their values
        return self._start(ArrowSource(f"arrow:{new_id()}", table.schema, table=table))


def make_backend(settings: ElytraSettings) -> Backend:
    """The backend ``settings.backend`` names, started."""
    if settings.backend == "inline":
        return InlineBackend(settings.max_attempts)
    if settings.backend == "local":
        from .backends.local import LocalPool

        return LocalPool(
            settings.workers,
            ring_bytes=max(1 << 16, int(settings.ring_bytes) // 64 * 64),
            max_attempts=settings.max_attempts,
            lease_seconds=settings.lease_seconds,
        )
    if settings.backend == "browser":
        from .backends.browser import BrowserBackend
        from .browser.hub import WorkerHub

        local = make_backend(settings.model_copy(update={"backend": "local"}))
        hub = WorkerHub(
            lease_seconds=settings.browser_lease_seconds,
            max_task_seconds=settings.lease_seconds,
            heartbeat_seconds=settings.browser_heartbeat_seconds,
            max_concurrency=settings.browser_max_concurrency,
            max_result_bytes=int(settings.browser_max_result_bytes),
            messages_per_second=settings.browser_messages_per_second,
            max_workers=settings.browser_max_workers,
            max_workers_per_sub=settings.browser_max_workers_per_token,
        )
        return BrowserBackend(
            local,
            hub,
            max_attempts=settings.max_attempts,
            wait_seconds=settings.browser_wait_seconds,
            verify_fraction=settings.browser_verify_fraction,
        )
    if settings.backend == "ray":
        from .backends.ray import RayBackend

        return RayBackend(
            settings.ray_address,
            max_attempts=settings.max_attempts,
            node_dir=settings.ray_node_dir,
            chunk_cache=settings.chunk_cache_dir(),
            chunk_cache_bytes=int(settings.chunk_cache_bytes),
        )
    raise PipelineError(f"backend {settings.backend!r} is not available here")


def _client_token(url: str, token: str | None, home: Path) -> str | None:
    """The token a CLI sends to the platform serving ``home`` (``platform_core.cli.
    resolve_token``): ``token``, ``PLATFORM_TOKEN``, ``platform login``'s, or this machine's
    (``admin``, minted with the home's secret). One person is one identity: ``connect()``
    beside a running platform acts as ``lake`` and ``elytra`` on the command line do there,
    not as the OS user."""
    from platform_core import PlatformSettings
    from platform_core.cli import resolve_token

    return resolve_token(url, token, load_settings(PlatformSettings, home=home))


def connect(
    url: str | None = None,
    *,
    token: str | None = None,
    home: str | os.PathLike[str] | None = None,
    backend: str | Backend | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    recorder: JobRecorder | None = None,
    **settings: Any,
) -> Session:
    """A session. Embedded on ``home`` (``PLATFORM_HOME``) by default, with ``backend``
    ``"local"`` (a worker pool, the default), ``"inline"`` or a backend object; with ``url``,
    or when a platform serves ``home``, on that platform, as the identity the CLIs use with
    that URL (``token``, else ``PLATFORM_TOKEN``, ``platform login``'s token, else this
    machine's ``admin`` for a loopback URL)."""
    overrides: dict[str, Any] = dict(settings)
    if home is not None:
        overrides["home"] = Path(home)
    if workers is not None:
        overrides["workers"] = workers
    if isinstance(backend, str):
        overrides["backend"] = backend
    if ray_address is not None:
        overrides |= {"backend": "ray", "ray_address": ray_address}
    loaded = load_settings(ElytraSettings, **overrides)
    if url is None and backend is None:
        url = find_running(loaded.home)  # a platform serves this home: use it, as the CLIs do
    if url is not None:
        found = _client_token(url, token, loaded.home)
        if found is None:
            raise PipelineError(f"connecting to {url} needs a token: token= or PLATFORM_TOKEN")
        return Session(loaded, remote=RemoteDriver(url, found), token=found)
    given = backend if backend is not None and not isinstance(backend, str) else None
    if recorder is None:  # embedded: submitted jobs are recorded in the home's database
        from .jobs import HomeRecorder

        recorder = HomeRecorder(loaded.home)
    return Session(loaded, given, recorder)


def _int_ranges(stats: Mapping[str, tuple[Any, Any]]) -> tuple[tuple[str, int, int], ...]:
    """A chunk's ``(column, min, max)`` for the columns whose statistics are integers."""
    return tuple(
        (name, lo, hi)
        for name, (lo, hi) in sorted(stats.items())
        if type(lo) is int and type(hi) is int
    )
