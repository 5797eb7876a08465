"""The gateway plugin ``elytra``: ``/api/jobs``, and the jobs' backends.

``elytra`` requires the lake node (datasets) and the database (job records: read through its
store, written through its writer, which forwards on a replica); its lifespan reserves
``/jobs`` in Elkyn's rules, provides the worker pool (:data:`elytra.services.WORKER_POOL`) that
the browser workers' routes run on, and cancels running jobs on exit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from elkyn.services import DB_STORE, DB_WRITER
from lake.services import LAKE_NODE
from platform_core import PlatformError, Plugin, UnavailableError, is_valid_id

from .services import WORKER_POOL, WorkerPool

if TYPE_CHECKING:  # settings (pydantic) load when the gateway starts, not for `platform --help`
    from elkyn.store import Store
    from lake.node import LakeNode
    from platform_core import PlatformSettings, Services

    from .backends import Backend
    from .backends.chunkcluster import ChunkCluster
    from .jobs_routes import JobRegistry
    from .resultstore import ResultStore
    from .session import Session
    from .settings import ElytraSettings

# The jobs API (FastAPI), the session, the backends and the job records are imported when the
# gateway starts (the factories below), not by every command that loads the plugins for
# their CLIs.

__all__ = ["JobsPlatform", "plugin"]


def _elytra_settings(base: PlatformSettings | None) -> ElytraSettings:
    """Elytra's settings over the platform's ``base`` (pydantic-settings loads here)."""
    from platform_core import package_settings

    from .settings import ElytraSettings

    return package_settings(ElytraSettings, base)


def _chunk_cluster(node: LakeNode, settings: PlatformSettings | None) -> ChunkCluster | None:
    """The lake cluster ``node`` runs in (None: it runs alone)."""
    from .lakepeers import LakeChunks

    scheme = "https" if settings is not None and settings.tls_cert is not None else "http"
    return LakeChunks(node, scheme) if node.cluster is not None else None


class JobsPlatform:
    """The jobs of one ``elytra`` plugin: its session (made on first use, over the services of
    the running platform), backends and results; 503s while the platform starts or stops."""

    def __init__(self) -> None:
        self.services: Services | None = None
        """The plugin's services while its lifespan runs (the lake node, the database)."""
        self.settings: PlatformSettings | None = None
        self.session: Session | None = None
        self.backend: Backend | None = None
        """What jobs run on: the local pool (Ray's, when attached), the same as ``local``."""
        self.local: Backend | None = None
        """The worker pool, started with the platform and shared by every job."""
        self.pool: WorkerPool | None = None
        """``local`` as the other plugins see it (the browser workers' routes)."""
        self.results: ResultStore | None = None
        """Finished jobs' results on disk (``resultstore``), opened with the platform."""

    def _services(self) -> Services:
        if self.services is None:
            raise UnavailableError("the platform is starting or stopping; retry in a moment")
        return self.services

    def chunk_cluster(self) -> ChunkCluster | None:
        """This platform's lake cluster, once its node runs clustered (else None)."""
        return _chunk_cluster(self._services().get(LAKE_NODE), self.settings)

    def forward(self, node_id: str, request: Any) -> Any:
        """Platform ``node_id``'s answer to ``request`` (a result it holds), or None when
        that is this platform (or there is no cluster)."""
        from platform_core.tls import client_context

        from .resultproxy import forward

        cluster = self.chunk_cluster()
        if cluster is None or node_id == cluster.me():
            return None
        for peer in cluster.peers():
            if peer.id == node_id:
                assert self.settings is not None
                return forward(peer.url, node_id, request, client_context(self.settings))
        raise UnavailableError(
            f"the platform holding this result (node {node_id!r}) is not alive in this "
            "cluster; retry when it is back"
        )

    def result_store(self) -> ResultStore:
        """The store of results (503 while the platform starts or stops)."""
        if self.results is None:
            raise UnavailableError("the platform is starting or stopping; retry in a moment")
        return self.results

    def record(self, job_id: str) -> dict[str, Any] | None:
        """A job's record in this platform's Elkyn (a job of an earlier run), or None."""
        from elkyn import ADMIN

        if self.services is None:
            return None
        found = self.services.get(DB_STORE).get(f"/jobs/{job_id}", caller=ADMIN)
        return found if isinstance(found, dict) else None

    def __call__(self) -> Session:
        if self.session is not None:
            return self.session
        if self.settings is None:
            raise UnavailableError("the platform is starting or stopping; retry in a moment")
        from .jobs import StoreRecorder
        from .session import Session

        services = self._services()
        node = services.get(LAKE_NODE)  # 503 while the lake node is not running
        if self.results is not None:
            self.results.holder = node.node_id
        writer = services.get(DB_WRITER)  # forwards to the primary on a replica
        es = _elytra_settings(self.settings)
        self.session = Session(
            es,
            self.backend,
            recorder=StoreRecorder(writer, driver=node.node_id),
            catalog=node.catalog,
            fetch=node.cluster.read_chunk if node.cluster is not None else None,
            ingest=lambda path, name, owner, admin: _version(
                node.ingest(path, name, owner=owner, admin=admin)
            ),
        )
        return self.session


