"""The failed-login throttle, on a clock the test moves."""

from __future__ import annotations

from platform_gateway.throttle import FailureThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_refused_after_limit_failures_until_they_age_out() -> None:
    clock = Clock()
    throttle = FailureThrottle(3, 60, clock=clock)
    for _ in range(2):
        throttle.failed("alice")
        clock.now += 10
    assert throttle.retry_after("alice") == 0
    throttle.failed("alice")  # the third, at t=20 (the first was at t=0)
    assert throttle.retry_after("alice") == 40
    assert throttle.retry_after("bob") == 0
    clock.now += 39.5
    assert throttle.retry_after("alice") == 1
    clock.now += 0.5  # the first failure is 60 s old: one try again
    assert throttle.retry_after("alice") == 0
    throttle.failed("alice")
    assert throttle.retry_after("alice") == 10


def test_forget_clears_a_key() -> None:
    throttle = FailureThrottle(2, 60, clock=Clock())
    throttle.failed("alice")
    throttle.failed("alice")
    assert throttle.retry_after("alice") > 0
    throttle.forget("alice")
    assert throttle.retry_after("alice") == 0


def test_memory_is_bounded_dropping_the_stalest_key() -> None:
    clock = Clock()
    throttle = FailureThrottle(1, 60, max_keys=3, clock=clock)
    for name in ("a", "b", "c", "d"):
        throttle.failed(name)
        clock.now += 1
    assert throttle.retry_after("a") == 0  # dropped to make room
    assert all(throttle.retry_after(name) > 0 for name in ("b", "c", "d"))
    assert len(throttle._failures) == 3
