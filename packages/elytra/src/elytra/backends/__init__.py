"""Backends that run tasks: ``inline`` (this process), ``local`` (a pool of worker processes,
results over strand), ``ray``, and ``browser`` (browser workers for the pure-JSON tasks, the
local pool for the rest); all give identical results. Across machines a job runs on Ray:
:class:`RayBackend` places tasks on the Ray nodes of the platforms holding their chunks."""

from .base import Backend, failure, retryable
from .browser import BrowserBackend
from .inline import InlineBackend
from .local import LocalPool
from .ray import RayBackend

__all__ = [
    "Backend",
    "BrowserBackend",
    "InlineBackend",
    "LocalPool",
    "RayBackend",
    "failure",
    "retryable",
]