ORPHAN_CHECK_SECONDS = 2.0
"""How often the primary's platform looks for jobs whose driver's platform died."""


OWN_JOBS_SECONDS = 120.0
"""How long a platform restarted as a replica keeps trying to mark failed the jobs its
previous run drove (see :func:`_fail_own_jobs`)."""


async def _own_unfinished(services: Services, results: ResultStore) -> set[str]:
    """The jobs this platform's previous run may have left unfinished, on a platform
    restarted as a replica of its cluster (a primary's start reconciles them all): those its
    copy of ``/jobs`` holds unfinished with this platform as their driver, and those with a
    result directory here (named as a job is) that the copy does not hold succeeded. The
    copy may lag: a result committed just before the kill, its record not yet copied. Read
    at start, before any job of this run exists."""
    from .jobs import FINAL

    store, node = services.get(DB_STORE), services.get(LAKE_NODE)
    if store.replica_of is None:
        return set()
    jobs = await asyncio.to_thread(store.get, "/jobs") or {}
    jobs = jobs if isinstance(jobs, dict) else {}
    driven = {
        k
        for k, r in jobs.items()
        if isinstance(r, dict) and r.get("driver") == node.node_id and r.get("state") not in FINAL
    }
    # a job's id is platform_core.new_id's: another name (``a.b``) is no job's, and is not a
    # key the database takes either (read at the primary, it failed every other job's read)
    held = [k for k in await asyncio.to_thread(results.ids) if is_valid_id(k)]
    return driven | {k for k in held if _state(jobs.get(k)) != "succeeded"}


async def _fail_own_jobs(services: Services, ids: set[str], results: ResultStore) -> None:
    """Mark failed, through the writer, those of the jobs ``ids`` (:func:`_own_unfinished`)
    that the primary holds unfinished with this platform as their driver, and remove the
    results of all but those the primary holds succeeded; retried while the election names
    no primary. The primary's look for jobs of dead platforms misses a platform back before
    the cluster declared it dead. Records are read at the primary: this replica's copy may
    lag it (a job whose "succeeded" had not reached it when the platform was killed keeps
    record and result)."""
    from .jobs import fail_driven

    log = logging.getLogger("elytra")
    node, writer = services.get(LAKE_NODE), services.get(DB_WRITER)
    deadline = time.monotonic() + OWN_JOBS_SECONDS
    while ids:
        try:
            records = {i: await asyncio.to_thread(writer.get, f"/jobs/{i}") for i in ids}
            gone = await asyncio.to_thread(fail_driven, records, writer, {node.node_id})
        except PlatformError as exc:  # no primary yet: the election is under way
            if time.monotonic() > deadline:
                log.warning(
                    "%d job(s) this platform's killed run drove are left unfinished: no "
                    "primary took their failure within %g s (%s)",
                    len(ids),
                    OWN_JOBS_SECONDS,
                    exc,
                )
                return
            await asyncio.sleep(0.5)
            continue
        for job_id in sorted(i for i, r in records.items() if _state(r) != "succeeded"):
            await asyncio.to_thread(results.delete, job_id)  # committed just before the kill
        if gone:
            log.warning("%d unfinished job(s) marked failed", len(gone))
        return


