"""The linearizability checker (``platform_core.testing.linearizable``) on small histories whose answer is known:
it must accept what is linearizable and reject what is not, or it proves nothing."""

from __future__ import annotations

from platform_core.testing import Op, linearizable


def w(value: str | None, invoke: float, complete: float | None) -> Op:
    return Op("write", value, invoke, complete)


def r(value: str | None, invoke: float, complete: float) -> Op:
    return Op("read", value, invoke, complete)


def test_sequential_and_concurrent_histories() -> None:
    assert linearizable([w("a", 0, 1), r("a", 2, 3)])
    assert not linearizable([w("a", 0, 1), w("b", 2, 3), r("a", 4, 5)])  # a stale read
    assert linearizable([w("a", 0, 3), w("b", 1, 2), r("a", 4, 5)])  # concurrent: a last
    assert linearizable([w("a", 0, 3), w("b", 1, 2), r("b", 4, 5)])
    assert not linearizable([r("z", 0, 1)])  # never written
    assert linearizable([r(None, 0, 1)])  # the initial value
    assert not linearizable([w("a", 0, 1), r(None, 2, 3)])  # an acknowledged write lost
    # a read sees the new value, a later one the old again: not a register
    assert not linearizable([w("a", 0, 1), w("b", 2, 6), r("b", 3, 4), r("a", 4.5, 5)])


def test_writes_of_unknown_outcome_may_apply_late_or_never() -> None:
    assert linearizable([w("a", 0, 1), w("x", 2, None), r("a", 3, 4)])  # never applied
    assert linearizable([w("a", 0, 1), w("x", 2, None), r("x", 9, 10)])  # applied late
    # seen, then gone without any write bringing the old value back: a lost write
    assert not linearizable([w("a", 0, 1), w("x", 2, None), r("x", 3, 4), r("a", 5, 6)])
    assert linearizable(
        [w("a", 0, 1), w("x", 2, None), w("a", 2.5, None), r("x", 3, 4), r("a", 5, 6)]
    )


def cas(expected: str | None, new: str, invoke: float, complete: float | None) -> Op:
    return Op("cas", (expected, new), invoke, complete)


def test_compare_and_set_applies_only_on_the_value_it_expected() -> None:
    assert linearizable([cas(None, "a", 0, 1), cas("a", "b", 2, 3), r("b", 4, 5)])
    # two compare-and-sets from the same value both succeeded: one of them saw a stale one
    assert not linearizable([w("a", 0, 1), cas("a", "b", 2, 3), cas("a", "c", 2, 3)])
    # the second expected a value that an acknowledged write had already replaced
    assert not linearizable([cas(None, "a", 0, 1), w("x", 2, 3), cas("a", "b", 4, 5)])
    assert linearizable([cas(None, "a", 0, 1), w("x", 2, 5), cas("a", "b", 3, 4), r("x", 6, 7)])
    # of unknown outcome: another compare-and-set that expected its value shows it applied
    assert linearizable([cas(None, "a", 0, None), cas("a", "b", 2, 3)])
    assert not linearizable([cas(None, "a", 0, None), cas("a", "b", 2, 3), r("a", 4, 5)])
