"""``platform up``'s election: the gateway plugin's Elkyn joins the cluster's (``elkyn.membership``).

Kept apart from ``elkyn.membership``, which the server's routes import: this module imports
``elkyn.election``, which names the server's app.
"""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from .membership import (
    ElectionDumpError,
    ElectionJoinError,
    JoinTargetDownError,
    NoMemberYetError,
    advertised,
    election_port,
    fetch_members,
    members_at,
    request_admission,
)

log = logging.getLogger(__name__)

RESTART_PATIENCE = 5.0
"""Seconds a restarted member waits for its ``--join`` platform before it rejoins through the
members it remembers."""
ASK_AT_MOST = 8
"""Remembered members a restarted platform asks whether it is still a member (a tampered
``election.members`` may name thousands: each asked costs up to ``ASK_SECONDS``)."""
ASK_SECONDS = 3.0
"""Seconds one remembered member may take to answer that question."""

if TYPE_CHECKING:
    from platform_core import PlatformSettings
    from platform_core.auth import TokenSigner

    from .server.app import ElkynApp
    from .settings import ElkynSettings

__all__ = ["start_platform_election"]


def start_platform_election(app: ElkynApp, es: ElkynSettings, ps: PlatformSettings) -> None:
    """Run the election of ``platform up`` (``ps.join``: join that platform's cluster), the
    gateway's Elkyn ``app`` taking the role it names (see the module docstring)."""
    from platform_core import auth
    from platform_core.tls import client_context

    from .election import Election, Peer
    from .fencing import Fence, default_sync_replicas

    host = advertised(ps.host)
    directory = None if es.memory else Path(es.db_path())
    raft = f"{host}:{election_port(directory, ps.host, es.election_port)}"
    scheme = "https" if ps.tls_cert is not None else "http"
    url = f"{scheme}://{host}:{ps.port}/db"
    signer = auth.signer(es, create=False)
    join_url = f"{scheme}://{ps.join}/db" if ps.join else None
    context = client_context(ps)  # PLATFORM_TLS_CA: the other platforms' HTTPS
    fresh = directory is None or not (directory / "election.journal").exists()
    remembered = {} if fresh else _saved_members(directory)
    members: dict[str, str] = {}
    admitted = True
    if join_url is not None:
        members, admitted = _members_to_join(join_url, signer, context, remembered, raft)
    if not fresh and join_url is None and _alone_before(directory):
        _forget_journal(directory)  # alone, no vote of another member to keep: start afresh
        fresh = True
    elif not fresh and join_url is None:
        _check_not_removed(raft, remembered, signer, context)
    _check_dump(directory, remembered)
    sync = es.sync_replicas
    if sync is None:
        sync = default_sync_replicas(len(set(members) | {raft}) if members else 1)
    app.fence = Fence(sync, es.sync_timeout_seconds)
    if join_url is None and fresh:
        app.fence.promote(1)  # alone and new: the primary at once; the elector records it
    else:
        app.current_store().replica_of = "the primary the election names"  # no local writes
    peers = [Peer(r, u) for r, u in members.items() if r != raft]
    app.election = Election(app, es, url, raft, peers, dynamic=True)
    if directory is not None:
        app.election.on_members = lambda members: _save_members(directory, members)
    app.election.start()
    if join_url is not None and not admitted:  # the platform joined records this one
        request_admission(join_url, signer, raft, url, context)


def _members_to_join(
    join_url: str,
    signer: TokenSigner,
    context: ssl.SSLContext | None,
    remembered: dict[str, str],
    raft: str,
) -> tuple[dict[str, str], bool]:
    """The members as the platform at ``join_url`` knows them, and False: it is to be asked
    to add this one. For a restarted member whose ``--join`` platform is down (often the one
    that died), or was restarted too and names no member until a majority of them votes (a
    whole cluster restarted one platform after the other), the members it remembers, and
    True: its Raft journal makes it a member still, and any of them lets it catch up."""
    if len(remembered) <= 1:
        return fetch_members(join_url, signer, context), False
    try:
        members = fetch_members(join_url, signer, context, patience=RESTART_PATIENCE)
    except (JoinTargetDownError, NoMemberYetError) as exc:
        log.warning(
            "%s; rejoining through the members this platform remembers: %s",
            exc,
            ", ".join(sorted(remembered.values())),
        )
        _check_not_removed(raft, remembered, signer, context)
        return remembered, True
    _check_same_cluster(join_url, members, remembered, raft)
    return members, False


def _check_same_cluster(
    join_url: str, members: dict[str, str], remembered: dict[str, str], raft: str
) -> None:
    """A clear error when the platform joined answers with members none of which this
    restarted platform's home remembers: a fresh platform on the address of one that was
    lost (its home reset) runs a cluster of its own. Joining it wedged both: this platform
    followed neither election, the other counted it as a replica that never acknowledged."""
    if set(members) & set(remembered):
        return
    address = join_url.split("//", 1)[-1].removesuffix("/db")
    theirs = ", ".join(sorted(members))
    ours = ", ".join(sorted(r for r in remembered if r != raft))
    raise ElectionJoinError(
        f"the platform at {address} runs another election cluster (members {theirs}) than "
        f"the one this platform's home remembers ({ours}): was its home reset? To rejoin "
        "this platform's cluster, --join a platform of it; to join the new one, start this "
        "platform on a new --home"
    )


