"""Node-to-node transfer over Arrow Flight: chunk copies and query fragments.

Tickets are JSON: ``{"kind": "chunk", "sha256": ...}`` streams a chunk's exact bytes (as
1 MiB pieces in a one-column binary table, so a 64 MiB chunk never needs one huge message),
and ``{"kind": "fragment", "sql": ..., "tables": {name: [chunk, ...]}}`` runs a pushed-down
fragment over chunks held here and streams its Arrow result. Every call must carry a cluster
token (``authorization: Bearer <token>``); anything else is refused as unauthenticated.

The port is ``LAKE_FLIGHT_PORT``, by default 0: any free one, which the node reports in its
start line and gossips to its peers (each member's ``flight`` address), so several nodes and
gateways run side by side on one machine. With ``PLATFORM_TLS_CERT``/``KEY`` the server speaks
``grpc+tls`` with that certificate and its gossiped address is ``grpc+tls://host:port`` (a
plain one is ``host:port``); clients verify it against ``PLATFORM_TLS_CA``. A port that is set and taken is a one-line
:class:`FlightPortError` naming the port and the setting.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as fl

from platform_core import ConflictError, PlatformError, new_id
from platform_core.auth import TokenSigner
from platform_core.tls import ServerTLS

from ..interfaces import BatchStream, FragmentRunner

__all__ = [
    "FlightPeer",
    "FlightPortError",
    "LakeFlightServer",
    "check_flight_port",
    "flight_client",
]

log = logging.getLogger(__name__)

PIECE = 1 << 20
_PIECES = pa.schema([("data", pa.binary())])


class _AuthFactory(fl.ServerMiddlewareFactory):  # type: ignore[misc]
    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> None:
        values = headers.get("authorization") or []
        token = values[0].partition(" ")[2] if values else ""
        try:
            self.signer.verify_cluster(token)
        except PlatformError as exc:
            raise fl.FlightUnauthenticatedError(exc.message) from None
        return None


class FlightPortError(ConflictError):
    """The Flight port that was set is taken by another process."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"Flight port {port} on {host} is in use (another lake node or gateway?): set "
            "LAKE_FLIGHT_PORT to a free port, or to 0 (the default) for any free one"
        )


def check_flight_port(host: str, port: int) -> None:
    """Raise :class:`FlightPortError` if ``port`` (not 0) cannot be bound on ``host`` now: a
    check before start-up, so a taken port is one line rather than gRPC's log and a trace."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        try:
            sock.bind((host, port))
        except OSError:
            raise FlightPortError(host, port) from None


class LakeFlightServer(fl.FlightServerBase):  # type: ignore[misc]
    """The Flight endpoint of one node: chunk bytes and fragments, run by ``runner``."""

    def __init__(
        self,
        runner: FragmentRunner,
        host: str,
        port: int,
        signer: TokenSigner,
        tls: ServerTLS | None = None,
    ) -> None:
        scheme = "grpc+tls" if tls is not None else "grpc"
        extra: dict[str, Any] = {"tls_certificates": [tls.pem_pair()]} if tls else {}
        try:
            super().__init__(
                f"{scheme}://{_host(host)}:{port}",
                middleware={"auth": _AuthFactory(signer)},
                **extra,
            )
        except pa.ArrowException:
            if port == 0:
                raise
            raise FlightPortError(host, port) from None
        self.runner = runner
        self.tls = tls is not None

    def address(self, host: str) -> str:
        """What peers dial: ``grpc+tls://host:port`` over TLS, else ``host:port``."""
        plain = f"{_host(host)}:{self.port}"
        return f"grpc+tls://{plain}" if self.tls else plain

    def do_get(self, context: Any, ticket: fl.Ticket) -> fl.FlightDataStream:
        try:
            req = json.loads(ticket.ticket)
            if req.get("kind") == "chunk":
                return fl.GeneratorStream(_PIECES, self._chunk(str(req["sha256"])))
            if req.get("kind") == "fragment":
                stream = self._fragment(req)
                return fl.GeneratorStream(stream.schema, _served(stream))
        except PlatformError as exc:
            raise fl.FlightServerError(f"{exc.kind}: {exc.message}") from None
        raise fl.FlightServerError("bad_input: unknown ticket")

    def _chunk(self, sha: str) -> Iterator[pa.RecordBatch]:
        # a corrupt copy is repaired from a replica before it is served, or refused
        (path,) = self.runner.chunk_paths_for([sha], force=True)
        with open(path, "rb") as f:
            while piece := f.read(PIECE):
                yield pa.record_batch([pa.array([piece], pa.binary())], schema=_PIECES)

    def _fragment(self, req: dict[str, Any]) -> BatchStream:
        """The fragment started here (the engine fetches its first batch, so most errors
        are the ticket's answer before any byte is sent); the rest streams as it is read."""
        engine = self.runner
        sources = {}
        for name, shas in req["tables"].items():
            # verified; a corrupt chunk is repaired from a replica first (or refused)
            sources[name] = engine.chunk_paths_for([str(s) for s in shas])
        return engine.stream(  # it fetches the first batch: most errors come before a byte
            str(req["sql"]),
            {},
            sources,
            timeout=float(req.get("timeout") or engine.timeout),
            query_id=f"frag-{new_id()}",
        )


