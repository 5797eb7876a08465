"""The services the lake's gateway plugin provides to other plugins (see ``platform_core.services``).

Declaring a key imports nothing heavy: its type is named, and resolved only when a value is
checked (the node is imported by then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from platform_core.services import ServiceKey

if TYPE_CHECKING:
    from .node import LakeNode

__all__ = ["LAKE_NODE"]

LAKE_NODE: ServiceKey[LakeNode] = ServiceKey("lake.node", "lake.node:LakeNode", "the lake node")
"""This gateway's running lake node (its catalog, ingest, and cluster when clustered)."""
