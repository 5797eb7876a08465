"""Memory of process trees around one query, from ``/proc``: each process's peak above its
memory at the query's start (issue 35: "the coordinator's and each node's RSS above start").

A Ray worker maps the node's object store (shared memory): pages of the objects it made or
read count in its RSS (``RssShmem``), though they are the store's, bounded by its own size,
not the task's. So a process's memory is read in two parts: its own (``RssAnon`` + ``RssFile``:
its heap and the files it maps) and the shared memory it maps. A thread samples both for
every process under the roots (a platform, its pool workers, its Ray node's raylet and
workers) every ``every`` seconds while the query runs; the kernel's own peak (``VmHWM``, both
parts together, reset at the start by ``_procstat.reset_peak_rss``) is read at the end too,
as it sees spikes between samples. A process born during the query has no start: its whole
memory counts (an upper bound). Standard library only, like ``_procstat``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from _procstat import reset_peak_rss

_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


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


def _status(pid: int) -> dict[str, int] | None:
    """``/proc/<pid>/status``'s memory figures in KiB, or None (gone, or a kernel thread)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in _KEYS:
                    out[key] = int(line.split()[1])
    except OSError:
        return None
    return out if "RssAnon" in out else None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "?"
    return b" ".join(w for w in words if w).decode(errors="replace")[:80]


@dataclass
class _Peak:
    own: int = 0  # RssAnon + RssFile, KiB
    anon: int = 0  # RssAnon alone (heap), KiB
    file: int = 0  # RssFile alone (mapped files: page cache, reclaimable), KiB
    shared: int = 0  # RssShmem, KiB
    hwm: int = 0  # VmHWM at the end, KiB
    name: str = ""


@dataclass
class RssWatch:
    """The process trees under ``roots`` (name -> pid), watched around one query."""

    roots: dict[str, int]
    every: float = 0.05
    _start: dict[int, dict[str, int]] = field(default_factory=dict)  # /proc status at start
    _peaks: dict[int, _Peak] = field(default_factory=dict)
    _owner: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Note every process's memory now, reset its peak, and start sampling."""
        self._stop.set()  # a query that failed left its sampler running
        if self._thread is not None:
            self._thread.join()
        self._start, self._peaks, self._owner = {}, {}, {}
        for name, root in self.roots.items():
            for pid in tree(root):
                st = _status(pid)
                if st is None:
                    continue
                self._start[pid] = st
                self._owner[pid] = name
                reset_peak_rss(pid)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._read()
            self._stop.wait(self.every)

    def _read(self) -> None:
        for name, root in self.roots.items():
            for pid in tree(root):
                st = _status(pid)
                if st is None:
                    continue
                peak = self._peaks.setdefault(pid, _Peak(name=_comm(pid)))
                self._owner.setdefault(pid, name)
                peak.own = max(peak.own, st["RssAnon"] + st["RssFile"])
                peak.anon = max(peak.anon, st["RssAnon"])
                peak.file = max(peak.file, st["RssFile"])
                peak.shared = max(peak.shared, st["RssShmem"])
                peak.hwm = max(peak.hwm, st.get("VmHWM", 0))

    def peaks(self) -> dict[str, dict[str, object]]:
        """Per root (MiB above the start): its own process's peak (``self_mib``: its own
        memory, and its two parts' peaks apart: ``self_anon_mib`` its heap, ``self_file_mib``
        the files it maps; ``self_hwm_mib``: the kernel's peak of all its RSS), the largest own memory
        of a process under it (``child_mib``, which one: ``child``), and the largest shared
        memory one maps (``shared_mib``: the Ray node's object store)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._read()  # the kernel's peaks as the query ended
        out: dict[str, dict[str, object]] = {}
        for name, root in self.roots.items():
            own = hwm = worst = task = shared = anon = mapped = 0.0
            who = ""
            for pid, peak in self._peaks.items():
                if self._owner.get(pid) != name:
                    continue
                at = self._start.get(pid, {})
                above = (peak.own - at.get("RssAnon", 0) - at.get("RssFile", 0)) / 1024
                shared = max(shared, (peak.shared - at.get("RssShmem", 0)) / 1024)
                if pid == root:
                    own, hwm = above, (peak.hwm - at.get("VmRSS", 0)) / 1024
                    anon = (peak.anon - at.get("RssAnon", 0)) / 1024
                    mapped = (peak.file - at.get("RssFile", 0)) / 1024
                    continue
                if _runs_tasks(peak.name):
                    task = max(task, above)
                if above > worst:
                    worst, who = above, peak.name
            out[name] = {
                "self_mib": round(own, 1),
                "self_hwm_mib": round(hwm, 1),
                "self_anon_mib": round(anon, 1),
                "self_file_mib": round(mapped, 1),
                "worker_mib": round(task, 1),
                "child_mib": round(worst, 1),
                "child": who,
                "shared_mib": round(shared, 1),
            }
        return out


def _runs_tasks(command: str) -> bool:
    """Whether a process runs tasks: a Ray worker (``ray::...``) or a pool worker (a
    ``multiprocessing`` child); not Ray's own daemons (the raylet holds the object store)."""
    return command.startswith("ray::") or "multiprocessing" in command
