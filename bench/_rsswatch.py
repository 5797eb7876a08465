"""Memory of process trees around one query, from ``/proc``: each process's peak above its RSS
at the query's start (issue 35: "the coordinator's and each node's RSS above start").

Before a query :meth:`RssWatch.start` reads every process under the roots (a platform, its
pool workers, its Ray node's raylet and workers), notes each one's RSS and resets its peak
(``VmHWM``, ``_procstat.reset_peak_rss``); after it :meth:`RssWatch.peaks` reads the peaks
again. A process born during the query has no start: its whole peak is counted (an upper
bound). Standard library only, like ``_procstat``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from _procstat import reset_peak_rss, status_kib


def _children() -> dict[int, list[int]]:
    """Every process's children, from ``/proc/<pid>/stat``'s parent field."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree(root: int) -> list[int]:
    """``root`` and all its descendants (alive now)."""
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "?"
    text = b" ".join(w for w in words if w).decode(errors="replace")
    return text[:80]


@dataclass
class RssWatch:
    """The process trees under ``roots`` (name -> pid), watched around one query."""

    roots: dict[str, int]
    _start: dict[int, int] = field(default_factory=dict)

    def start(self) -> None:
        """Note every process's RSS now and reset its peak."""
        self._start = {}
        for root in self.roots.values():
            for pid in tree(root):
                try:
                    self._start[pid] = status_kib("VmRSS", pid)
                    reset_peak_rss(pid)
                except (OSError, RuntimeError):
                    continue  # a kernel thread or a process gone meanwhile

    def peaks(self) -> dict[str, dict[str, object]]:
        """Per root: its own peak above start (MiB), the largest of its descendants' (MiB) and
        which process that was; descendants born during the query count whole."""
        out: dict[str, dict[str, object]] = {}
        for name, root in self.roots.items():
            own, worst, who = 0.0, 0.0, ""
            for pid in tree(root):
                try:
                    hwm = status_kib("VmHWM", pid)
                except (OSError, RuntimeError):
                    continue
                above = (hwm - self._start.get(pid, 0)) / 1024
                if pid == root:
                    own = above
                elif above > worst:
                    worst, who = above, _comm(pid)
            out[name] = {"self_mib": round(own, 1), "child_mib": round(worst, 1), "child": who}
        return out
