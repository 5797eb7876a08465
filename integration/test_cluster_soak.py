"""Soak: mixed load on the shared three-platform cluster for SOAK_SECONDS, with 500 SSE streams.

Uploads (each checked on another platform, then deleted), distributed SQL, Elytra jobs (both
checked against DuckDB), Elkyn writes (a sequence at one watched path, other writes beside
it), 500 SSE subscribers on the platforms in SSE_NODES, and the RSS of every platform process
and its children sampled from /proc. Asserted: no 5xx anywhere, no SSE event lost or out of
order (every subscriber ends on the last sequence number and never sees one go back), and
RSS after warm-up grows by at most 10 % per platform.

Warm-up is the first quarter of the run (30 s of the default 120 s, 450 s of the full 1800 s):
by then every kind of request has run (the first query opens DuckDB, the first job starts the
pool's worker, the first upload the converter) and the 500 streams were opened before the
clock started, so what grows after it is what the load keeps adding, not what it sets up.
The baseline is the median of the first three samples after warm-up, the end the median of
the last three (a median of three, because a job's worker or a query's buffers come and go
between two samples). Bounded by default (SOAK_SECONDS=120); PLATFORM_TESTS_LONG=1 (`nox -s
soak`) runs 1800 s. The client stays light: 4 sequence writes/s (each is 500 events) and
6 other writes/s (10/s in all), one query a second, uploads every 10 s, jobs back to back.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_ops import ORACLE, PIPELINE, job_rows, oracle, seeded_table, write_parquet
from figures import long_mode, record
from platform_cluster import Cluster, run_async, wait_for
from proc_rss import tree_rss
from sse_watch import Subscriber, watch

from lake import Client
from platform_core.errors import PlatformError

LONG = long_mode()
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS") or (1800 if LONG else 120))
SUBSCRIBERS = 500
SSE_NODES = (0, 1, 2)
"""The platforms whose Elkyn takes SSE subscribers, spread evenly: the primary and the two
replicas, whose streams carry what they follow from it."""
WRITE_NODE = 0
"""Every Elkyn write goes to the primary (the first platform)."""
SEQ_WRITES_PER_S = 4.0
OTHER_WRITES_PER_S = 6.0
UPLOAD_EVERY_S = 10.0
QUERY_EVERY_S = 1.0
RSS_EVERY_S = 3.0
WARMUP_FRACTION = 0.25
RSS_GROWTH_LIMIT = 0.10
SUITE = "soak"
SEQ_PATH = "/db/soak/seq.json"

pytestmark = [
    pytest.mark.long,
    pytest.mark.slow,
    pytest.mark.timeout(int(SOAK_SECONDS * 2 + 600)),
]


@dataclass
class Load:
    """What the load did and every fault it met, shared by its threads and coroutines."""

    cluster: Cluster
    base: str
    want: list[tuple[Any, ...]]
    stop: threading.Event = field(default_factory=threading.Event)
    done: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    rss: list[tuple[float, list[int]]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def seen(self, what: str, r: httpx.Response) -> httpx.Response:
        """Count the status; a 5xx (or any status the caller did not expect) is a problem."""
        self.statuses[r.status_code] += 1
        if r.status_code >= 500:
            self.problems.append(f"{what}: {r.status_code} {r.text[:300]}")
        return r

    def pause(self, seconds: float) -> bool:
        """Sleep unless stopped; True while the load should go on."""
        return not self.stop.wait(seconds)

    # --- the threads -------------------------------------------------------------------

    def uploads(self, tmp: Path) -> None:
        urls, k = self.cluster.urls, 0
        while self.pause(UPLOAD_EVERY_S):
            k += 1
            name = f"soak_up_{k}_{uuid.uuid4().hex[:6]}"
            table = seeded_table(20_000, seed=k)
            path = write_parquet(table, tmp / f"{name}.parquet")
            want = oracle(table, "SELECT count(*), sum(id), sum(grp) FROM {t}")
            sql = f"SELECT count(*), sum(id), sum(grp) FROM {name}"
            try:
                with Client(urls[k % 3], self.cluster.signer.issue("alice"), timeout=60) as c:
                    c.upload(path, name, part_size=256 * 1024, parallel=2, timeout=300)
                    other = urls[(k + 1) % 3]
                    got = wait_for(
                        lambda o=other, q=sql: self._rows(o, q), f"{name} on {other}", 60
                    )
                    if got != want:
                        self.problems.append(f"upload {name}: {got} != DuckDB's {want}")
                    c.delete(name)
            except (PlatformError, httpx.HTTPError, AssertionError) as exc:
                self.problems.append(f"upload {name}: {type(exc).__name__}: {exc}")
            path.unlink()
            self.done["uploads"] += 1

    def _rows(self, url: str, sql: str) -> list[tuple[Any, ...]] | None:
        r = self.seen(
            "query",
            httpx.post(
                f"{url}/api/lake/query",
                json={"sql": sql},
                headers=self.cluster.user(),
                timeout=120,
            ),
        )
        if r.status_code == 400 and "no dataset named" in r.text:
            return None  # gossip has not told this platform yet
        if r.status_code != 200:
            self.problems.append(f"query on {url}: {r.status_code} {r.text[:300]}")
            return None
        return sorted(tuple(row) for row in r.json()["rows"])

    def queries(self) -> None:
        sql, k = ORACLE.format(t=self.base), 0
        while self.pause(QUERY_EVERY_S):
            k += 1
            got = self._rows(self.cluster.urls[k % 3], sql)
            if got is not None and got != self.want:
                self.problems.append(f"query {k}: not DuckDB's answer ({got[:2]}...)")
            self.done["queries"] += 1

    def jobs(self) -> None:
        urls, k = self.cluster.urls, 0
        h = self.cluster.user()
        while self.pause(1.0):
            k += 1
            url = urls[k % 3]
            r = self.seen(
                "job",
                httpx.post(
                    f"{url}/api/jobs",
                    json={"pipeline": PIPELINE(self.base)},
                    headers=h,
                    timeout=30,
                ),
            )
            if r.status_code != 202:
                self.problems.append(f"job submit: {r.status_code} {r.text[:300]}")
                continue
            job_id = r.json()["id"]
            state = "running"
            while state not in ("succeeded", "failed", "cancelled") and self.pause(0.5):
                j = self.seen("job", httpx.get(f"{url}/api/jobs/{job_id}", headers=h, timeout=30))
                state = j.json()["state"] if j.status_code == 200 else state
            if state == "running":
                break  # stopped while it ran: not counted
            if state != "succeeded":
                self.problems.append(f"job {job_id}: {state}: {j.text[:300]}")
            elif job_rows(self.cluster, url, job_id) != self.want:
                self.problems.append(f"job {job_id}: not DuckDB's rows")
            self.done["jobs"] += 1

    def sample_rss(self) -> None:
        pids = [n.pid for n in self.cluster.nodes]
        while True:
            self.rss.append((time.monotonic() - self.started, [tree_rss(p) for p in pids]))
            if not self.pause(RSS_EVERY_S):
                return

    # --- Elkyn writes (asyncio) --------------------------------------------------------

    async def writes(self, client: httpx.AsyncClient, until: float) -> int:
        """The sequence at SEQ_PATH on the SSE platforms and other writes; returns the last."""
        headers = self.cluster.admin()
        seq_url = self.cluster.urls[WRITE_NODE] + SEQ_PATH
        other = self.cluster.urls[WRITE_NODE]
        seq, k, t0 = 0, 0, time.monotonic()
        per_tick = OTHER_WRITES_PER_S / SEQ_WRITES_PER_S
        owed = 0.0
        while time.monotonic() < until:
            seq += 1
            r = self.seen("seq write", await client.put(seq_url, json=seq, headers=headers))
            if r.status_code != 200:
                self.problems.append(f"seq write {seq}: {r.status_code} {r.text[:200]}")
            owed += per_tick
            while owed >= 1:
                owed -= 1
                k += 1
                url = f"{other}/db/soak/misc/m{k % 100}.json"
                body = {"k": k, "at": time.time()}
                r = self.seen("write", await client.put(url, json=body, headers=headers))
                if r.status_code != 200:
                    self.problems.append(f"write {k}: {r.status_code} {r.text[:200]}")
            self.done["elkyn writes"] = seq + k
            await asyncio.sleep(max(0.0, t0 + seq / SEQ_WRITES_PER_S - time.monotonic()))
        return seq


async def _soak(load: Load, tmp: Path) -> tuple[list[Subscriber], int]:
    urls = load.cluster.urls
    headers = load.cluster.admin()  # the admin is not limited per user (ELKYN_MAX_STREAMS_PER_USER)
    limits = httpx.Limits(max_connections=SUBSCRIBERS + 20, max_keepalive_connections=20)
    timeout = httpx.Timeout(30.0, read=60.0)  # keep-alive every 10 s: a silent minute is a fault
    async with (
        httpx.AsyncClient(limits=limits, timeout=timeout) as streams,
        httpx.AsyncClient(timeout=30) as writer,
    ):
        r = await writer.put(urls[WRITE_NODE] + SEQ_PATH, json=0, headers=headers)
        assert r.status_code == 200, r.text
        subs = [
            Subscriber(urls[SSE_NODES[i % len(SSE_NODES)]] + SEQ_PATH) for i in range(SUBSCRIBERS)
        ]
        tasks = [asyncio.create_task(watch(streams, s, headers)) for s in subs]
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in subs)), 180)
        opening = [s.errors for s in subs if s.errors]
        assert not opening, f"{len(opening)} streams failed to open: {opening[:3]}"
        load.started = time.monotonic()
        threads = [
            asyncio.to_thread(load.uploads, tmp),
            asyncio.to_thread(load.queries),
            asyncio.to_thread(load.jobs),
            asyncio.to_thread(load.sample_rss),
        ]
        background = asyncio.gather(*threads)
        try:
            last = await load.writes(writer, load.started + SOAK_SECONDS)
        finally:
            load.stop.set()
            await background
        # every subscriber gets to the last value (the server sends it; lost is lost)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(s.last < last and not s.errors for s in subs):
            await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return subs, last


def test_mixed_load_on_three_platforms(platform_cluster: Cluster, tmp_path: Path) -> None:
    table = seeded_table(100_000, seed=99)
    base = f"soak_base_{uuid.uuid4().hex[:6]}"
    with Client(platform_cluster.urls[0], platform_cluster.signer.issue("alice")) as c:
        c.upload(write_parquet(table, tmp_path / "base.parquet"), base, part_size=256 * 1024)
    load = Load(platform_cluster, base, oracle(table))
    for url in platform_cluster.urls:
        wait_for(lambda u=url: load._rows(u, ORACLE.format(t=base)), f"{base} on {url}")
    subs, last = run_async(_soak(load, tmp_path))

    lost = sum(s.lost for s in subs)
    back = sum(s.back for s in subs)
    behind = [s for s in subs if s.last != last]
    errors = [e for s in subs for e in s.errors]
    events = sum(s.events for s in subs)
    fivexx = sum(n for code, n in load.statuses.items() if code >= 500)
    growth = _rss_growth(load.rss)
    mode_s = f"{SOAK_SECONDS:g} s, {len(platform_cluster.nodes)} platforms"
    figures: list[tuple[str, str, float | str, str, str, bool | None]] = [
        ("duration", "soak length", mode_s, "", "120 s bounded / 1800 s full", None),
        ("subscribers", "SSE subscribers (Elkyn on SSE_NODES)", SUBSCRIBERS, "", "500", None),
        ("events", "SSE events delivered", events, "", "(reported)", None),
        ("events-lost", "SSE events lost or out of order", lost + back, "", "0", lost + back == 0),
        ("fivexx", "5xx answers", fivexx, "", "0", fivexx == 0),
        (
            "operations",
            "uploads / queries / jobs / Elkyn writes done",
            " / ".join(str(load.done[k]) for k in ("uploads", "queries", "jobs", "elkyn writes")),
            "",
            "(reported)",
            None,
        ),
        (
            "rss",
            "RSS per platform after warm-up → at the end (MiB)",
            _rss_text(load.rss),
            "",
            "(reported)",
            None,
        ),
        (
            "rss-growth",
            "RSS growth after warm-up (worst platform, process and children)",
            round(max(growth) * 100, 1) if growth else "n/a",
            "%",
            f"<= {RSS_GROWTH_LIMIT * 100:g} %",
            bool(growth) and max(growth) <= RSS_GROWTH_LIMIT,
        ),
    ]
    for key, label, value, unit, target, met in figures:
        record(SUITE, key, label, value, unit=unit, target=target, met=met)

    assert not load.problems, f"{len(load.problems)} problems: {load.problems[:5]}"
    assert fivexx == 0, load.statuses
    assert not errors, f"{len(errors)} stream faults: {errors[:5]}"
    assert lost == 0, f"{lost} events lost"
    assert back == 0, f"{back} values went back"
    assert not behind, f"{len(behind)} subscribers ended before {last}: {behind[0]}"
    assert all(load.done[k] > 0 for k in ("uploads", "queries", "jobs")), load.done
    assert growth, f"too few RSS samples after warm-up: {load.rss}"
    assert max(growth) <= RSS_GROWTH_LIMIT, (growth, load.rss)


def _rss_growth(samples: list[tuple[float, list[int]]]) -> list[float]:
    """Per platform: the median of the last three samples over the median of the first three
    after warm-up, minus one; empty when there are not six samples after warm-up."""
    after = [rss for t, rss in samples if t >= WARMUP_FRACTION * SOAK_SECONDS]
    if len(after) < 6:
        return []
    return [
        statistics.median(s[i] for s in after[-3:]) / statistics.median(s[i] for s in after[:3]) - 1
        for i in range(len(after[0]))
    ]


def _rss_text(samples: list[tuple[float, list[int]]]) -> str:
    """ "a → b, ..." per platform: the medians _rss_growth compares, in MiB."""
    after = [rss for t, rss in samples if t >= WARMUP_FRACTION * SOAK_SECONDS]
    if len(after) < 6:
        return "n/a"
    return ", ".join(
        f"{statistics.median(s[i] for s in after[:3]) / 2**20:.0f} → "
        f"{statistics.median(s[i] for s in after[-3:]) / 2**20:.0f}"
        for i in range(len(after[0]))
    )
