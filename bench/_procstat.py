"""A process's memory from ``/proc`` (Linux): its RSS and peak, and resetting the peak.

Standard library only: the Daft peer's server imports it from its own virtual environment.
"""

from __future__ import annotations


def status_kib(key: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``: resident now, ``VmHWM``: its peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def reset_peak_rss(pid: int | str = "self") -> bool:
    """VmHWM back to the current RSS (Linux >= 4.0), so a peak read after is this run's;
    False where the kernel does not allow it."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
