"""``python -m emsqrt`` runs the CLI."""

from .cli import main

main()
