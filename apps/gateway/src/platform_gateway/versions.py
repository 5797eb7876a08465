"""Versions of the installed ``platform-*`` distributions, for ``/api/version`` and ``--version``."""

from __future__ import annotations

import re
from importlib.metadata import distributions

__all__ = ["platform_versions"]

_SEPARATORS = re.compile(r"[-_.]+")


def platform_versions() -> dict[str, str]:
    """``{"platform-core": "0.1.0", ...}`` for every installed ``platform-*`` distribution."""
    found: dict[str, str] = {}
    for dist in distributions():
        raw = dist.metadata["Name"] if dist.metadata is not None else None
        if not raw:
            continue
        name = _SEPARATORS.sub(
            "-", raw
        ).lower()  # PEP 503 normalisation: platform_core -> platform-core
        # The first one on sys.path wins, as it does for importlib.metadata.version().
        if name.startswith("platform-") and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items()))
