"""Where a process keeps its running lake node (``NodeHolder``): a module of its own, so the
gateway plugin can hold one without importing the API (FastAPI) and the node (DuckDB, Flight)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_core import UnavailableError

if TYPE_CHECKING:
    from ..node import LakeNode

__all__ = ["NodeHolder"]


class NodeHolder:
    """Where the running node is kept between the router's creation and its lifespan."""

    def __init__(self, node: LakeNode | None = None) -> None:
        self.node = node

    def __call__(self) -> LakeNode:
        if self.node is None:
            raise UnavailableError("the lake node is not running (starting or stopping)")
        return self.node
