"""Where a job's tasks run among the nodes holding their chunks: each task to a node with the
most of its own chunks, the load (bytes per slot) kept even. Ray's rule for the
platforms' Ray nodes (:mod:`.ray`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..chunkrefs import chunk_shas
from ..task import Task

__all__ = ["place"]


def place(
    tasks: Sequence[Task],
    me: str,
    peers: Sequence[str],
    holds: Callable[[str, str], bool],
    slots: dict[str, int],
    *,
    complete: bool = False,
) -> dict[str, str]:
    """Task id -> node id: each chunk-only task to a node holding the most of its own chunks,
    among those the least loaded (bytes per slot); every other task to ``me``. ``complete``:
    only a node holding every chunk the task reads (its broadcast sides too) takes it, else
    it goes to ``me`` (for nodes that cannot fetch what they lack: Ray's). Bigger tasks
    are placed first, so the balance ends even. A task's own chunks are those not every task
    of its stage reads, nor its broadcast sides (``Task.shared_files``): a broadcast join's
    small side, which a node lacking it fetches once. Counting them drew every task of TPC-H
    q07 to the one platform holding all the small tables (the coordinator, through which
    they were uploaded), with the peers idle, and both one-task stages of q02 to one peer's
    single worker. They break ties of load."""
    load = dict.fromkeys([me, *peers], 0.0)
    out: dict[str, str] = {}
    shared = _shared_chunks(tasks)
    for task in sorted(tasks, key=lambda t: -t.bytes_in):
        shas = chunk_shas(task)
        if shas is None or not peers:
            out[task.id] = me
            continue
        common = shared.get(task.stage, set())
        if task.shared_files:  # its broadcast sides, even in a stage of one task (q02)
            common = common | set(shas[len(shas) - task.shared_files :])
        held = {
            n: (
                sum(holds(n, s) for s in shas if s not in common),
                sum(holds(n, s) for s in shas if s in common),
            )
            for n in load
        }
        whole = [n for n in load if sum(held[n]) == len(shas)]
        if complete and not whole:
            out[task.id] = me
            continue
        able = whole if complete else list(load)
        most = max(held[n][0] for n in able)
        best = min(
            (n for n in able if held[n][0] == most),
            key=lambda n: ((load[n] + task.bytes_in) / max(1, slots.get(n, 1)), -held[n][1]),
        )
        out[task.id] = best
        load[best] += max(1, task.bytes_in)
    return out


def _shared_chunks(tasks: Sequence[Task]) -> dict[int, set[str]]:
    """Stage -> the chunks every one of its tasks reads, for stages of two tasks or more."""
    by_stage: dict[int, list[set[str]]] = {}
    for task in tasks:
        by_stage.setdefault(task.stage, []).append(set(chunk_shas(task) or ()))
    return {stage: set.intersection(*sets) for stage, sets in by_stage.items() if len(sets) > 1}
