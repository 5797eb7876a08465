"""Test helper for the issue 29 break tests: clients of all three servers racing on shared
registers, SSE subscribers, and the checks of what they were told against the final exports
(linearizability of each register, no acknowledged push lost, open streams complete and in
real-time order)."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from election_cluster import ElectionCluster, wait_for

from platform_core.testing import Op, linearizable

KEYS = ["r0", "r1", "r2"]


@dataclass
class Log:
    """Every client operation: per register its ops, and the pushes acknowledged or refused."""

    ops: dict[str, list[Op]] = field(default_factory=lambda: {k: [] for k in KEYS})
    pushed: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    terms: set[int] = field(default_factory=set)
    databases: dict[int, set[str]] = field(default_factory=dict)
    """term -> the databases whose primary acknowledged a write in it (two: two primaries)."""
    acked_at: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked_every_key(self) -> bool:
        """Whether every register has an acknowledged operation: the history checks need one
        (on a loaded machine a short round can end before some register got it)."""
        with self.lock:
            return all(any(o.complete is not None for o in self.ops[k]) for k in KEYS)

    def acked_since(self, when: float) -> bool:
        """Whether a write was acknowledged after ``when`` (monotonic seconds)."""
        with self.lock:
            return any(t > when for t in self.acked_at)


def client(cluster: ElectionCluster, c: int, log: Log, stop: threading.Event) -> None:
    """Random writes of unique values to one server until ``stop``."""
    rng = random.Random(c)
    url = cluster.members[c % len(cluster.members)].url
    with httpx.Client(base_url=url, headers=cluster.admin(), timeout=20) as http:
        n = 0
        while not stop.is_set():
            n += 1
            value, pick = f"c{c}n{n}", rng.random()
            keys = rng.sample(KEYS, 2 if 0.5 <= pick < 0.7 else 1)
            written: Any = None if 0.7 <= pick < 0.8 else value
            invoke = time.monotonic()
            try:
                if pick < 0.5:
                    resp = http.put(f"/lin/{keys[0]}.json", json=value)
                elif pick < 0.7:
                    resp = http.patch("/lin.json", json={k: value for k in keys})
                elif pick < 0.8:
                    resp = http.delete(f"/lin/{keys[0]}.json")
                else:
                    keys = []
                    resp = http.post("/log.json", json=value)
            except httpx.HTTPError:
                resp = None
            done = time.monotonic() if resp is not None and resp.status_code == 200 else None
            with log.lock:
                if resp is not None and 400 <= resp.status_code < 500:
                    log.refused.append(f"{resp.status_code} {resp.text[:200]}")
                    continue  # refused: applied nowhere (checked: none is expected at all)
                for k in keys:
                    log.ops[k].append(Op("write", written, invoke, done))
                if done is not None and resp is not None:
                    term = int(resp.headers["x-elkyn-term"])
                    log.terms.add(term)
                    log.databases.setdefault(term, set()).add(resp.headers["x-elkyn-database"])
                    log.acked_at.append(done)
                    if not keys:
                        log.pushed.add(resp.json()["name"])
            if resp is None or resp.status_code != 200:
                time.sleep(0.05)


@dataclass
class Stream:
    """An SSE subscriber of ``/lin`` on one server: the values it saw per register, in order."""

    seen: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in KEYS})
    ended: bool = False
    why: str = ""


def subscribe(url: str, headers: dict[str, str], out: Stream, stop: threading.Event) -> None:
    """Follow ``/lin`` until ``stop`` (or the server ends the stream: ``out.ended``)."""
    try:
        with httpx.stream(
            "GET",
            f"{url}/lin.json",
            headers={"Accept": "text/event-stream", **headers},
            timeout=httpx.Timeout(5, read=None),
        ) as resp:
            kind = ""
            for line in resp.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in ("put", "patch"):
                    body = json.loads(line[6:])
                    path = [p for p in body["path"].split("/") if p]
                    data = body["data"]
                    if not path:  # the whole of /lin (a put) or some of its children
                        data = data if isinstance(data, dict) else {}
                        changes = {k: data.get(k) for k in KEYS if kind == "put" or k in data}
                    elif len(path) == 1 and path[0] in KEYS:
                        changes = {path[0]: data}
                    else:
                        changes = {}
                    for k, v in changes.items():
                        out.seen[k].append(v)
            out.why = f"the server ended it (last event {kind!r})"
    except httpx.HTTPError as exc:
        out.why = repr(exc)
    out.ended = True


def all_in_step(cluster: ElectionCluster) -> bool:
    statuses = [cluster.status(i) for i in range(len(cluster.members))]
    return all(
        s is not None and s["term"] >= 1 and (s["serving"] or s["lag_seconds"] == 0)
        for s in statuses
    )


def exports_agree(cluster: ElectionCluster) -> Any:
    try:
        exports = [cluster.export(i) for i in range(len(cluster.members))]
    except httpx.HTTPError:
        return None
    return exports[0] if all(e == exports[0] for e in exports) else None


def start_streams(cluster: ElectionCluster, stop: threading.Event) -> list[Stream]:
    """One SSE subscriber of ``/lin`` per server, once every replica is in step."""
    wait_for(lambda: all_in_step(cluster), "every replica in step (its first resync ends streams)")
    streams = [Stream() for _ in cluster.members]
    for m, s in zip(cluster.members, streams, strict=True):
        args = (m.url, cluster.admin(), s, stop)
        threading.Thread(target=subscribe, args=args, daemon=True).start()
    time.sleep(0.5)
    return streams


def start_clients(
    cluster: ElectionCluster, log: Log, stop: threading.Event
) -> list[threading.Thread]:
    """Six clients, two per server."""
    clients = [threading.Thread(target=client, args=(cluster, c, log, stop)) for c in range(6)]
    for t in clients:
        t.start()
    return clients


def check_history(
    cluster: ElectionCluster, log: Log, streams: list[Stream], *, one_failover: bool
) -> None:
    """Every server's export agrees; each register is linearizable (the final value read as the
    last operation); every acknowledged push is there; the streams that stayed open are right
    (after ``one_failover`` at least the new primary's did: it never resyncs; after several,
    every server may have resynced once, which ends its streams)."""
    final = wait_for(lambda: exports_agree(cluster), "every server's export to agree", 60)
    assert log.refused == [], log.refused
    end = time.monotonic()
    registers = final.get("lin", {}) if isinstance(final, dict) else {}
    for k in KEYS:
        history = [*log.ops[k], Op("read", registers.get(k), end, end)]
        assert any(o.complete is not None for o in log.ops[k]), f"no write of {k} acknowledged"
        assert linearizable(history), f"register {k} is not linearizable: {history}"
    pushes = set(final.get("log", {})) if isinstance(final, dict) else set()
    assert log.pushed <= pushes, f"acknowledged pushes lost: {sorted(log.pushed - pushes)}"
    check_streams(streams, log, one_failover)


def check_streams(streams: list[Stream], log: Log, one_failover: bool) -> None:
    """A stream open from start to end saw every acknowledged write's value of each register,
    each after those of the acknowledged writes that completed before it was sent."""
    kept = [s for s in streams if not s.ended]
    assert kept or not one_failover, f"no stream stayed open: {[s.why for s in streams]}"
    for s in kept:
        for k in KEYS:
            acked = sorted(
                (o for o in log.ops[k] if o.complete is not None), key=lambda o: o.invoke
            )
            position = {v: i for i, v in enumerate(s.seen[k])}  # values are unique (None aside)
            for o in acked:
                if o.value is None:
                    continue
                assert o.value in position, f"a stream missed the acknowledged {k} = {o.value}"
                for before in acked:
                    if before.value is not None and before.complete < o.invoke:  # type: ignore[operator]
                        assert position[before.value] < position[o.value], (k, before, o)
