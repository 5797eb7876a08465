"""``GET /api/jobs/pool``: the worker pool the platform's jobs run on, for the Cluster page.

Which backend runs tasks (``inline``, ``local`` or ``ray``), its workers and which of them
are busy, and for ``ray`` the Ray cluster's nodes and resources (otherwise ``ray`` says it is
not attached). A route of its own (not in :mod:`elytra.jobs_routes`) so the jobs routes and this one
change apart; the plugin registers it before ``/{job_id}``, which would otherwise take it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from platform_core import UnavailableError

from .backends import Backend
from .jobs_routes import Who

__all__ = ["PoolModel", "make_pool_router", "pool_status"]

MAX_RAY_NODES = 256
"""At most this many Ray nodes are listed (the count says how many there are)."""


class WorkerModel(BaseModel):
    index: int
    pid: int | None = Field(description="Null while the worker process is starting.")
    state: Literal["starting", "idle", "busy"]
    task: str | None = Field(None, description="The task it runs, when busy.")


class RayNodeModel(BaseModel):
    id: str
    address: str
    alive: bool
    resources: dict[str, float]


class RayModel(BaseModel):
    attached: bool
    detail: str = Field(description="'not attached', or what Ray says about itself.")
    nodes: list[RayNodeModel] = Field(default_factory=list)
    node_count: int = 0
    """Every node Ray knows, dead ones too (it keeps them listed)."""
    alive_count: int = 0
    """The nodes alive now (listed first)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """The cluster's total resources (CPU, memory, ...)."""
    available: dict[str, float] = Field(default_factory=dict)


class PoolModel(BaseModel):
    backend: str
    workers: int | None = Field(description="Worker processes; null for inline (in-process).")
    busy: int | None
    idle: int | None
    worker_list: list[WorkerModel] = Field(default_factory=list)
    ray: RayModel


GCS_PROBE_SECONDS = 1.0


def _ray_module() -> Any:
    import ray  # only with the ray backend, which imported it already

    return ray


def _gcs_silent(ray: Any) -> str | None:
    """Why Ray's GCS cannot be asked now (its port refuses), else None: a lost GCS would hold
    every Ray call until Ray gives up on it (a minute, or never when told so), so the pool's
    report says so in a second instead of hanging."""
    address = str(ray.get_runtime_context().gcs_address or "")
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=GCS_PROBE_SECONDS):
            return None
    except (OSError, ValueError) as exc:
        return f"Ray's GCS at {address} does not answer ({exc}): the Ray cluster is gone"


def _ray(backend: Backend) -> RayModel:
    if getattr(backend, "name", "") != "ray":
        return RayModel(attached=False, detail="not attached")
    ray = _ray_module()
    if not ray.is_initialized():
        return RayModel(attached=False, detail="not attached (Ray is not initialised here)")
    silent = _gcs_silent(ray)
    if silent is not None:
        return RayModel(attached=False, detail=silent)
    nodes = sorted(ray.nodes(), key=lambda n: not n.get("Alive", False))  # alive ones first
    return RayModel(
        attached=True,
        detail=f"Ray {ray.__version__}",
        node_count=len(nodes),
        alive_count=sum(bool(n.get("Alive", False)) for n in nodes),
        nodes=[
            RayNodeModel(
                id=str(n.get("NodeID", "")),
                address=str(n.get("NodeManagerAddress", "")),
                alive=bool(n.get("Alive", False)),
                resources={k: float(v) for k, v in (n.get("Resources") or {}).items()},
            )
            for n in nodes[:MAX_RAY_NODES]
        ],
        resources={k: float(v) for k, v in ray.cluster_resources().items()},
        available={k: float(v) for k, v in ray.available_resources().items()},
    )


def pool_status(backend: Backend) -> PoolModel:
    """What ``backend`` has now (cheap for local pools; one GCS call for Ray)."""
    name = str(getattr(backend, "name", type(backend).__name__))
    worker_states = getattr(backend, "worker_states", None)
    count: int | None = None
    busy: int | None = None
    idle: int | None = None
    workers: list[WorkerModel] = []
    if callable(worker_states):
        workers = [WorkerModel.model_validate(w) for w in worker_states()]
        count = len(workers)
        busy = sum(1 for w in workers if w.state == "busy")
        idle = sum(1 for w in workers if w.state == "idle")
    if name == "ray":
        ray = _ray_module()
        if ray.is_initialized() and _gcs_silent(ray) is None:
            count = int(ray.cluster_resources().get("CPU", 0))
            free = int(ray.available_resources().get("CPU", 0))
            busy, idle = count - free, free
    return PoolModel(
        backend=name,
        workers=count,
        busy=busy,
        idle=idle,
        worker_list=workers,
        ray=_ray(backend),
    )


def make_pool_router(backend: Callable[[], Backend | None]) -> APIRouter:
    """The pool route; ``backend()`` is the platform's pool (None while it starts or stops)."""
    router = APIRouter(tags=["jobs"])

    @router.get("/pool", response_model=PoolModel, summary="The worker pool")
    def pool(who: Who) -> PoolModel:
        """The backend that runs jobs' tasks, its workers (busy or idle), and Ray's nodes and
        resources when the backend is ``ray``. Role: any signed-in user."""
        b = backend()
        if b is None:
            raise UnavailableError("the worker pool is starting or stopping; retry in a moment")
        return pool_status(b)

    return router
