"""Backends that run tasks: ``inline`` (this process), ``local`` (a pool of worker processes,
results over strand) and ``ray``; all give identical results."""

from .base import Backend, failure, retryable
from .inline import InlineBackend
from .local import LocalPool
from .ray import RayBackend

__all__ = ["Backend", "InlineBackend", "LocalPool", "RayBackend", "failure", "retryable"]
