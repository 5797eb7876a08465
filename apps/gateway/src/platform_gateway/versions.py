"""Versions: the gateway's own ``__version__``, and those of every ``platform-*`` distribution.

``platform_versions()`` backs ``/api/version`` and ``platform --version``; ``__version__`` is
the one source of the gateway's version (``platform_gateway.__version__``, the OpenAPI info).
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distributions, version

__all__ = ["__version__", "platform_versions"]

try:
    __version__ = version("platform-gateway")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_SEPARATORS = re.compile(r"[-_.]+")


def platform_versions() -> dict[str, str]:
    """``{"platform-core": "0.1.0", ...}`` for every installed ``platform-*`` distribution."""
    found: dict[str, str] = {}
    for dist in distributions():
        raw = dist.metadata["Name"] if dist.metadata is not None else None
        if not raw:
            continue
        # PEP 503 normalisation: platform_core -> platform-core
        name = _SEPARATORS.sub("-", raw).lower()
        # The first one on sys.path wins, as it does for importlib.metadata.version().
        if name.startswith("platform-") and name not in found:
            found[name] = dist.version
    return dict(sorted(found.items()))
