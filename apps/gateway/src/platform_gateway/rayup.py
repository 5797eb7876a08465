"""``platform up --ray``: start this platform's Ray node and point Elytra's driver at it.

A platform started alone runs a Ray head; one started with ``--join A`` runs a Ray worker
node of A's head, whose address and token it learns from A (:mod:`.rayjoin`). The node is a
supervised child (:mod:`.raynode`); when it dies on its own the gateway keeps serving, and its
Ray driver (Elytra's) is told never to end the process over a lost GCS.
"""

from __future__ import annotations

import logging
import os

from elytra import ray_node_marks
from platform_core import PlatformError, PlatformSettings

from .raynode import RayNode
from .raystart import RaySpec, choose_ports, driver_env, is_loopback, make_token

__all__ = ["USAGE_BOTH", "start_ray"]

log = logging.getLogger("platform.ray")

USAGE_BOTH = (
    "--ray starts a Ray node of the platform's own and --ray-address attaches to a Ray cluster "
    "you run: give one of them"
)


def start_ray(settings: PlatformSettings) -> RayNode:
    """Start the Ray node (a head, or with ``--join`` a worker of the joined platform's head)
    and export what Elytra's Ray backend reads; raises ``PlatformError`` with what to do."""
    head_address: str | None = None
    token: str | None = None
    if settings.join:
        from .rayjoin import learn_head

        head_address, token = learn_head(settings)
        if is_loopback(head_address.rsplit(":", 1)[0].strip("[]")):
            raise PlatformError(
                f"{settings.join} runs its Ray head on a loopback address ({head_address}), "
                "which Ray 2.60's worker nodes cannot join: start every platform with "
                "--host set to an address of this machine the others reach"
            )
    resources, env = ray_node_marks(settings)  # which lake node it serves, where its chunks are
    spec = RaySpec(
        host=settings.host,
        home=settings.home,
        ports=choose_ports(settings.host, head=head_address is None),
        head_address=head_address,
        resources=resources,
        env=env,
        object_store_bytes=settings.ray_object_store_bytes,
    )
    make_token(settings.home, token)
    # No ray.shutdown() when the node dies: with its raylet gone, Ray's disconnect ends the
    # whole process ("the local Raylet is dead"). The driver is left idle instead, and told
    # to wait for its GCS forever (raystart.driver_env) rather than end the process.
    node = RayNode(spec)
    try:
        node.start()
    except OSError as exc:
        raise PlatformError(f"cannot start Ray: {exc}") from None
    os.environ.pop("RAY_AUTH_TOKEN", None)  # the node's token file is the one to send
    os.environ.update(driver_env(spec, node.temp_dir, node.address))
    os.environ.setdefault("ELYTRA_BACKEND", "ray")
    log.info("Ray %s runs at %s (log: %s)", node.status()["role"], node.address, node.log_path)
    return node
