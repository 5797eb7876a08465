"""An Elkyn SSE subscriber that checks a sequence: every value one more than the last.

The writer PUTs 1, 2, 3, ... at one path; each subscriber streams that path and counts the
values it never saw (``lost``) and those that went back (``back``). Lines are split by hand
on bytes (not httpx's line decoder): 500 of these share one core with the servers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import httpx

__all__ = ["Subscriber", "watch"]


@dataclass
class Subscriber:
    """What one stream saw: its first value (the snapshot), the last, and the faults."""

    url: str
    first: int | None = None
    last: int = 0
    events: int = 0
    lost: int = 0
    back: int = 0
    errors: list[str] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def see(self, value: object) -> None:
        """Take one streamed value of the sequence path (None: nothing written yet)."""
        seq = 0 if value is None else value
        if not isinstance(seq, int):
            self.errors.append(f"not a sequence number: {value!r}")
            return
        self.events += 1
        if self.first is None:
            self.first = seq
        elif seq <= self.last:
            self.back += 1
        elif seq > self.last + 1:
            self.lost += seq - self.last - 1
        self.last = max(self.last, seq)


async def watch(client: httpx.AsyncClient, sub: Subscriber, headers: dict[str, str]) -> None:
    """Stream ``sub.url`` until cancelled (the caller's way to end it); events and faults go to
    ``sub``. The server ending the stream is a fault: nothing here ends it but the caller."""
    try:
        async with client.stream(
            "GET", sub.url, headers={**headers, "accept": "text/event-stream"}
        ) as r:
            if r.status_code != 200:
                sub.errors.append(f"{r.status_code}: {(await r.aread())[:200]!r}")
                return
            buf, event = b"", b""
            async for chunk in r.aiter_raw():
                *lines, buf = (buf + chunk).split(b"\n")
                for line in lines:
                    if line.startswith(b"event: "):
                        event = line[7:].strip()
                    elif line.startswith(b"data: ") and event in (b"put", b"patch"):
                        body = json.loads(line[6:])
                        if body.get("path") != "/":
                            sub.errors.append(f"a change below the watched path: {body!r}")
                        else:
                            sub.see(body.get("data"))
                        sub.opened.set()
                    elif line.startswith(b"data: ") and event not in (b"keep-alive", b""):
                        sub.errors.append(f"event {event!r}: {line[:200]!r}")
            sub.errors.append("the server ended the stream")
    except httpx.HTTPError as exc:
        sub.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        sub.opened.set()  # a stream that failed to open must not hold up the others
