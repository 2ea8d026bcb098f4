"""The Redis limiter against the real Redis at 127.0.0.1:6379, under a prefix of its own.

Windows are timed by the Redis clock, so the tests that need time to pass write entries into
the past directly (the layout is `PREFIX:rl:{KEY_ID}:ROUTE:KIND`) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from faregate.billing.types import KeyRecord
from faregate.errors import RateLimited
from faregate.limits.config import Limits, Plan
from faregate.limits.redis_limiter import RedisLimiter

URL = os.environ.get("FAREGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")

Make = Callable[..., RedisLimiter]


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"fgtest-{os.getpid()}-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def make(prefix: str) -> AsyncIterator[Make]:
    made: list[RedisLimiter] = []

    def build(ttl: float = 60.0, **chat: int) -> RedisLimiter:
        limits = Limits(
            default_plan="p", redis_url=URL, key_prefix=prefix, concurrency_ttl_seconds=ttl
        )
        lim = RedisLimiter(limits, {"p": Plan.model_validate({"chat": chat})})
        made.append(lim)
        return lim

    yield build
    for lim in made:
        await lim.close()


def key(kid: str = "k1", **kw: Any) -> KeyRecord:
    return KeyRecord(kid, "a1", None, None, False, plan="p", **kw)


async def redis_ms(lim: RedisLimiter) -> int:
    sec, usec = await lim.redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def refused(lim: RedisLimiter, k: KeyRecord) -> RateLimited:
    with pytest.raises(RateLimited) as exc:
        await lim.acquire(k, "chat")
    return exc.value


async def test_two_replicas_together_admit_exactly_rpm(make: Make) -> None:
    a, b = make(rpm=20), make(rpm=20)
    k = key()

    async def one(lim: RedisLimiter) -> dict[str, str] | RateLimited:
        try:
            return (await lim.acquire(k, "chat")).headers
        except RateLimited as exc:
            return exc

    results = await asyncio.gather(*(one(a if i % 2 else b) for i in range(60)))
    admitted = [r for r in results if isinstance(r, dict)]
    refusals = [r for r in results if isinstance(r, RateLimited)]
    assert len(admitted) == 20
    remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for h in admitted)
    assert remaining == list(range(20))
    assert {r.code for r in refusals} == {"rate_limit_exceeded"}
    assert all(59 <= (r.retry_after or 0) <= 60 for r in refusals)
    assert refusals[0].headers["x-ratelimit-remaining-requests"] == "0"
    reset = int(refusals[0].headers["x-ratelimit-reset-requests"])
    assert 0 < reset - time.time() <= 61


async def test_the_window_is_the_last_60000_ms_of_the_redis_clock(make: Make, prefix: str) -> None:
    lim = make(rpm=3)
    k = key()
    log = f"{prefix}:rl:{{k1}}:chat:rpm"
    now = await redis_ms(lim)
    # One admission just out of the window, two well inside it.
    await lim.redis.zadd(log, {"old": now - 60_500, "a": now - 50_000, "b": now - 58_000})
    lease = await lim.acquire(k, "chat")  # "old" has left: 2 in the window, this makes 3
    assert lease.headers["x-ratelimit-remaining-requests"] == "0"
    # Remaining next rises when "b" (the oldest left) leaves, about 2 s from now.
    reset = int(lease.headers["x-ratelimit-reset-requests"])
    assert reset == -(-(now - 58_000 + 60_000) // 1000)
    err = await refused(lim, k)
    assert err.retry_after == 2  # "b" leaves in ~2 s (rounded up)
    assert await lim.redis.zcard(log) == 3  # the refusal was not counted


async def test_rpd_counts_the_utc_day(make: Make, prefix: str) -> None:
    lim = make(rpd=5)
    k = key()
    day_key = f"{prefix}:rl:{{k1}}:chat:rpd"
    today = await redis_ms(lim) // 86_400_000
    await lim.redis.hset(day_key, mapping={"day": today - 1, "n": 99})  # yesterday's count
    lease = await lim.acquire(k, "chat")
    midnight = (today + 1) * 86_400
    assert lease.headers == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": str(midnight),
    }
    await lim.redis.hset(day_key, mapping={"n": 5})
    err = await refused(lim, k)
    assert err.code == "requests_per_day_exceeded"
    assert abs((err.retry_after or 0) - (midnight - time.time())) <= 2
    assert 0 < await lim.redis.pttl(day_key) <= 86_400_000 + 60_000


async def test_tpm_refuses_while_the_window_holds_the_limit(make: Make, prefix: str) -> None:
    lim = make(tpm=1000)
    k = key()
    await lim.acquire(k, "chat")
    await lim.record_tokens(k, "chat", 700)
    await lim.record_tokens(k, "chat", 200)
    lease = await lim.acquire(k, "chat")
    assert lease.headers["x-ratelimit-remaining-tokens"] == "100"
    await lim.record_tokens(k, "chat", 400)  # in flight when admitted: the window overshoots
    err = await refused(lim, k)
    assert err.code == "tokens_per_minute_exceeded"
    assert err.headers["x-ratelimit-remaining-tokens"] == "0"
    assert 59 <= (err.retry_after or 0) <= 60  # the 700 must leave to go under 1000
    # Age the 700 out of the window: 600 remain and the key is admitted again.
    log = f"{prefix}:rl:{{k1}}:chat:tpm"
    first = (await lim.redis.zrange(log, 0, 0))[0]
    await lim.redis.zadd(log, {first: await redis_ms(lim) - 61_000})
    lease = await lim.acquire(k, "chat")
    assert lease.headers["x-ratelimit-remaining-tokens"] == "400"
    assert await lim.redis.get(f"{prefix}:rl:{{k1}}:chat:tps") == b"600"


async def test_concurrency_is_shared_and_release_is_idempotent(make: Make) -> None:
    a, b = make(concurrency=2), make(concurrency=2)
    k = key()
    first = await a.acquire(k, "chat")
    second = await b.acquire(k, "chat")
    err = await refused(a, k)
    assert (err.code, err.retry_after) == ("concurrency_exceeded", 1)
    first.release()
    first.release()
    await asyncio.sleep(0.05)  # the slot goes back in a task of its own
    third = await b.acquire(k, "chat")
    await refused(a, k)
    second.release()
    third.release()


async def test_a_crashed_replicas_slots_expire_and_live_ones_do_not(make: Make) -> None:
    crashed, live = make(ttl=1, concurrency=1), make(ttl=1, concurrency=1)
    await crashed.acquire(key("kc"), "chat")
    assert crashed._heartbeat is not None
    crashed._heartbeat.cancel()  # the replica dies: no release, no heartbeat
    held = await live.acquire(key("kl"), "chat")
    other = make(ttl=1, concurrency=1)
    await refused(other, key("kc"))
    await refused(other, key("kl"))
    await asyncio.sleep(1.6)
    await other.acquire(key("kc"), "chat")  # expired with its ttl
    await refused(other, key("kl"))  # kept alive by the heartbeat past its ttl
    held.release()


async def test_zero_limit_and_no_limit(make: Make) -> None:
    lim = make(rpm=5)
    err = await refused(lim, key("z", key_limits={"chat": {"rpm": 0}}))
    assert err.code == "rate_limit_exceeded"
    assert (await lim.acquire(key(), "images")).headers == {}


async def test_redis_errors_reach_the_caller_quickly() -> None:
    limits = Limits(default_plan="p", redis_url="redis://127.0.0.1:1/0")
    lim = RedisLimiter(limits, {"p": Plan.model_validate({"chat": {"rpm": 1}})})
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        await lim.acquire(key(), "chat")
    assert time.monotonic() - started < 1
    await lim.close()
