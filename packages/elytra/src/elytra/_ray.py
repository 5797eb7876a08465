"""Ray is an extra of Elytra: ``pip install 'platform-elytra[ray]'``.

Without it, pipelines run inline and on the local pool; the Ray backend then refuses to start
with one error naming the supported versions and the install command. A client must run the
Ray version of the cluster it attaches to (Ray refuses any other), so a Ray outside the range
below is refused the same way, whether installed here to match a cluster or not.
"""

from __future__ import annotations

import re
from types import ModuleType

from .errors import BackendUnavailableError

__all__ = [
    "INSTALL_RAY",
    "SUPPORTED_RAY",
    "check_ray_version",
    "import_ray",
    "ray_init_hint",
    "ray_supported",
]

SUPPORTED_RAY = ">=2.50,<3"
"""The Ray versions the backend is tested on: the `ray` extra in pyproject.toml says the same
(a test checks the two agree). The lowest is tested by `nox -s lowest-direct -- elytra`."""

INSTALL_RAY = "pip install 'platform-elytra[ray]'"

_LOWEST = (2, 50)
_BELOW = (3,)


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``2.60.0rc1`` -> (2, 60, 0)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match.group().split("."))


def ray_supported(version: str) -> bool:
    """Whether Ray ``version`` is in :data:`SUPPORTED_RAY`."""
    release = _release(version)
    return _LOWEST <= release < _BELOW


def _advice() -> str:
    return (
        f"Elytra's Ray backend supports Ray {SUPPORTED_RAY}; {INSTALL_RAY} installs one "
        "(to attach to a cluster, install that cluster's Ray version, which must be in this "
        "range), or run with backend 'local' or 'inline', which need no Ray"
    )


def check_ray_version(version: str, *, where: str = "installed here") -> None:
    """Refuse a Ray outside :data:`SUPPORTED_RAY`, naming both versions and what to do."""
    if not ray_supported(version):
        raise BackendUnavailableError(f"Ray {version} is {where}, but {_advice()}")


def import_ray() -> ModuleType:
    """``import ray``, or one clear error when it is missing or of an unsupported version."""
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the Ray backend needs Ray, which is not installed ({exc}); {_advice()}"
        ) from None
    except Exception as exc:  # Ray is there but does not import (a broken install)
        raise BackendUnavailableError(
            f"Ray is installed but does not import ({type(exc).__name__}: {exc}); {_advice()}"
        ) from None
    found = getattr(ray, "__version__", None)
    if not isinstance(found, str):  # a module of the user's own named ray, or a folder
        where = getattr(ray, "__file__", None) or "a namespace folder"
        raise BackendUnavailableError(
            f"'import ray' finds {where}, which is not Ray (it has no __version__): rename it "
            f"or install Ray; {_advice()}"
        )
    check_ray_version(found)
    return ray


def ray_init_hint(error: BaseException) -> str:
    """Advice to add when ``ray.init`` fails over a version mismatch with the cluster."""
    text = str(error).lower()
    if "version" in text and "mismatch" in text:
        return f" (the Ray here must be the cluster's version: {_advice()})"
    return ""
