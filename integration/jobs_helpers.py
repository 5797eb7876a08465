"""Small helpers the job tests share: final job states, auth headers, the pool's workers."""

from __future__ import annotations

from pathlib import Path

FINAL = ("succeeded", "failed", "cancelled")


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of ``token``."""
    return {"authorization": f"Bearer {token}"}


def pool_workers(pid: int) -> list[int]:
    """The platform's local pool workers: the children of ``pid`` started by multiprocessing's
    spawn."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(int(child))
    return out
