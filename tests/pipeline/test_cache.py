"""The response cache: in process and in Redis (the real server at 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from faregate.pipeline.cache import MemoryCache, RedisCache, ResponseCache, cache_key

REDIS = "redis://127.0.0.1:6379/0"


def test_keys_ignore_what_does_not_change_the_answer() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    same = {**body, "stream": False, "user": "u", "metadata": {"a": 1}}
    assert cache_key("k1", "m", body) == cache_key("k1", "m", same)
    assert cache_key("k1", "m", body) != cache_key("k2", "m", body)  # never across keys
    assert cache_key("k1", "m", body) != cache_key("k1", "m", {**body, "temperature": 1})


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_get_set_and_expiry(backend: str) -> None:
    cache: ResponseCache = MemoryCache(10) if backend == "memory" else RedisCache(REDIS)
    key = f"faregate:test:{secrets.token_hex(8)}"
    try:
        assert await cache.get(key) is None
        await cache.set(key, b"reply", 1)
        assert await cache.get(key) == b"reply"
        await asyncio.sleep(1.2)
        assert await cache.get(key) is None
    finally:
        await cache.close()


async def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(2)
    await cache.set("a", b"1", 60)
    await cache.set("b", b"2", 60)
    assert await cache.get("a") == b"1"
    await cache.set("c", b"3", 60)
    assert await cache.get("b") is None
    assert await cache.get("a") == b"1"


async def test_an_unreachable_redis_is_a_miss_not_an_error() -> None:
    cache = RedisCache("redis://127.0.0.1:9/0")
    try:
        assert await cache.get("x") is None
        await cache.set("x", b"y", 10)
    finally:
        await cache.close()
