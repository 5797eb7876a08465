"""``python -m elytra`` runs the CLI (as ``python -m lake``, ``elkyn`` and ``emsqrt`` do)."""

from .cli import main

main()