def _state(record: Any) -> str | None:
    """A job record's state (None for no record, or one without a state)."""
    return record.get("state") if isinstance(record, dict) else None


async def _fail_orphans_every(services: Services) -> None:
    """On the platform whose Elkyn is the primary: mark failed the unfinished jobs whose
    driver ran on a platform the lake cluster declared dead (``elytra.jobs.fail_orphans``)."""
    from .jobs import fail_orphans

    log = logging.getLogger("elytra")
    while True:
        await asyncio.sleep(ORPHAN_CHECK_SECONDS)
        try:
            writer, node = services.get(DB_WRITER), services.get(LAKE_NODE)
            if getattr(writer, "role", "") != "primary" or node.cluster is None:
                continue
            dead = {m.id for m in node.cluster.members.all() if m.state == "dead"}
            if dead:
                store = services.get(DB_STORE)
                gone = await asyncio.to_thread(fail_orphans, store, writer, dead)
                if gone:
                    log.warning("%d job(s) of a dead platform marked failed", len(gone))
        except PlatformError as exc:  # an election under way: the next look retries
            log.info("looking for jobs of dead platforms failed: %s", exc)


async def _expire_every(store: ResultStore, what: str = "job result") -> None:
    """Remove expired results (and what killed writers left) now, then as they expire."""
    every = min(max(store.ttl_seconds / 2, 0.2), 60.0)
    while True:
        try:
            gone = await asyncio.to_thread(store.expire)
            if gone:
                logging.getLogger("elytra").info("%d expired %s(s) removed", gone, what)
        except (OSError, PlatformError) as exc:  # a disk problem must not end the loop
            logging.getLogger("elytra").warning("expiring %ss failed: %s", what, exc)
        await asyncio.sleep(every)


async def _route_sql(
    node: LakeNode, es: ElytraSettings, backend: Callable[[], Backend]
) -> asyncio.Task[None] | None:
    """Unless ``ELYTRA_SQL_ROUTE=off``, the lake's query route plans on our stages while we
    run, its answers streamed from a store of their own; returns that store's expiry task."""
    if es.sql_route == "off":
        return None
    from .sqlanswers import open_answers
    from .sqlroute import PlatformSQL

    answers = await asyncio.to_thread(
        open_answers, es.resolved_spill_dir(), node.settings.max_stream_bytes
    )
    node.sql_executor = PlatformSQL(node, es, backend, answers)
    return asyncio.create_task(_expire_every(answers, "SQL answer"))


def _backend_of(platform: JobsPlatform) -> Backend:
    """The backend jobs run on (503 while the platform starts or stops)."""
    if platform.backend is None:
        raise UnavailableError("the platform is starting or stopping; retry in a moment")
    return platform.backend


def _version(info: Any) -> int:
    return int(info.version)


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    platform = JobsPlatform()
    made: dict[str, JobRegistry] = {}

    def registry() -> JobRegistry:
        """The jobs of this gateway, made with its router."""
        if "registry" not in made:
            from .jobs_routes import JobRegistry

            made["registry"] = JobRegistry(records=platform.record)
        return made["registry"]

    def router(settings: PlatformSettings, services: Services) -> Any:
        from .jobs_routes import make_router
        from .pool_routes import make_pool_router

        routes = make_router(platform, registry(), platform.result_store, platform.forward)
        # In front: ``/pool`` would otherwise be taken for a job id by ``GET /{job_id}``.
        # (Including the jobs router into another one is refused: ``POST ""`` has no path.)
        routes.routes[:0] = make_pool_router(lambda: platform.local).routes
        return routes

    @asynccontextmanager
    async def lifespan(
        settings: PlatformSettings, services: Services
    ) -> AsyncIterator[dict[Any, Any]]:
        from .spilldirs import sweep

        # The database started before us: the graph orders the lifespans.
        left = await _reload_jobs(services.get(DB_STORE), registry())
        es = _elytra_settings(settings)
        await asyncio.to_thread(sweep, es.resolved_spill_dir())  # what a killed run spilled
        platform.results = await _open_results(es, left)
        mine = await _own_unfinished(services, platform.results)
        own = asyncio.create_task(_fail_own_jobs(services, mine, platform.results))
        expiry = asyncio.create_task(_expire_every(platform.results))
        orphans = asyncio.create_task(_fail_orphans_every(services))
        await _start_backends(platform, es, settings)
        platform.services, platform.settings = services, settings
        answers = await _route_sql(services.get(LAKE_NODE), es, lambda: _backend_of(platform))
        try:
            yield {WORKER_POOL: platform.pool}
        finally:
            services.get(LAKE_NODE).sql_executor = None
            if answers is not None:
                answers.cancel()
            expiry.cancel()
            orphans.cancel()
            own.cancel()
            platform.settings = platform.services = None
            registry().cancel_all()
            if platform.session is not None:
                platform.session.close()
                platform.session = None
            if platform.backend is not None:
                await asyncio.to_thread(platform.backend.close)  # closes local too
                platform.backend = platform.local = platform.pool = None

    def status(services: Services) -> dict[str, Any]:
        """The pool's workers and where Ray ran the tasks (``platform status``)."""
        return _status(platform)

    from .cli import cli

    return Plugin(
        name="elytra",
        status=status,
        prefix="/api/jobs",
        router=router,
        lifespan=lifespan,
        cli=cli,
        requires=(LAKE_NODE, DB_STORE, DB_WRITER),
        provides=(WORKER_POOL,),
        description="Pipelines over lake datasets, run as jobs (state in Elkyn /jobs).",
    )


