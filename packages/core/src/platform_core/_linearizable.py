"""A linearizability checker for single-key registers (Wing & Gong's search with
Lowe's memo, as Knossos and porcupine do), independent of the code under test.

An operation is a write of a value, a read that returned one, or a compare-and-set (``"cas"``,
its value the pair ``(expected, new)``: it took effect, writing ``new``, only because the
register held ``expected``: a write under an ``if-match`` ETag that succeeded), with the times
it was invoked and completed (``None``: its outcome is unknown, a timeout or a 503 that may have applied: it
may take effect at any time after its invocation, or never). A history is linearizable when
the operations can be put in one order that respects real time (an operation that completed
before another was invoked comes first) in which every read returns the latest write.

Public as ``platform_core.testing.linearizable`` (and ``Op``): Elkyn's failover tests and the
platform's chaos test (integration/) check their histories with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Op", "linearizable"]


@dataclass(frozen=True)
class Op:
    """One operation on a register: ``kind`` is ``"write"``, ``"read"`` or ``"cas"`` (``value``
    then is ``(expected, new)``)."""

    kind: str
    value: Any
    invoke: float
    complete: float | None  # None: the outcome is unknown


def linearizable(ops: list[Op], initial: Any = None) -> bool:
    """Whether ``ops`` on one register starting at ``initial`` are linearizable (values must
    be hashable). Depth-first over (operations taken, register value), each state once."""
    read = {o.value for o in ops if o.kind == "read" and o.complete is not None}
    read |= {o.value[0] for o in ops if o.kind == "cas"}
    # an operation of unknown outcome may never have happened: only a write whose value some
    # read (or compare-and-set) saw can matter (dropping the rest keeps the search from
    # doubling per timeout)
    ops = [o for o in ops if o.complete is not None or (o.kind != "read" and _new(o) in read)]
    ops.sort(key=lambda o: o.invoke)
    inf = float("inf")
    ends = [inf if o.complete is None else o.complete for o in ops]
    must = sum(1 << i for i, o in enumerate(ops) if o.complete is not None)
    seen: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = [(0, initial)]
    while stack:
        done, value = stack.pop()
        if done & must == must:
            return True
        if (done, value) in seen:
            continue
        seen.add((done, value))
        pending = [i for i in range(len(ops)) if not done >> i & 1]
        first_end = min(ends[i] for i in pending)
        for i in pending:
            op = ops[i]
            if op.invoke > first_end:  # some pending operation completed before this began
                break  # (ops are sorted by invocation: none later can go first either)
            if op.kind == "read" and op.value != value:
                continue
            if op.kind == "cas" and op.value[0] != value:
                continue
            stack.append((done | 1 << i, _new(op)))
    return False


def _new(op: Op) -> Any:
    """The register's value after ``op``."""
    return op.value[1] if op.kind == "cas" else op.value
