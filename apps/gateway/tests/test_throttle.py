"""The login throttle's reservations, on a state in memory and a clock the test sets.

The oracle is the rule written out here: per (name, client) PAIR_LIMIT, per client
CLIENT_LIMIT, per name NAME_LIMIT from clients that never signed in as that name; counted
before the check, atomically, so concurrent attempts never get more than the limit.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from platform_gateway.memstate import MemoryState
from platform_gateway.throttle import (
    CLIENT_LIMIT,
    NAME_LIMIT,
    PAIR_LIMIT,
    WINDOW_SECONDS,
    CheckGate,
    TooManyLogins,
    client_key,
    prune,
    reserve,
    succeeded,
)

T0 = 1_000_000 * WINDOW_SECONDS + 5.0  # 5 s into a window


def _admitted(state: MemoryState, name: str, host: str, n: int, now: float = T0) -> int:
    ok = 0
    for _ in range(n):
        try:
            reserve(state, name, host, now)
            ok += 1
        except TooManyLogins:
            pass
    return ok


def test_one_address_gets_pair_limit_attempts_then_429_until_the_window_ends() -> None:
    state = MemoryState()
    delays = [reserve(state, "alice", "10.0.0.1", T0).delay for _ in range(PAIR_LIMIT)]
    assert delays == [0.0, 0.0, 0.5, 1.0, 2.0]  # a delay that grows
    with pytest.raises(TooManyLogins) as refused:
        reserve(state, "alice", "10.0.0.1", T0)
    assert refused.value.retry_after == WINDOW_SECONDS - 5
    # Another address is not held back by this one's failures: no lockout of alice.
    assert reserve(state, "alice", "10.0.0.2", T0).delay == 0.0
    # The next window starts afresh.
    assert reserve(state, "alice", "10.0.0.1", T0 + WINDOW_SECONDS).delay == 0.0


def test_two_hundred_guesses_from_one_address_leave_alice_her_login_elsewhere() -> None:
    state = MemoryState()
    assert _admitted(state, "alice", "10.0.0.1", 200) == PAIR_LIMIT
    r = reserve(state, "alice", "10.0.0.2", T0)  # never failed, never signed in before
    succeeded(state, r, T0)
    assert r.delay == 0.0


def test_a_burst_over_many_addresses_gets_the_name_limit_but_known_clients_pass() -> None:
    state = MemoryState()
    home = reserve(state, "alice", "10.9.9.9", T0 - WINDOW_SECONDS)  # signed in last window
    succeeded(state, home, T0 - WINDOW_SECONDS)
    admitted = sum(_admitted(state, "alice", f"10.1.0.{i}", 1) for i in range(30))
    assert admitted == NAME_LIMIT
    with pytest.raises(TooManyLogins):
        reserve(state, "alice", "10.2.0.1", T0)  # a new address: held back
    assert reserve(state, "alice", "10.9.9.9", T0).delay == 0.0  # her own: not
    assert reserve(state, "bob", "10.2.0.1", T0).delay == 0.0  # other names: not


def test_one_address_trying_many_names_hits_the_client_limit() -> None:
    state = MemoryState()
    admitted = sum(_admitted(state, f"user{i}", "10.0.0.7", 1) for i in range(40))
    assert admitted == CLIENT_LIMIT


def test_a_success_clears_the_pair_and_gives_back_the_client_reservation() -> None:
    state = MemoryState()
    for _ in range(PAIR_LIMIT - 1):
        reserve(state, "carol", "10.0.0.3", T0)
    r = reserve(state, "carol", "10.0.0.3", T0)
    succeeded(state, r, T0)
    assert reserve(state, "carol", "10.0.0.3", T0).pair_count == 1


def test_concurrent_reservations_never_exceed_the_limit() -> None:
    state = MemoryState()

    def one(i: int) -> bool:
        try:
            reserve(state, "dave", f"10.3.0.{i}", T0)
            return True
        except TooManyLogins:
            return False

    with ThreadPoolExecutor(16) as pool:
        admitted = sum(pool.map(one, range(60)))
    assert admitted == NAME_LIMIT


def test_ipv6_clients_count_by_their_64() -> None:
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1")
    assert client_key("2001:db8::1") != client_key("2001:db8:0:1::1")
    assert client_key("::ffff:10.0.0.1") == client_key("10.0.0.1")


def test_prune_drops_ended_windows_only() -> None:
    state = MemoryState()
    reserve(state, "erin", "10.0.0.4", T0 - 3 * WINDOW_SECONDS)
    reserve(state, "erin", "10.0.0.4", T0)
    prune(state, T0)
    windows = state.read("/throttle/w")
    assert list(windows) == [str(int(T0 // WINDOW_SECONDS))]


def test_the_check_gate_admits_checks_plus_queue_and_refuses_the_rest() -> None:
    async def main() -> tuple[int, int]:
        gate = CheckGate(2, 3)
        release = asyncio.Event()
        admitted = 0

        async def login() -> None:
            nonlocal admitted
            async with gate.admit():
                admitted += 1
                await release.wait()

        tasks = [asyncio.create_task(login()) for _ in range(9)]
        await asyncio.sleep(0.05)
        running = admitted
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        refused = sum(isinstance(r, TooManyLogins) for r in results)
        return running, refused

    running, refused = asyncio.run(main())
    assert running == 2  # at once
    assert refused == 4  # 9 - (2 running + 3 waiting)
