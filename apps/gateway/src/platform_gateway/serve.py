"""Running the gateway for ``platform up`` on the service kit (``platform_core.service``).

The socket is bound before uvicorn starts (``--port 0`` reports the real port); the banner
``platform is up at ...`` is printed once the server accepts connections; the first
Ctrl-C/SIGTERM stops gracefully and a second one forces the exit. While it serves,
``<home>/platform.json`` says where (``platform_core.find_running``). With
``PLATFORM_TLS_CERT`` and ``PLATFORM_TLS_KEY`` it serves HTTPS and all of these say ``https://``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from platform_core.service import Outcome, banner, bind, url_of
from platform_core.service import serve as serve_app
from platform_core.tls import ServerTLS

__all__ = ["Outcome", "bind", "serve", "url_of"]


def serve(
    app: Any,
    sock: socket.socket,
    url: str,
    log_level: str,
    home: Path | None = None,
    tls: ServerTLS | None = None,
    ray: str | None = None,
) -> Outcome:
    """Serve the gateway ``app`` on ``sock`` until Ctrl-C/SIGTERM (HTTPS with ``tls``; ``url``
    says ``https://`` then); closes ``sock``. ``ray``: the address of the platform's own Ray
    node's cluster, named in the banner."""
    host = url.split("//", 1)[1].rsplit(":", 1)[0]
    extra = {"docs": f"{url}/docs"} | ({} if ray is None else {"ray": ray})
    return serve_app(
        app,
        sock,
        what="platform",
        host=host,
        log_level=log_level,
        home=home,
        line=banner("platform", url, home=home, **extra),
        announce_home=home is not None,
        tls=tls,
    )
