"""Resident memory of a process and every descendant, read from /proc (Linux only).

The soak samples each platform this way: `platform up` starts worker processes (Elytra's pool),
so the parent's RSS alone would miss memory that grows in a child.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["descendants", "tree_rss"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _parents() -> dict[int, int]:
    """pid → parent pid of every process now (those that vanish while read are skipped)."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after the last ")"
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0  # ended between the listing and this read


def tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and its descendants now (0 for a process that is gone)."""
    return sum(_rss(pid) for pid in descendants(root))
