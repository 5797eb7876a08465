"""Who may call what: every lake route needs any user, the owner of its object, or an admin.

- any user: list and read datasets, query, start an upload of a new dataset, see the nodes;
- the owner (a dataset's uploader, recorded in its manifest; an upload's or a query's
  starter) or an admin: delete the dataset or add a version, drive the upload, cancel the
  query; a dataset without a recorded owner (older manifests) is admin-only;
- admin: garbage collection now, this node's internals (``/nodes/self``).

Node-to-node routes take cluster tokens only (:mod:`lake.peer_api`).
"""

from __future__ import annotations

from platform_core import ForbiddenError
from platform_core.auth import Claims

__all__ = ["require_admin", "require_owner"]


def require_admin(who: Claims, what: str) -> None:
    if not who.admin:
        raise ForbiddenError(f"{who.sub!r} is not an admin; {what} needs an admin token")


def require_owner(who: Claims, owner: str | None, what: str) -> None:
    """``who`` must be ``owner`` or an admin; an unknown owner leaves it to admins."""
    if who.admin or (owner is not None and owner == who.sub):
        return
    if owner is None:
        raise ForbiddenError(
            f"{what} has no recorded owner (it predates owners); only an admin may change it"
        )
    raise ForbiddenError(f"{what} belongs to {owner!r}; only its owner or an admin may change it")
