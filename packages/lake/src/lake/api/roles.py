"""Who may call what: every lake route needs any user, the owner of its object, or an admin.

- any user: list and read datasets, query, start an upload of a new dataset, see the nodes;
- the owner (a dataset's uploader, recorded in its manifest; an upload's or a query's
  starter) or an admin: delete the dataset or add a version, drive the upload, cancel the
  query; a dataset without a recorded owner (older manifests) is admin-only;
- admin: garbage collection now, this node's internals (``/nodes/self``).

Node-to-node routes take cluster tokens only (:mod:`lake.api.peer_routes`).
"""

from __future__ import annotations

from platform_core.http import check_admin, check_owner

__all__ = ["require_admin", "require_owner"]

# The kit's role checks (``platform_core.http``), under the names lake's routes use.
require_admin = check_admin
require_owner = check_owner
