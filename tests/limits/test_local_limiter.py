"""The in-process limiter on a fake clock: exactly what each window admits, leases, headers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from faregate.billing.types import KeyRecord
from faregate.errors import RateLimited
from faregate.limits.config import Limits, Plan
from faregate.limits.local import LocalLimiter

T0 = 1_700_000_000.0 - (1_700_000_000.0 % 86_400) + 3_600  # 01:00 UTC on some day


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def plans(**chat: int) -> dict[str, Plan]:
    return {"p": Plan.model_validate({"chat": chat, "images": {"rpm": 2}})}


def key(kid: str = "k1", **kw: Any) -> KeyRecord:
    return KeyRecord(kid, "a1", None, None, False, plan="p", **kw)


def limiter(clock: Clock, **chat: int) -> LocalLimiter:
    return LocalLimiter(Limits(default_plan="p"), plans(**chat), clock=clock)


async def refused(lim: LocalLimiter, k: KeyRecord, route: str = "chat") -> RateLimited:
    with pytest.raises(RateLimited) as exc:
        await lim.acquire(k, route)
    return exc.value


async def test_rpm_admits_exactly_the_limit_in_any_60_seconds() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=3)
    k = key()
    for step in (0.0, 10.0, 20.0):
        clock.now = T0 + step
        await lim.acquire(k, "chat")
    clock.now = T0 + 59.999
    err = await refused(lim, k)
    assert err.code == "rate_limit_exceeded"
    assert err.retry_after == 1  # 0.001 s, rounded up to one second
    assert err.message == "Rate limit reached: 3 requests per minute for chat on plan p."
    clock.now = T0 + 60.0  # the first leaves the window (t - 60, t]
    await lim.acquire(k, "chat")
    err = await refused(lim, k)
    assert err.retry_after == 10  # the one from T0 + 10 leaves at T0 + 70


async def test_rpm_guarantee_holds_for_random_arrivals() -> None:
    """Over random arrival times, no 60 s interval holds more than rpm admissions, and every
    refusal had exactly rpm admissions in the 60 s before it."""
    clock = Clock()
    lim = limiter(clock, rpm=7)
    k = key()
    rng = random.Random(5)
    admitted: list[float] = []
    for _ in range(2000):
        clock.now += rng.expovariate(1 / 4)
        try:
            await lim.acquire(k, "chat")
            admitted.append(clock.now)
        except RateLimited:
            recent = [t for t in admitted if t > clock.now - 60]
            assert len(recent) == 7
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u < t + 60) <= 7
    assert len(admitted) > 700  # at most 7 per minute over ~8000 s: the limit binds


async def test_refusals_are_not_counted_and_keys_and_routes_count_apart() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=1)
    await lim.acquire(key("k1"), "chat")
    for _ in range(5):
        await refused(lim, key("k1"))
    await lim.acquire(key("k2"), "chat")  # another key of the same account
    await lim.acquire(key("k1"), "images")  # another route class
    clock.now += 60
    await lim.acquire(key("k1"), "chat")


async def test_rpd_resets_at_utc_midnight() -> None:
    clock = Clock()
    lim = limiter(clock, rpd=2)
    k = key()
    await lim.acquire(k, "chat")
    await lim.acquire(k, "chat")
    midnight = T0 - 3_600 + 86_400
    err = await refused(lim, k)
    assert err.code == "requests_per_day_exceeded"
    assert err.retry_after == midnight - clock.now
    assert err.headers["x-ratelimit-reset-requests"] == str(int(midnight))
    assert "2 requests per day for chat on plan p" in err.message
    clock.now = midnight - 0.001
    await refused(lim, k)
    clock.now = midnight
    await lim.acquire(k, "chat")


async def test_tpm_counts_recorded_tokens() -> None:
    clock = Clock()
    lim = limiter(clock, tpm=100)
    k = key()
    lease = await lim.acquire(k, "chat")
    assert lease.headers["x-ratelimit-remaining-tokens"] == "100"
    await lim.record_tokens(k, "chat", 60)
    clock.now += 10
    await lim.acquire(k, "chat")  # 60 < 100: admitted, and can overshoot once
    await lim.record_tokens(k, "chat", 50)
    clock.now += 10
    err = await refused(lim, k)
    assert err.code == "tokens_per_minute_exceeded"
    assert err.retry_after == 40  # the 60 recorded at T0 leave at T0 + 60; 50 < 100
    assert err.headers["x-ratelimit-remaining-tokens"] == "0"
    assert err.headers["x-ratelimit-reset-tokens"] == str(int(T0 + 60))
    assert "100 tokens per minute" in err.message
    clock.now = T0 + 60
    lease = await lim.acquire(k, "chat")
    assert lease.headers["x-ratelimit-remaining-tokens"] == "50"


async def test_concurrency_slots_and_idempotent_release() -> None:
    clock = Clock()
    lim = limiter(clock, concurrency=2)
    k = key()
    first = await lim.acquire(k, "chat")
    second = await lim.acquire(k, "chat")
    err = await refused(lim, k)
    assert (err.code, err.retry_after) == ("concurrency_exceeded", 1)
    assert "2 concurrent requests" in err.message
    first.release()
    first.release()  # twice gives back one slot, not two
    third = await lim.acquire(k, "chat")
    await refused(lim, k)
    second.release()
    third.release()
    await lim.acquire(k, "chat")


async def test_headers_name_the_tightest_request_limit() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=5, rpd=3)
    k = key()
    lease = await lim.acquire(k, "chat")
    # rpd has fewer remaining (2 against 4): it is the one reported.
    midnight = int(T0 - 3_600 + 86_400)
    assert lease.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": str(midnight),
    }
    lim2 = limiter(clock, rpm=2, rpd=100)
    clock.now = T0 + 0.5
    h = (await lim2.acquire(k, "chat")).headers
    assert h["x-ratelimit-limit-requests"] == "2"
    assert h["x-ratelimit-remaining-requests"] == "1"
    assert h["x-ratelimit-reset-requests"] == str(int(T0) + 61)  # ceil(T0 + 0.5 + 60)
    clock.now = T0 + 5
    h = (await lim2.acquire(k, "chat")).headers
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert h["x-ratelimit-reset-requests"] == str(int(T0) + 61)  # when the oldest leaves
    err = await refused(lim2, k)
    assert err.retry_after == 56
    assert err.headers["x-ratelimit-remaining-requests"] == "0"


async def test_no_limits_no_headers_and_overrides_apply() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=1)
    assert (await lim.acquire(key(), "audio")).headers == {}
    lifted = key("k9", key_limits={"chat": {"rpm": None}})
    for _ in range(5):
        assert (await lim.acquire(lifted, "chat")).headers == {}
    raised = key("k8", account_limits={"chat": {"rpm": 3}})
    for _ in range(3):
        await lim.acquire(raised, "chat")
    err = await refused(lim, raised)
    assert err.message == (
        "Rate limit reached: 3 requests per minute for chat on this account (plan p)."
    )


async def test_share_divides_each_limit() -> None:
    clock = Clock()
    lim = LocalLimiter(Limits(default_plan="p"), plans(rpm=10, rpd=1), share=3, clock=clock)
    k = key()
    await lim.acquire(k, "chat")
    err = await refused(lim, k)
    assert err.code == "requests_per_day_exceeded"  # 1 // 3 is at least 1
    lim = LocalLimiter(Limits(default_plan="p"), plans(rpm=10), share=3, clock=clock)
    for _ in range(3):
        await lim.acquire(k, "chat")
    await refused(lim, k)


async def test_idle_keys_are_forgotten() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=5, concurrency=5)
    held = await lim.acquire(key("busy"), "chat")
    for i in range(100):
        (await lim.acquire(key(f"k{i}"), "chat")).release()
    clock.now += 61
    await lim.acquire(key("new"), "chat")
    assert set(lim._counters) == {("busy", "chat"), ("new", "chat")}
    held.release()


async def test_a_zero_limit_closes_the_route_class() -> None:
    clock = Clock()
    lim = limiter(clock, rpm=5)
    closed = key("k0", key_limits={"chat": {"rpm": 0}})
    err = await refused(lim, closed)
    assert (err.code, err.retry_after) == ("rate_limit_exceeded", 60)
    assert err.message == "Rate limit reached: 0 requests per minute for chat on this key."
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    err = await refused(lim, key("k1", account_limits={"images": {"rpd": 0}}), "images")
    assert err.code == "requests_per_day_exceeded"
