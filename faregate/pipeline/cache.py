"""The exact-match response cache: per model and per API key, never shared across keys.

A request's key is a hash of the API key id, the model and the normalized request (sorted JSON
without the fields that do not change the answer). Only whole (non-streaming) replies are
kept. In process by default (LRU with expiry); in Redis when `cache.redis_url` is set, so that
replicas share it. A cache that fails is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson

log = logging.getLogger("faregate.cache")

# Fields that do not change what the model answers.
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "store"})


def cache_key(key_id: str, model: str, body: dict[str, Any]) -> str:
    normalized = {k: v for k, v in body.items() if k not in _IGNORED}
    digest = hashlib.sha256(
        orjson.dumps([key_id, model, normalized], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    return f"faregate:cache:{digest}"


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self._items[key] = (time.monotonic() + ttl_seconds, value)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def close(self) -> None:
        self._items.clear()


class RedisCache:
    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis.get(key)
        except Exception as exc:  # a cache that fails is a miss
            log.warning("response cache unavailable: %s", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        try:
            await self._redis.set(key, value, ex=ttl_seconds)
        except Exception as exc:
            log.warning("response cache unavailable: %s", exc)

    async def close(self) -> None:
        await self._redis.aclose()


def make_cache(redis_url: str | None, max_entries: int) -> ResponseCache:
    return RedisCache(redis_url) if redis_url else MemoryCache(max_entries)
