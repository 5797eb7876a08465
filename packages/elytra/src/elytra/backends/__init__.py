"""Backends that run tasks: ``inline`` (this process), ``local`` (a pool of worker processes,
results over strand), ``ray``, and ``browser`` (browser workers for the pure-JSON tasks, the
local pool for the rest); ``ClusterBackend`` spreads any of them over the cluster's platforms;
all give identical results."""

from .base import Backend, failure, retryable
from .browser import BrowserBackend
from .cluster import ClusterBackend
from .inline import InlineBackend
from .local import LocalPool
from .ray import RayBackend

__all__ = [
    "Backend",
    "BrowserBackend",
    "ClusterBackend",
    "InlineBackend",
    "LocalPool",
    "RayBackend",
    "failure",
    "retryable",
]
