"""Failed attempts per address: free ones, a growing wait, a block, bounded state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from faregate.auth.throttle import Throttle, ThrottlePolicy, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _throttle(clock: Clock, **policy: Any) -> Throttle:
    return Throttle(ThrottlePolicy(**policy), clock=clock)


def test_free_failures_then_a_doubling_wait_then_a_block(clock: Clock) -> None:
    t = _throttle(clock)
    waits = []
    for _ in range(9):
        assert t.wait("203.0.113.9") is None
        failure = t.failed("203.0.113.9")
        assert not failure.blocked
        waits.append(failure.wait_seconds)
        if failure.wait_seconds:
            assert t.wait("203.0.113.9") == failure.wait_seconds
            clock.now += failure.wait_seconds - 0.5
            assert t.wait("203.0.113.9") == 1  # still waiting
            clock.now += 0.5
    assert waits == [0, 0, 0, 0, 0, 1, 2, 4, 8]
    blocked = t.failed("203.0.113.9")
    assert blocked.blocked and blocked.failures == 10 and blocked.wait_seconds == 900
    assert t.wait("203.0.113.9") == 900
    clock.now += 899
    assert t.wait("203.0.113.9") == 1
    clock.now += 1
    assert t.wait("203.0.113.9") is None
    assert t.failed("203.0.113.9").blocked  # one more failure blocks again at once


def test_the_wait_is_capped(clock: Clock) -> None:
    t = _throttle(clock, free_failures=0, max_wait_seconds=5, block_after=100)
    assert [t.failed("a").wait_seconds for _ in range(6)] == [1, 2, 4, 5, 5, 5]


def test_a_success_forgets_the_failures(clock: Clock) -> None:
    t = _throttle(clock)
    for _ in range(5):
        t.failed("198.51.100.7")
    t.succeeded("198.51.100.7")
    assert len(t) == 0
    assert [t.failed("198.51.100.7").wait_seconds for _ in range(6)] == [0] * 5 + [1]


def test_addresses_are_counted_apart_and_ipv6_by_its_64(clock: Clock) -> None:
    t = _throttle(clock, free_failures=0)
    t.failed("2001:db8:1:2::1")
    assert t.wait("2001:db8:1:2:ffff::9") == 1  # the same /64
    assert t.wait("2001:db8:1:3::1") is None
    assert t.wait("203.0.113.9") is None
    t.failed("::ffff:203.0.113.9")
    assert t.wait("203.0.113.9") == 1
    assert address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("[::1]") == "::/64"
    assert address_key("") == ""


def test_failures_are_forgotten_after_a_quiet_time(clock: Clock) -> None:
    t = _throttle(clock)
    for _ in range(5):
        t.failed("a")
    clock.now += 3600
    assert t.wait("a") is None
    assert len(t) == 0
    for _ in range(5):
        t.failed("b")
    clock.now += 3600
    assert t.failed("b").failures == 1  # expired entries also restart on a new failure


def test_the_state_stays_bounded(clock: Clock) -> None:
    t = _throttle(clock, max_entries=100, free_failures=0)
    t.failed("10.0.0.1")
    for i in range(1000):
        t.failed(f"198.51.{i // 256}.{i % 256}")
        assert len(t) <= 100
    assert t.wait("10.0.0.1") is None  # the oldest went first
    assert t.wait("198.51.3.231") == 1  # the newest is kept


async def test_checks_run_one_at_a_time_per_address() -> None:
    t = Throttle()
    order: list[str] = []

    async def check(address: str, name: str) -> None:
        async with t.one_at_a_time(address):
            order.append(f"{name} in")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            order.append(f"{name} out")

    await asyncio.gather(check("a", "1"), check("a", "2"), check("b", "3"))
    assert order.index("1 out") < order.index("2 in")
    assert order.index("3 in") < order.index("1 out")  # another address does not wait
    assert t._turns == {}  # no lock is kept once nobody checks
