"""The service elytra's gateway plugin provides to its other plugins (see
``platform_core.services``): the worker pool, whose browser hub the worker routes
(``workers``) serve.

Declaring the key imports nothing heavy (its type is named, resolved when a value is checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from platform_core.services import ServiceKey

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["WORKER_POOL", "WorkerPool"]


@dataclass(frozen=True)
class WorkerPool:
    """This platform's own pool, started with the platform."""

    backend: Backend
    """The local processes, or the browser backend over them (Ray's, when attached)."""


WORKER_POOL: ServiceKey[WorkerPool] = ServiceKey(
    "elytra.pool", "elytra.services:WorkerPool", "elytra's worker pool"
)
"""Provided by the ``elytra`` plugin; required by ``workers``."""
