"""The gateway plugin: ``/api/jobs``, job records in the gateway's Elkyn, datasets from its
lake node. The lifespan reserves ``/jobs`` in Elkyn's rules and cancels running jobs on exit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from platform_core import PlatformSettings, Plugin, UnavailableError, package_settings

from .settings import ElytraSettings

if TYPE_CHECKING:
    from .api import JobRegistry
    from .backends import Backend
    from .session import Session

# The jobs API (FastAPI), the session, the backends and the job records are imported when the
# gateway starts (the factories below), not by every command that loads the plugins for
# their CLIs.

__all__ = ["plugin"]


class _Platform:
    """The session of this gateway, made on first use (the lake node starts after us)."""

    def __init__(self) -> None:
        self.settings: PlatformSettings | None = None
        self.session: Session | None = None
        self.backend: Backend | None = None
        """The worker pool, started with the platform and shared by every job."""

    def __call__(self) -> Session:
        if self.session is not None:
            return self.session
        if self.settings is None:
            raise UnavailableError("the platform is starting or stopping; retry in a moment")
        from elkyn.plugin import current_writer
        from lake.plugin import current_node

        from .jobs import StoreRecorder
        from .session import Session

        node = current_node()  # 503 while the lake node is not running
        store = current_writer()  # forwards to the primary when this Elkyn is a replica
        es = package_settings(ElytraSettings, self.settings)
        self.session = Session(
            es,
            self.backend,
            recorder=StoreRecorder(store) if store is not None else None,
            catalog=node.catalog,
            fetch=node.cluster.read_chunk if node.cluster is not None else None,
            ingest=lambda path, name, owner, admin: _version(
                node.ingest(path, name, owner=owner, admin=admin)
            ),
        )
        return self.session


def _version(info: Any) -> int:
    return int(info.version)


def plugin() -> Plugin:
    """Entry point of the ``platform.plugins`` group."""
    platform = _Platform()
    made: dict[str, JobRegistry] = {}

    def registry() -> JobRegistry:
        """The jobs of this gateway, made with its router."""
        if "registry" not in made:
            from .api import JobRegistry

            made["registry"] = JobRegistry()
        return made["registry"]

    def router(settings: PlatformSettings) -> Any:
        from .api import make_router
        from .pool_api import make_pool_router

        routes = make_router(platform, registry())
        # In front: ``/pool`` would otherwise be taken for a job id by ``GET /{job_id}``.
        # (Including the jobs router into another one is refused: ``POST ""`` has no path.)
        routes.routes[:0] = make_pool_router(lambda: platform.backend).routes
        return routes

    @asynccontextmanager
    async def lifespan(settings: PlatformSettings) -> AsyncIterator[None]:
        from elkyn.plugin import current_store

        from .jobs import JOBS_RULES, reconcile
        from .session import make_backend
        from .spilldirs import sweep

        store = current_store()
        if store is not None:
            store.reserve("jobs", JOBS_RULES)  # in memory only on a replica
        if store is not None and store.replica_of is None:  # a replica's jobs are the primary's
            left = await asyncio.to_thread(reconcile, store)  # jobs a killed run left "running"
            if left:
                logging.getLogger("elytra").warning("%d unfinished job(s) marked failed", left)
        es = package_settings(ElytraSettings, settings)
        await asyncio.to_thread(sweep, es.resolved_spill_dir())  # what a killed run spilled
        platform.backend = await asyncio.to_thread(make_backend, es)  # `platform up` starts it
        platform.settings = settings
        try:
            yield
        finally:
            platform.settings = None
            registry().cancel_all()
            if platform.session is not None:
                platform.session.close()
                platform.session = None
            if platform.backend is not None:
                await asyncio.to_thread(platform.backend.close)
                platform.backend = None

    from .cli import cli

    return Plugin(
        name="elytra",
        prefix="/api/jobs",
        router=router,
        lifespan=lifespan,
        cli=cli,
        description="Pipelines over lake datasets, run as jobs (state in Elkyn /jobs).",
    )