async def _reload_jobs(store: Store, registry: JobRegistry) -> list[str]:
    """Reserve ``/jobs`` in the database's rules, mark failed what a killed run left
    "running" (on a primary), and hold the finished jobs of earlier runs again (listed,
    results served); the ids marked failed."""
    from .jobs import JOBS_RULES, finished, reconcile

    store.reserve("jobs", JOBS_RULES)  # in memory only on a replica
    left: list[str] = []
    if store.replica_of is None:  # a replica's jobs are the primary's
        left = await asyncio.to_thread(reconcile, store)  # jobs a killed run left "running"
        if left:
            logging.getLogger("elytra").warning("%d unfinished job(s) marked failed", len(left))
    registry.restore(await asyncio.to_thread(finished, store, registry.keep))
    return left


async def _open_results(es: ElytraSettings, left: list[str]) -> ResultStore:
    """The store of finished jobs' results, without those of the jobs in ``left``."""
    from .resultstore import ResultStore

    results = ResultStore(
        es.resolved_result_dir(),
        max_bytes=int(es.max_result_bytes),
        quota_bytes=int(es.result_quota_bytes),
        ttl_seconds=es.result_ttl_seconds,
    )
    for job_id in left:  # committed just before the kill, its job failed: not kept
        await asyncio.to_thread(results.delete, job_id)
    return results


async def _start_backends(
    platform: JobsPlatform, es: ElytraSettings, settings: PlatformSettings
) -> None:
    """Start the local pool (``platform up`` starts it): ``platform.local``, ``.pool`` and
    ``.backend``. On Ray in a cluster, the pool places tasks on the Ray nodes of the platforms
    holding their chunks; without Ray, jobs run here, the chunks this node lacks fetched from
    replicas (the one way a job spans machines is Ray)."""
    from .backends.ray import RayBackend
    from .backends.raynodes import sweep, work_dir
    from .session import make_backend

    local = await asyncio.to_thread(make_backend, es)
    platform.local, platform.pool = local, WorkerPool(local)
    if es.backend == "ray" and es.peers and isinstance(local, RayBackend):
        local.attach(platform.chunk_cluster)  # tasks go to the Ray nodes holding their chunks
        # what placed tasks of a killed run left (their workers died with it)
        await asyncio.to_thread(sweep, work_dir(settings.home))
    platform.backend = local


def _status(platform: JobsPlatform) -> dict[str, Any]:
    """The pool's workers and where Ray ran the tasks (``platform status``)."""
    from .pool_routes import pool_status

    if platform.local is None:
        raise UnavailableError("the platform is starting or stopping")
    out: dict[str, Any] = pool_status(platform.local).model_dump()
    placed = dict(getattr(platform.backend, "stats", {}))  # where Ray ran the tasks
    if placed:
        out["cluster"] = placed
    return out