def _check_not_removed(
    raft: str, remembered: dict[str, str], signer: TokenSigner, context: ssl.SSLContext | None
) -> None:
    """A clear error when a member this platform remembers answers with members that no
    longer include it (``platform members remove``). Without it, the removed platform came
    back as a Raft node the others refuse to hear: never told the primary, its Elkyn answered
    every write 503 "retry in a moment" forever while its lake node rejoined the cluster.
    Nothing is decided when no remembered member answers (they may all be restarting)."""
    others = sorted((r, u) for r, u in remembered.items() if r != raft)[:ASK_AT_MOST]
    for _, url in others:
        members = members_at(url, signer, context, timeout=ASK_SECONDS)
        if members is None:
            continue
        if raft in members:
            return
        address = url.split("//", 1)[-1].removesuffix("/db")
        raise ElectionJoinError(
            f"this platform (election address {raft}) is no member of its cluster's election: "
            f"the platform at {address} names only {', '.join(sorted(members))} (it was "
            "removed with `platform members remove`, or its election address changed: "
            f"PLATFORM_HOST, ELKYN_ELECTION_PORT). To join that cluster again, start it with "
            f"--join {address}; to start a cluster of its own, use another --home"
        )


def _check_dump(directory: Path | None, remembered: dict[str, str]) -> None:
    """A clear error when ``election.dump`` cannot be read, or names members none of which
    this home remembers (another cluster's). pysyncobj logs a dump it cannot load and starts
    without it: past a compaction the journal no longer holds the record, so the platform came
    back with term 0 and no members and, as its Raft leader, could name a primary of its own."""
    dump = None if directory is None else directory / "election.dump"
    if dump is None or not dump.exists():
        return
    import gzip

    from pysyncobj import pickle

    try:
        with dump.open("rb") as f, gzip.GzipFile(fileobj=f) as g:
            data = pickle.load(g)
        record, cluster = data[0], data[3]
        if not isinstance(record, dict) or not isinstance(record.get("term", 0), int):
            raise ValueError(f"not an election record: {type(record).__name__}")
        named = {str(n) for n in cluster} | set(record.get("members", {}))
    except Exception as exc:  # a truncated gzip, a bad pickle, another program's file
        raise ElectionDumpError(
            f"cannot read this platform's election snapshot {dump} "
            f"({type(exc).__name__}: {exc}): it was truncated or damaged, and without it the "
            "election's record (term, primary, members) is lost. Restore it from a backup, or "
            "move this home's election.dump, election.journal and election.journal.meta away "
            "and start the platform with --join <a live platform of its cluster> to receive "
            "the record from the cluster"
        ) from exc
    if remembered and not named & set(remembered):
        raise ElectionDumpError(
            f"this platform's election snapshot {dump} is another cluster's: it names "
            f"{', '.join(sorted(named))}, this home remembers {', '.join(sorted(remembered))}. "
            "Put back this home's own election.dump, or move its election.dump, "
            "election.journal and election.journal.meta away and start the platform with "
            "--join <a live platform of its cluster>"
        )


def _saved_members(directory: Path | None) -> dict[str, str]:
    """The members this home's election had when it last changed (``election.members``)."""
    saved = None if directory is None else directory / "election.members"
    try:
        value = json.loads(saved.read_text()) if saved is not None and saved.exists() else {}
    except (OSError, ValueError):
        return {}
    ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return {str(k): v for k, v in value.items()} if ok else {}


def _alone_before(directory: Path | None) -> bool:
    """Whether this home's election had only this platform: ``election.members`` (written as
    the members change, from the first tick) is a record of one member (this platform, maybe
    under an older address: PLATFORM_HOST or ELKYN_ELECTION_PORT changed since). Anything
    else (absent, unreadable, empty, not a record) keeps the journal, the safe side: it costs
    a Raft election of one at start. Before, a record lost or emptied made a first platform
    restarted beside its live cluster forget its journal and serve writes as the primary of
    a new term 1, writes no other platform ever had."""
    saved = None if directory is None else directory / "election.members"
    try:
        value = json.loads(saved.read_text()) if saved is not None else None
    except (OSError, ValueError):
        return False
    return isinstance(value, dict) and len(value) == 1


def _forget_journal(directory: Path | None) -> None:
    for name in ("election.journal", "election.journal.meta", "election.dump"):
        if directory is not None:
            (directory / name).unlink(missing_ok=True)


def _save_members(directory: Path, members: dict[str, str]) -> None:
    tmp = directory / "election.members.tmp"
    tmp.write_text(json.dumps(members))
    tmp.replace(directory / "election.members")
