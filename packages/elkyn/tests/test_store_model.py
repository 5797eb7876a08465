"""Stateful test: the store against a plain dict model of Firebase's tree semantics."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from elkyn import Store

LONG = "k" * 600  # longer than LMDB's 511-byte key limit on its own
KEYS = ["a", "b", "c", "0", "1", "2", LONG, "é"]

keys = st.sampled_from(KEYS)
paths = st.lists(keys, min_size=1, max_size=4).map(tuple)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.dictionaries(keys, inner, max_size=4), st.lists(inner, max_size=4)),
    max_leaves=12,
)


# ---- the model: nested dicts, written independently of the store's code ----
def m_norm(v: Any) -> Any:
    if isinstance(v, list):
        v = {str(i): x for i, x in enumerate(v)}
    if isinstance(v, dict):
        out = {k: m_norm(x) for k, x in v.items()}
        out = {k: x for k, x in out.items() if x is not None}
        return out or None
    return v


def m_set(tree: Any, path: tuple[str, ...], v: Any) -> Any:
    if not path:
        return v
    if v is None and not isinstance(tree, dict):
        return tree  # deleting below a scalar (or nothing) changes nothing
    node = dict(tree) if isinstance(tree, dict) else {}
    child = m_set(node.get(path[0]), path[1:], v)
    if child is None:
        node.pop(path[0], None)
    else:
        node[path[0]] = child
    return node or None


def m_get(tree: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(k)
    return tree


def m_wire(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    ints = []
    for k in v:
        if k.isdigit() and k.isascii() and (k == "0" or not k.startswith("0")):
            ints.append(int(k))
        else:
            return {k: m_wire(x) for k, x in v.items()}
    top = max(ints)
    if len(v) * 2 > top + 1:
        out: list[Any] = [None] * (top + 1)
        for k, x in v.items():
            out[int(k)] = m_wire(x)
        return out
    return {k: m_wire(x) for k, x in v.items()}


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="elkyn-model-"))
        self.store = Store(self.dir / "db", map_size=1 << 20)  # small: forces map growth
        self.model: Any = None

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(path=paths, value=values)
    def set(self, path: tuple[str, ...], value: Any) -> None:
        self.store.set("/" + "/".join(path), value)
        self.model = m_set(self.model, path, m_norm(value))

    @rule(path=paths)
    def delete(self, path: tuple[str, ...]) -> None:
        self.store.delete("/" + "/".join(path))
        self.model = m_set(self.model, path, None)

    @rule(
        base=st.lists(keys, max_size=2).map(tuple),
        updates=st.dictionaries(st.lists(keys, min_size=1, max_size=2).map(tuple), values),
    )
    def update(self, base: tuple[str, ...], updates: dict[tuple[str, ...], Any]) -> None:
        rels = sorted(updates)
        if any(a == b[: len(a)] for a, b in itertools.pairwise(rels)):
            return  # overlapping paths are refused; tested separately
        self.store.update("/" + "/".join(base), {"/".join(k): v for k, v in updates.items()})
        for rel, v in updates.items():
            self.model = m_set(self.model, base + rel, m_norm(v))

    @rule(path=paths, value=values)
    def push(self, path: tuple[str, ...], value: Any) -> None:
        key = self.store.push("/" + "/".join(path), value)
        self.model = m_set(self.model, (*path, key), m_norm(value))

    @rule(path=paths, delta=st.integers(-5, 5))
    def transaction(self, path: tuple[str, ...], delta: int) -> None:
        def bump(v: Any) -> Any:
            return (v if isinstance(v, int) and not isinstance(v, bool) else 0) + delta

        result = self.store.transaction("/" + "/".join(path), bump)
        assert result.committed
        self.model = m_set(self.model, path, bump(m_get(self.model, path)))

    @precondition(lambda self: self.model is not None)
    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.dir / "db", map_size=1 << 20)

    @rule(path=paths)
    def read_path(self, path: tuple[str, ...]) -> None:
        assert self.store.get("/" + "/".join(path)) == m_wire(m_get(self.model, path))

    @rule(path=st.lists(keys, max_size=3).map(tuple))
    def shallow(self, path: tuple[str, ...]) -> None:
        got = self.store.get("/" + "/".join(path), shallow=True)
        want = m_get(self.model, path)
        assert got == ({k: True for k in want} if isinstance(want, dict) else want)

    @invariant()
    def whole_tree_matches(self) -> None:
        assert self.store.get("/") == m_wire(self.model)


#: `nox -s long` (PLATFORM_TESTS_LONG=1): 60 runs of the machine; CI's default run: 30, with
#: the same rules and invariants (a fresh seed each run).
LONG_RUN = os.environ.get("PLATFORM_TESTS_LONG") == "1"
StoreMachine.TestCase.settings = settings(
    max_examples=60 if LONG_RUN else 30, stateful_step_count=25, deadline=None
)
TestStoreModel = pytest.mark.long(StoreMachine.TestCase)
