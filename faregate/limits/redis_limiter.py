"""Limits shared by every replica through Redis: one atomic Lua script per acquire.

The windows are the same as the local limiter's (`faregate.limits.local`), kept in Redis and
timed by the Redis server's clock (ms), so N replicas together admit exactly what one would:

* rpm: a sorted set of admissions; a request at t is admitted only if fewer than `rpm` were
  admitted in (t - 60 000 ms, t], so no 60 s interval holds more than `rpm` of them.
* rpd: a (UTC day, count) hash; fewer than `rpd` admitted since the last UTC midnight.
* tpm: a sorted set of recorded token counts and their sum; refused while the tokens recorded
  in (t - 60 s, t] reach `tpm`.
* concurrency: a sorted set of open slots scored by their expiry. A lease removes its slot
  when the response ends; live slots are pushed on every ttl/3 by a heartbeat, so the slots of
  a crashed replica leave the set `concurrency_ttl_seconds` after its last heartbeat.

Counters are per API key id; keys are `PREFIX:rl:{KEY_ID}:ROUTE:KIND`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from faregate.billing.types import KeyRecord
from faregate.limits import lua
from faregate.limits.base import Lease
from faregate.limits.config import Effective, Limits, Plan, effective
from faregate.limits.redis_batch import ScriptBatch
from faregate.limits.verdict import Usage, blocked, headers, refusal

log = logging.getLogger("faregate.limits")

REFUSALS = {1: "rpm", 2: "rpd", 3: "tpm", 4: "concurrency"}


class RedisLease:
    __slots__ = ("_limiter", "_slot", "headers")

    def __init__(
        self, limiter: RedisLimiter, slot: tuple[str, str] | None, headers: dict[str, str]
    ) -> None:
        self._limiter = limiter
        self._slot = slot
        self.headers = headers

    def release(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            self._limiter.free(slot)


class RedisLimiter:
    """Shared, exact limits (see the module docstring); Redis errors propagate to the caller."""

    bounded = True
    """Every check and record ends within `limits.redis_timeout_seconds` (its batch's
    timeout, plus the loop turn it waits to be sent), so a caller needs no timer of its own."""

    def __init__(
        self,
        limits: Limits,
        plans: dict[str, Plan],
        *,
        client: redis.Redis | None = None,
    ) -> None:
        self.limits = limits
        self.plans = plans
        url = limits.redis_url or "redis://127.0.0.1:6379/0"
        timeout = limits.redis_timeout_seconds
        # A burst waits (within the timeout) for one of a bounded set of connections; a
        # command that fails on a connection Redis dropped (a restart) is tried once more.
        self.redis = client or redis.Redis.from_pool(
            redis.BlockingConnectionPool.from_url(
                url,
                max_connections=limits.redis_max_connections,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
            )
        )
        self._acquire = self.redis.register_script(lua.ACQUIRE)
        self._record = self.redis.register_script(lua.RECORD)
        self._refresh = self.redis.register_script(lua.REFRESH)
        self._batch = ScriptBatch(self.redis, timeout)
        self._ttl_ms = int(limits.concurrency_ttl_seconds * 1000)
        self._replica = secrets.token_hex(6)
        self._seq = itertools.count()
        self._live: dict[tuple[str, str], None] = {}  # open slots: (slot set, member)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    def _key(self, key_id: str, route: str) -> str:
        return f"{self.limits.key_prefix}:rl:{{{key_id}}}:{route}:"

    def effective(self, key: KeyRecord, route: str) -> Effective:
        return effective(
            self.limits, self.plans, key.plan, key.account_limits, key.key_limits, route
        )

    async def acquire(self, key: KeyRecord, route: str) -> Lease:
        eff = self.effective(key, route)
        lim = eff.limits
        if lim.empty:
            return RedisLease(self, None, {})
        closed = blocked(eff, time.time())
        if closed is not None:
            raise closed
        base = self._key(key.id, route)
        member = f"{self._replica}:{next(self._seq)}"
        reply = await self._batch.call(
            self._acquire,
            [base + "rpm", base + "rpd", base + "tpm", base + "tps", base + "slots"],
            [lim.rpm or 0, lim.rpd or 0, lim.tpm or 0, lim.concurrency or 0, member, self._ttl_ms],
        )
        status, retry, now, used, first, today, tokens, tfirst = (int(v) for v in reply)
        usage = Usage(
            now / 1000,
            rpm_used=used,
            rpm_oldest=first / 1000,
            rpd_used=today,
            tokens_used=tokens,
            tokens_oldest=tfirst / 1000,
        )
        if status:
            usage.refused, usage.retry_after = REFUSALS[status], retry / 1000
            raise refusal(eff, usage)
        slot = None
        if lim.concurrency is not None:
            slot = (base + "slots", member)
            self._live[slot] = None
            self._start_heartbeat()
        return RedisLease(self, slot, headers(lim, usage))

    async def record_tokens(self, key: KeyRecord, route: str, tokens: int) -> None:
        if tokens <= 0 or self.effective(key, route).limits.tpm is None:
            return
        base = self._key(key.id, route)
        member = f"{self._replica}:{next(self._seq)}:{tokens}"
        await self._batch.call(self._record, [base + "tpm", base + "tps"], [member, tokens])

    def free(self, slot: tuple[str, str]) -> None:
        """Give a slot back (from `release`, which cannot wait): in a task of its own; a
        failure leaves the slot to expire with its ttl."""
        self._live.pop(slot, None)
        try:
            task = asyncio.get_running_loop().create_task(self._free(slot))
        except RuntimeError:  # no loop: the slot expires
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _free(self, slot: tuple[str, str]) -> None:
        try:
            await asyncio.wait_for(
                self.redis.zrem(slot[0], slot[1]), self.limits.redis_timeout_seconds * 5
            )
        except Exception as exc:
            log.debug("could not free a concurrency slot (it will expire): %s", exc)

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        """Push the expiry of this replica's open slots on, every third of their ttl."""
        while self._live:
            await asyncio.sleep(self._ttl_ms / 3000)
            live = list(self._live)
            if not live:
                break
            try:
                await asyncio.wait_for(
                    self._refresh(
                        keys=[k for k, _ in live], args=[self._ttl_ms, *(m for _, m in live)]
                    ),
                    self.limits.redis_timeout_seconds * 5,
                )
            except Exception as exc:
                log.debug("could not refresh concurrency slots: %s", exc)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(BaseException):
                await self._heartbeat
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1)
        await self._batch.close()
        await self.redis.aclose()
