"""The service elytra's gateway plugin provides to its other plugins (see
``platform_core.services``): the worker pool, which the peer routes (``elytra-peer``) run
other platforms' tasks on and whose browser hub the worker routes (``workers``) serve.

Declaring the key imports nothing heavy (its type is named, resolved when a value is checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_core.services import ServiceKey

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["WORKER_POOL"]

WORKER_POOL: ServiceKey[Backend] = ServiceKey(
    "elytra.pool", "elytra.backends.base:Backend", "elytra's worker pool"
)
"""This platform's own pool (the local processes, or the browser backend over them; never the
cluster backend: a peer's task is not sent on), started with the platform."""
