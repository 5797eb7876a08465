"""OpenAPI docs at ``/docs`` served offline, with the apps the gateway mounts (Elkyn's ``/db``).

The platform runs on machines without internet access, so the page loads its JavaScript, CSS
and favicon from the gateway itself (``platform_core.apidocs``, the same page every server of
the platform serves). The gateway's ``/openapi.json`` holds its own routes, the plugins'
routers and the operations of every mounted app that describes itself.
"""

from __future__ import annotations

from platform_core.apidocs import ASSETS_PATH, DOCS_PATH, install_docs

__all__ = ["ASSETS_PATH", "DOCS_PATH", "install_docs"]
