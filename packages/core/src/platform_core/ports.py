"""Ports kept over restarts, picked where no outgoing connection takes them.

A port bound as port 0 is one of the kernel's ephemeral ports, the range every outgoing
connection of every process draws its local port from. A server that must come back on the
same port (an Elkyn election member's Raft address, which its peers remember) can then find
it held by some client's connection and fail to start. Such ports are picked at random below
the ephemeral range instead (and above Ray's default worker ports, 10002-19999).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["PICK_FROM", "bind_lasting", "ephemeral_low"]

PICK_FROM = 20000
"""The lowest port picked: Ray's default worker ports end at 19999."""
_LINUX_EPHEMERAL_LOW = 32768
_TRIES = 200
_random = random.SystemRandom()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _LINUX_EPHEMERAL_LOW


def bind_lasting(sock: socket.socket, host: str) -> int:
    """Bind ``sock`` to a free port of ``host`` below the ephemeral range and return it; port
    0 (the kernel's pick) only when that range is empty or every try is taken."""
    address = host.strip("[]")
    high = min(_LINUX_EPHEMERAL_LOW, ephemeral_low())
    for _ in range(_TRIES) if high > PICK_FROM else ():
        port = _random.randrange(PICK_FROM, high)
        try:
            sock.bind((address, port))
        except OSError:
            continue
        return port
    sock.bind((address, 0))
    return int(sock.getsockname()[1])
