"""The election cluster of ``platform up --join``: members added through Raft, not listed.

``elkyn serve --peer ...`` lists every server up front. A platform does not know the cluster
it joins, only one platform of it (``--join HOST:PORT``), so the gateway plugin runs the
election with pysyncobj's *dynamic membership* (Raft's one-server-at-a-time change):

1. The first platform (no ``--join``) runs a Raft node alone. Fresh (no election journal yet),
   it serves writes at once as the primary of term 1, so one platform costs nothing at start;
   its elector records term 1 naming it as soon as its one-node Raft has a leader (~1 s).
2. A joining platform asks the platform it joins for the members (``GET
   /db/.replication/members``, cluster token: Raft address -> Elkyn URL), checks that their
   election ports answer (else a clear error), starts its Raft node with them as partners, and
   asks to be added (``POST`` the same path): the Raft leader records its URL and adds its Raft
   address through a committed membership change. It then follows the elected primary.

3. A platform leaves in two steps: it is stopped (a primary's platform first loses its role:
   the others elect a new primary), then any other platform is asked to remove it
   (``DELETE /.replication/members?raft=HOST:PORT``, ``platform members remove``): the Raft
   leader removes its Raft address through a committed membership change, then forgets its
   URL. Until then a stopped platform still counts towards the majority, as Raft requires.

Limits: one platform joins or leaves at a time (pysyncobj refuses a second change while one is
uncommitted; the join retries for ``JOIN_SECONDS``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platform_core import NotFoundError
from platform_core.ports import bind_lasting

from .errors import InvalidDataError, MemberInUseError, PrimaryUnavailableError

if TYPE_CHECKING:
    from platform_core.auth import TokenSigner

    from .server.http import Request, Send

__all__ = [
    "ElectionDumpError",
    "ElectionJoinError",
    "election_port",
    "fetch_members",
    "members_at",
    "request_admission",
    "serve_members",
]

JOIN_SECONDS = 20.0
"""How long a joining platform keeps asking to be added (another may be joining meanwhile)."""
ADD_SECONDS = 8.0
"""How long the Raft leader waits for one membership change to commit."""


class ElectionJoinError(PrimaryUnavailableError):
    """A platform could not join the election of the cluster it was told to join."""


class JoinTargetDownError(ElectionJoinError):
    """The platform to join through did not answer at all (a restarted member may rejoin
    through the members it remembers instead)."""


class NoMemberYetError(ElectionJoinError):
    """The platform to join through answered, but its election names no member yet: it was
    restarted too and waits for a majority of its members to vote (a restarted member rejoins
    through the members it remembers instead, which gives it that majority)."""


class ElectionDumpError(ElectionJoinError):
    """This platform's ``election.dump`` (the snapshot of its election's record that a Raft
    log compaction wrote) is unreadable, or is another cluster's: started on it, the platform
    came back with an empty record (term 0, no members) and no word of why."""


def _call(
    url: str,
    signer: TokenSigner,
    context: ssl.SSLContext | None,
    body: Any = None,
    timeout: float = 10.0,
) -> Any:
    token = signer.cluster_token("elkyn-join", ttl_seconds=60)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
        return json.loads(resp.read(1 << 20))


def _reachable(raft: str, timeout: float = 2.0) -> bool:
    host, _, port = raft.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def fetch_members(
    join_url: str,
    signer: TokenSigner,
    context: ssl.SSLContext | None = None,
    patience: float = JOIN_SECONDS,
) -> dict[str, str]:
    """The election's members (Raft address -> Elkyn URL) as the platform at ``join_url``
    (its ``/db``) knows them, once it knows at least itself; a clear error when none of their
    election ports can be reached (:class:`JoinTargetDownError` when it answered nothing for
    ``patience`` seconds)."""
    deadline = time.monotonic() + patience
    members: dict[str, str] = {}
    while True:
        try:
            members = dict(_call(f"{join_url}/.replication/members", signer, context)["members"])
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):  # waiting will not change the answer
                raise ElectionJoinError(
                    f"could not join the cluster through {join_url}: its election refused this "
                    f"platform's token (HTTP {exc.code}); every platform of a cluster needs the "
                    "same secret (PLATFORM_SECRET)"
                ) from None
            _give_up_after(deadline, patience, join_url, exc)
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
            _give_up_after(deadline, patience, join_url, exc)
        if members or time.monotonic() > deadline:
            break
        time.sleep(0.3)  # its one-node Raft has not recorded it yet
    if not members:
        raise NoMemberYetError(f"the platform at {join_url} names no election member yet")
    if not any(_reachable(raft) for raft in members):
        raise ElectionJoinError(
            f"cannot join the election of the cluster at {join_url}: no election port of its "
            f"members answers ({', '.join(sorted(members))}); check that the port is open "
            "between the machines (ELKYN_ELECTION_PORT sets it)"
        )
    return members


def _give_up_after(deadline: float, patience: float, join_url: str, exc: BaseException) -> None:
    """Past ``deadline``, the clear error for a platform whose election never answered."""
    if time.monotonic() > deadline:
        raise JoinTargetDownError(
            f"could not join the cluster through {join_url}: its election did not answer "
            f"within {patience:g} s ({exc}); is it a platform of this version, and up?"
        ) from None


def members_at(
    url: str, signer: TokenSigner, context: ssl.SSLContext | None, timeout: float = 3.0
) -> dict[str, str] | None:
    """The election's members as the platform at ``url`` (its ``/db``) knows them, asked
    once; None when it does not answer as a member of this cluster (down, another secret,
    not a platform) or its record is not synced with a Raft leader (restarting, it may be
    replaying an old prefix of the log that lacks members admitted since)."""
    try:
        answer = _call(f"{url}/.replication/members", signer, context, timeout=timeout)
        found = dict(answer["members"]) if answer.get("synced") is True else {}
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {str(k): str(v) for k, v in found.items()} or None


def request_admission(
    join_url: str,
    signer: TokenSigner,
    raft: str,
    url: str,
    context: ssl.SSLContext | None = None,
) -> None:
    """Ask the cluster at ``join_url`` to add this server (Raft ``raft``, Elkyn ``url``)."""
    deadline = time.monotonic() + JOIN_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            _call(f"{join_url}/.replication/members", signer, context, {"raft": raft, "url": url})
            return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.5)
    raise ElectionJoinError(
        f"the cluster at {join_url} did not add this platform ({raft}) to its election "
        f"within {JOIN_SECONDS:g} s: {last}"
    )


async def serve_members(app: Any, req: Request, send: Send) -> None:
    """``GET /.replication/members`` (cluster token; ``app``: ``elkyn.server.ElkynApp``, which
    imports this module): the election's members; ``POST
    {"raft", "url"}``: add one (recorded and committed through Raft), answering once done;
    ``DELETE ?raft=HOST:PORT`` (cluster or admin token): remove a stopped one."""
    from .replica import check_cluster
    from .server.http import respond_json

    check_cluster(app, req, admin_too=req.method == "DELETE")
    election = app.election
    if election is None or not election.dynamic:
        raise NotFoundError("this server's election membership is fixed (--peer), or absent")
    if req.method == "GET":
        synced = bool(election.node.isReady() and election.node._getLeader() is not None)
        await respond_json(send, 200, {"members": dict(election.node.members), "synced": synced})
        return
    if req.method == "DELETE":
        await asyncio.to_thread(remove_member, election, req.params.get("raft", ""))
        await respond_json(send, 200, {"members": dict(election.node.members)})
        return
    if req.method != "POST":
        raise InvalidDataError(
            'add a member with POST {"raft": "host:port", "url": "..."}, remove one with '
            "DELETE ?raft=host:port"
        )
    try:
        body = json.loads(await req.body(4096, app.settings.body_timeout_seconds))
        raft, url = str(body["raft"]), str(body["url"])
    except (ValueError, KeyError, TypeError):
        raise InvalidDataError('a member is {"raft": "host:port", "url": "http://..."}') from None
    _check_member(raft, url)
    if raft not in election.node.members and not await asyncio.to_thread(_reachable, raft):
        # recorded members are the servers every elector counts: a phantom one (nothing
        # listening) would make any single failure a minority, with no failover ever again
        raise InvalidDataError(
            f"the election port {raft[:100]!r} of the platform asking to join does not answer "
            "from here: nothing was recorded (is its ELKYN_ELECTION_PORT open?)"
        )
    await asyncio.to_thread(_add, election.node, raft, url)
    await respond_json(send, 200, {"members": dict(election.node.members)})


def _check_member(raft: str, url: str) -> None:
    """A Raft ``host:port`` (port 1-65535) and an ``http(s)://host...`` URL, else a 400 before
    anything is recorded: pysyncobj parses the address only when adding the node, after the
    URL was committed, so a bad one left a member no election could ever reach."""
    host, colon, port = raft.rpartition(":")
    bad_port = not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)
    bad_host = not host.strip("[]") or any(c.isspace() or c in "/@?#" for c in host)
    bad_url = not url.startswith(("http://", "https://")) or any(c.isspace() for c in url)
    if not colon or bad_port or bad_host or bad_url or len(raft) > 300 or len(url) > 2000:
        raise InvalidDataError(
            f"a member is a Raft host:port and an Elkyn URL, not {raft[:100]!r}, {url[:100]!r}"
        )


def _add(node: Any, raft: str, url: str) -> None:
    """Record ``url`` for ``raft`` and add ``raft`` to the Raft cluster (both committed)."""

    try:
        node.admit(raft, url, sync=True, timeout=ADD_SECONDS)
    except Exception as exc:  # pysyncobj's SyncObjException: no leader, or not committed
        raise PrimaryUnavailableError(
            f"recording {raft} in the election did not commit ({exc}); retry in a moment"
        ) from None
    if raft in {n.address for n in node.otherNodes} or raft == node.selfNode.address:
        return
    _change(node.addNodeToCluster, raft, "adding")


def remove_member(election: Any, raft: str) -> None:
    """Remove the stopped member at Raft address ``raft`` from the election (``election``:
    ``elkyn.election.Election``): its Raft address through a committed membership change,
    then its URL from the record; a clear error, and nothing changed, when it is unknown,
    this server, the elected primary, or still running."""
    node = election.node
    members: dict[str, str] = dict(node.members)
    if raft not in members:
        raise NotFoundError(
            f"{raft[:100]!r} is not a member of this election; its members are "
            f"{', '.join(sorted(members)) or 'none'} (Raft addresses, as `platform status "
            "--json` shows them)"
        )
    if raft == election.raft:
        raise MemberInUseError(
            f"{raft} is this platform: stop it, then remove it through another platform"
        )
    if members[raft] == node.primary:
        raise MemberInUseError(
            f"{raft} ({members[raft]}) is the elected primary of term {node.term}: stop it "
            "first; once the others have elected a new primary, remove it"
        )
    if _reachable(raft):
        raise MemberInUseError(
            f"{raft} ({members[raft]}) still answers on its election port: stop that platform "
            "first, then remove it (a running member would keep voting)"
        )
    if raft in {n.address for n in node.otherNodes}:
        _change(node.removeNodeFromCluster, raft, "removing")
    try:
        node.dismiss(raft, sync=True, timeout=ADD_SECONDS)
    except Exception as exc:  # pysyncobj's SyncObjException: no leader, or not committed
        raise PrimaryUnavailableError(
            f"{raft} left the Raft cluster, but forgetting its URL did not commit ({exc}); "
            "remove it again in a moment"
        ) from None


def _change(change: Any, raft: str, doing: str) -> None:
    """Run a pysyncobj membership change for ``raft``; a 503 unless it committed in time."""
    from pysyncobj import FAIL_REASON

    done = threading.Event()
    outcome: list[Any] = []

    def finished(result: Any, error: Any) -> None:
        outcome.append(error)
        done.set()

    change(raft, callback=finished)
    if not done.wait(ADD_SECONDS) or outcome[0] != FAIL_REASON.SUCCESS:
        raise PrimaryUnavailableError(
            f"{doing} {raft} in the election did not commit ({outcome[:1] or 'timed out'}): "
            "a majority of its members must answer, and one change runs at a time; retry in "
            "a moment"
        )


def advertised(host: str) -> str:
    """The address other platforms reach this one at (a wildcard bind: this host's name)."""
    return socket.getfqdn() if host in ("0.0.0.0", "::", "") else host


def election_port(directory: Path | None, host: str, wanted: int | None) -> int:
    """The Raft port: ``wanted`` (``ELKYN_ELECTION_PORT``), else the one this home used before
    (kept in ``<db>/election.port``: a Raft member's address must survive a restart), else a
    free one below the ephemeral range (where no client's connection takes it before the
    restart, :mod:`platform_core.ports`); a clear error when it is taken."""
    saved = None if directory is None else directory / "election.port"
    port = wanted
    if port is None and saved is not None and saved.exists():
        text = saved.read_text().strip()
        port = int(text) if text.isdigit() else None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as pysyncobj binds
        if not port:  # none given or kept (or 0): pick one
            port = bind_lasting(sock, host)
        else:
            try:
                sock.bind((host.strip("[]"), port))
            except OSError:
                raise _port_taken(port, host, kept=wanted is None) from None
    if saved is not None:
        saved.write_text(f"{port}\n")
    return port


def _port_taken(port: int | None, host: str, kept: bool) -> ElectionJoinError:
    """The error for an election port in use. A port this home used before (``kept``) is
    the platform's Raft address in its cluster: another port makes it a stranger the members
    refuse to hear, so the advice is to free it, not ELKYN_ELECTION_PORT (which it was)."""
    if kept:
        return ElectionJoinError(
            f"the election port {port} on {host}, which this platform used before, is in use "
            "(another platform?): its cluster knows this platform by that port, so free it "
            "and start again (another port would need `platform members remove` of the old "
            "address and a new --join)"
        )
    return ElectionJoinError(
        f"the election port {port} on {host} is in use (another platform?): set "
        "ELKYN_ELECTION_PORT to a free port"
    )


def election_status(app: Any, seq: int) -> dict[str, Any]:
    """``platform status``'s election part: the term, the leader (the term's primary), whether
    this platform serves writes, and on the primary each replica's lag (sequence numbers it
    has not acknowledged) and sync state (``sync``: caught up, so it counts for the next
    semi-synchronous acknowledgement)."""
    fence = app.fence
    assert fence is not None
    body: dict[str, Any] = {
        "term": fence.term,
        "serving": fence.serving(),
        "sync_replicas": fence.sync_replicas,
    }
    if app.follower is None and not fence.serving():
        body["role"] = "fenced"  # waiting for the election to name a primary
    election = app.election
    if election is not None:
        state = election.status()
        body["leader"] = state["elected_primary"]
        body["election"] = state
    if fence.serving():
        # a platform restarted on a new HTTP port is a new URL of the same member: its old
        # URL's acknowledgements stay in this term's record, but it is no replica any more
        current = set(election.urls) if election is not None and election.dynamic else None
        body["replicas"] = {
            url: {"acked_seq": acked, "behind": max(seq - acked, 0), "sync": acked >= seq}
            for url, acked in sorted(fence.acks.items())
            if current is None or url in current
        }
    return body
