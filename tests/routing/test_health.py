"""Breakers, cooldowns and key pools on a fake clock."""

from __future__ import annotations

from faregate.config import Routing
from faregate.routing.health import BreakerState, DeploymentHealth, KeyPool

S = Routing(
    breaker_failures=3,
    breaker_window_seconds=10,
    breaker_cooldown_seconds=5,
    max_cooldown_seconds=20,
    rate_limit_cooldown_seconds=2,
)


def _fail(h: DeploymentHealth, now: float) -> None:
    h.begin(0)
    h.failed(now)


def test_breaker_opens_after_failures_in_the_window() -> None:
    h = DeploymentHealth(S)
    _fail(h, 0)
    _fail(h, 1)
    assert h.available(1) and h.state is BreakerState.CLOSED
    _fail(h, 2)
    assert h.state is BreakerState.OPEN
    assert not h.available(6.9)
    assert h.recovers_at(3) == 7


def test_failures_outside_the_window_do_not_count() -> None:
    h = DeploymentHealth(S)
    _fail(h, 0)
    _fail(h, 1)
    _fail(h, 20)
    assert h.state is BreakerState.CLOSED


def test_half_open_admits_one_probe_and_closes_on_success() -> None:
    h = DeploymentHealth(S)
    for t in range(3):
        _fail(h, t)
    assert h.available(7.5)
    assert h.state is BreakerState.HALF_OPEN
    h.begin(0)
    assert not h.available(7.6)  # the probe is in flight: nobody else
    h.succeeded(12.0)
    assert h.state is BreakerState.CLOSED and h.available(7.7)


def test_failed_probe_reopens_with_a_doubled_cooldown() -> None:
    h = DeploymentHealth(S)
    for t in range(3):
        _fail(h, t)
    assert h.available(8)
    _fail(h, 8)
    assert h.state is BreakerState.OPEN
    assert h.recovers_at(8) == 18  # 5 s doubled
    assert h.available(18)
    _fail(h, 18)
    assert h.recovers_at(18) == 38  # capped at 20 s


def test_rate_limit_cools_down_without_opening() -> None:
    h = DeploymentHealth(S)
    h.begin(0)
    h.rate_limited(0, 3.0)
    assert h.state is BreakerState.CLOSED
    assert not h.available(2.9) and h.available(3.0)
    h.begin(0)
    h.rate_limited(10, None)
    assert h.recovers_at(10) == 12
    h.begin(0)
    h.rate_limited(20, 999)
    assert h.recovers_at(20) == 40  # capped


def test_caps_per_minute() -> None:
    h = DeploymentHealth(S)
    assert h.under_caps(0, rpm=2, tpm=None)
    h.begin(0)
    h.begin(0)
    assert not h.under_caps(1, rpm=2, tpm=None)
    assert h.under_caps(61, rpm=2, tpm=None)
    h.minute_tokens = 500
    assert not h.under_caps(62, rpm=None, tpm=500)


def test_key_pool_rotates_and_sets_keys_aside() -> None:
    pool = KeyPool(("a", "b"))
    assert [pool.pick(0), pool.pick(0), pool.pick(0)] == ["a", "b", "a"]
    pool.disable("b", 10)
    assert {pool.pick(1) for _ in range(3)} == {"a"}
    pool.disable("a", 10)
    assert pool.pick(1) is False and not pool.usable(1)
    assert pool.pick(10) in ("a", "b")
    assert KeyPool(()).pick(0) is None and KeyPool(()).usable(0)


def test_key_pool_counts_each_request_once_and_avoids_keys_on_demand() -> None:
    pool = KeyPool(("a", "b"))
    assert [pool.suspect("a", "r1", 0, 2, 60) for _ in range(3)] == [False] * 3
    assert pool.suspect("a", "r2", 1, 2, 60)  # a second request: confirmed
    assert pool.suspicions == {}
    assert pool.pick(0, avoid={"a"}) == "b" and pool.pick(0, avoid={"a"}) == "b"
    assert pool.pick(0, avoid={"a", "b"}) is False
    pool.disable("b", 10, "credential", 401)
    assert pool.set_aside(5) == [("#2", pool.aside["b"])] and pool.set_aside(10) == []
