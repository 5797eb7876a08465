"""Backends that run tasks: ``inline`` (this process), ``local`` (a pool of worker processes,
results over strand) and ``ray``; all give identical results."""

from .base import Backend, failure, retryable
from .inline import InlineBackend
from .local import LocalPool

__all__ = ["Backend", "InlineBackend", "LocalPool", "failure", "retryable"]
