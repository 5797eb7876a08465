"""A tiny server on the service kit, for the launcher's and ``serve``'s tests.

``python kit_server.py [die|silent|unhealthy|stubborn]``: binds port 0, prints the kit's banner
and serves ``/health`` (over HTTPS with ``PLATFORM_TLS_CERT``/``KEY``); ``die`` exits at start with a message on stderr, ``silent`` prints no
URL, ``unhealthy`` answers 503, ``stubborn`` ignores SIGTERM once serving; ``KIT_HTTP``
names uvicorn's HTTP/1.1 parser.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from platform_core import load_settings
from platform_core.service import bind, configure_service_logging, serve
from platform_core.tls import server_tls

mode = sys.argv[1] if len(sys.argv) > 1 else "ok"


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    status = 503 if mode == "unhealthy" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b'{"status": "ok"}'})


if mode == "die":
    print("kit_server: cannot start: the sample failure", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "silent":
    time.sleep(60)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("stubborn at http://127.0.0.1:1", flush=True)
    time.sleep(60)
sock = bind("127.0.0.1", 0)
configure_service_logging("warning")
tls = server_tls(load_settings())  # HTTPS when PLATFORM_TLS_CERT/KEY are set
# KIT_HTTP picks uvicorn's HTTP/1.1 parser ("h11", "httptools"); default: uvicorn's choice
parser = {"http": os.environ["KIT_HTTP"]} if os.environ.get("KIT_HTTP") else {}
serve(
    app, sock, what="kit", host="127.0.0.1", log_level="warning", home="/nowhere", tls=tls, **parser
)