def _served(stream: BatchStream) -> Iterator[pa.RecordBatch]:
    """A fragment's batches as Flight sends them, one at a time (the peer holds no more than
    the batch in flight): a failure midway is the error the ticket's answer would give, and
    the query stops however the transfer ends (read to its end, failed, or cut off)."""
    try:
        while (batch := stream.next_batch()) is not None:
            yield batch
    except PlatformError as exc:
        raise fl.FlightServerError(f"{exc.kind}: {exc.message}") from None
    finally:
        stream.close()


def _host(host: str) -> str:
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


def flight_client(addr: str, root_certs: bytes | None = None) -> fl.FlightClient:
    """A Flight client of ``addr`` (``host:port`` or ``grpc+tls://host:port``, verified
    against ``root_certs``: PEM, None for the system's roots). gRPC connects lazily and
    reconnects by itself; the client is safe to share between threads."""
    location = addr if "://" in addr else f"grpc://{addr}"
    extra: dict[str, Any] = {}
    if location.startswith("grpc+tls://") and root_certs is not None:
        extra["tls_root_certs"] = root_certs
    return fl.FlightClient(location, **extra)


class FlightPeer:
    """Calls another node's Flight server with a cluster token; a ``grpc+tls://`` address is
    verified against ``root_certs`` (PEM; None: the system's roots).

    With ``client`` it calls through that shared client (a kept connection, see
    ``PeerLinks.flight``) and ``close`` leaves it open; else it opens its own and closes it.
    """

    def __init__(
        self,
        addr: str,
        token: str,
        timeout: float = 30.0,
        root_certs: bytes | None = None,
        *,
        client: fl.FlightClient | None = None,
    ) -> None:
        self.addr = addr
        self._owned = client is None
        self.client = client if client is not None else flight_client(addr, root_certs)
        self.options = fl.FlightCallOptions(
            headers=[(b"authorization", f"Bearer {token}".encode())], timeout=timeout
        )

    def close(self) -> None:
        if self._owned:
            self.client.close()

    def fetch_chunk(self, sha: str) -> bytes:
        reader = self.client.do_get(
            fl.Ticket(json.dumps({"kind": "chunk", "sha256": sha})), self.options
        )
        table = reader.read_all()
        data = b"".join(v.as_py() for v in table.column("data"))
        return data

    def fragment(
        self,
        sql: str,
        tables: dict[str, list[str]],
        timeout: float,
        take: Callable[[int], None] | None = None,
    ) -> pa.Table:
        """``sql`` run by the peer over its chunks ``tables``, read batch by batch; ``take``
        is called with each batch's bytes and may raise to cut the transfer off."""
        ticket = json.dumps({"kind": "fragment", "sql": sql, "tables": tables, "timeout": timeout})
        reader = self.client.do_get(fl.Ticket(ticket), self.options)
        if take is None:
            return reader.read_all()
        batches = []
        try:
            for chunk in reader:
                take(chunk.data.nbytes)
                batches.append(chunk.data)
        except BaseException:
            reader.cancel()
            raise
        return pa.Table.from_batches(batches, reader.schema)
