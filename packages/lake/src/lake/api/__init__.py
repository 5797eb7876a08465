"""HTTP in and out of a node: the user routes (``/api/lake``) and their roles, the node-to-node
routes (``/internal/lake``), the standalone ``lake node`` app, the live mirror, the holder of a
process's node, and the HTTP client (``lake.Client``).

Nothing is imported here, so ``import lake.api.holder`` loads neither FastAPI nor the node.
"""
