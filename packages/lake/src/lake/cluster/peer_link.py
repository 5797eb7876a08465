"""HTTP calls from this node to other members: the cluster token, the fault hook, refusals.

Every node-to-node HTTP call (ping, indirect ping, manifests, chunk lists) goes through
:class:`PeerLinks`. It signs each call with a cluster token, skips members whose link the
fault hook dropped (tests of indirect pings), and notices a peer that refuses our token: a
401 from a peer route means the two nodes were started with different secrets, which is
logged once per peer as "cluster secret mismatch with NODE" (not once per gossip round).
httpx's own per-request log line is dropped for these calls: gossip makes one every second.

Over TLS (the node serves ``PLATFORM_TLS_CERT``) every member does: the links speak
``https://`` and verify peers against ``PLATFORM_TLS_CA`` (``platform_core.tls``), and
:meth:`PeerLinks.flight` opens Flight clients that verify ``grpc+tls`` peers the same way.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

# httpx and PyJWT load with the first link, not with the plugin for `platform --help`
if TYPE_CHECKING:
    import httpx

    from platform_core.auth import TokenSigner

    from .flight import FlightPeer

__all__ = ["PEER_PREFIX", "PeerLinks", "mismatch_message"]

log = logging.getLogger(__name__)

MAX_KEPT_FLIGHT = 64
"""Flight connections kept open (one per peer address; the least recently used goes first)."""

PEER_PREFIX = "/internal/lake"
"""Where every node serves its node-to-node routes (:mod:`lake.api.peer_routes`)."""


def mismatch_message(peer: str) -> str:
    """The one line that says a peer refused our cluster token, and what to do."""
    return (
        f"cluster secret mismatch with {peer}: it refused this node's cluster token; start "
        "every node of a cluster with the same PLATFORM_SECRET (or LAKE_SECRET)"
    )


class _QuietPeerRequests(logging.Filter):
    """Drops httpx's INFO line for node-to-node requests (one per gossip round and peer)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and PEER_PREFIX in record.getMessage())


_QUIET = _QuietPeerRequests()


class PeerLinks:
    """This node's signed HTTP client to its peers, with dropped links and refusal tracking."""

    def __init__(
        self,
        signer: TokenSigner,
        node_id: str,
        timeout: float,
        *,
        scheme: str = "http",
        verify: ssl.SSLContext | None = None,
        flight_roots: bytes | None = None,
    ) -> None:
        """``scheme`` is ``https`` in a TLS cluster, whose peers ``verify`` checks (default:
        ``platform_core.tls.client_context``: ``PLATFORM_TLS_CA``, else the system trust); ``flight_roots`` are the PEM roots of Flight peers (None: system)."""
        self.signer = signer
        self.node_id = node_id
        self.scheme = scheme
        self.flight_roots = flight_roots
        self.dropped: set[str] = set()
        """Member ids this node pretends it cannot reach (the fault hook)."""
        # no retries: a peer that does not answer is noticed at once (the caller drops it)
        from platform_core.http import http_client

        self._http = http_client(timeout=timeout, verify=verify)
        httpx_log = logging.getLogger("httpx")
        if _QUIET not in httpx_log.filters:
            httpx_log.addFilter(_QUIET)
        self._refused: set[str] = set()
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, Any] = OrderedDict()
        """Flight address -> its kept ``pyarrow.flight.FlightClient`` (``flight(kept=True)``)."""

    def token(self) -> str:
        return self.signer.cluster_token(self.node_id)

    def drop(self, node_ids: set[str]) -> None:
        self.dropped = set(node_ids)

    def call(
        self,
        method: str,
        addr: str,
        path: str,
        *,
        peer: str = "",
        timeout: float | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """``method`` on ``<scheme>://addr/internal/lake<path>``; raises ``httpx.HTTPError``.

        ``peer`` names the member in the mismatch message (its id and address when known).
        """
        import httpx

        r = self._http.request(
            method,
            f"{self.scheme}://{addr}{PEER_PREFIX}{path}",
            headers={"authorization": f"Bearer {self.token()}"},
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            **kw,
        )
        who = peer or addr
        if r.status_code == 401:
            with self._lock:
                first = who not in self._refused
                self._refused.add(who)
            if first:
                log.error("%s", mismatch_message(who))
        elif r.status_code == 200 and who in self._refused:
            with self._lock:
                self._refused.discard(who)
        return r

    def flight(self, addr: str, timeout: float, *, kept: bool = False) -> FlightPeer:
        """A Flight client of the member whose gossiped Flight address is ``addr``, carrying
        a fresh cluster token (close it after use).

        ``kept``: over this node's kept connection to ``addr`` (made on first use), so a query
        does not pay a connection set-up per peer; :meth:`forget_flight` drops it once the
        peer stops answering. Bulk chunk copies use their own connection (``kept=False``).
        """
        from .flight import FlightPeer, flight_client  # pyarrow.flight is slow to import

        if not kept:
            return FlightPeer(addr, self.token(), timeout=timeout, root_certs=self.flight_roots)
        with self._lock:
            client = self._kept.get(addr)
            if client is None:
                client = self._kept[addr] = flight_client(addr, self.flight_roots)
            self._kept.move_to_end(addr)
            spare = []
            while len(self._kept) > MAX_KEPT_FLIGHT:
                spare.append(self._kept.popitem(last=False)[1])
        for old in spare:
            _close_quietly(old)
        return FlightPeer(addr, self.token(), timeout=timeout, client=client)

    def forget_flight(self, addr: str) -> None:
        """Close and drop the kept connection to ``addr`` (the peer failed to answer): the
        next query opens a new one instead of waiting on a dead channel."""
        with self._lock:
            client = self._kept.pop(addr, None)
        if client is not None:
            _close_quietly(client)

    def kept_flight(self) -> list[str]:
        """Addresses with a kept Flight connection (for tests and ``/nodes/self``)."""
        with self._lock:
            return list(self._kept)

    def refused(self, peer: str) -> bool:
        """Whether ``peer``'s last answer refused our token."""
        with self._lock:
            return peer in self._refused

    def close(self) -> None:
        self._http.close()
        with self._lock:
            kept, self._kept = list(self._kept.values()), OrderedDict()
        for client in kept:
            _close_quietly(client)


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception as exc:  # a channel already broken: nothing is left to release
        log.debug("closing a Flight connection: %s", exc)
