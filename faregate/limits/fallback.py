"""Redis first, local limits while Redis fails: a limiter that never hangs on its store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from faregate.billing.types import KeyRecord
from faregate.errors import FaregateError
from faregate.limits.base import Lease, Limiter
from faregate.limits.config import Limits
from faregate.limits.local import LocalLimiter
from faregate.metrics import Metrics

log = logging.getLogger("faregate.limits")

_UNTIMED: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()


class FallbackLimiter:
    """Each check goes to Redis within `limits.redis_timeout_seconds`. A Redis error or a
    timeout logs one warning per outage, counts `faregate_limiter_degraded_total` for every
    check that falls back, and serves the check from the local limiter (each replica takes
    `1/replicas` of every limit). For `redis_retry_seconds` after a failure checks go straight
    to the local limiter; then one check probes Redis again, and when it answers the shared
    limits apply again. The local windows start empty at an outage. A primary that says it
    is `bounded` (ends every call within that timeout itself, as the Redis limiter's batches
    do) gets no timer per check from here."""

    def __init__(
        self,
        primary: Limiter,
        local: LocalLimiter,
        metrics: Metrics,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.local = local
        self.metrics = metrics
        self.timeout = limits.redis_timeout_seconds
        self.backoff = limits.redis_retry_seconds
        self.clock = clock
        self.degraded = False
        self._retry_at = 0.0
        self._bounded = bool(getattr(primary, "bounded", False))

    def _within(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The timeout of one call to the primary (none when it bounds its own calls)."""
        return _UNTIMED if self._bounded else asyncio.timeout(self.timeout)

    def _due(self) -> bool:
        """Whether to ask Redis: always when healthy; once per back-off while degraded (the
        check that probes claims the next back-off, so concurrent ones do not pile on)."""
        if not self.degraded:
            return True
        now = self.clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.backoff
        return True

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = self.clock() + self.backoff
        if not self.degraded:
            self.degraded = True
            reason = "timed out" if isinstance(exc, TimeoutError) else f"failed ({exc})"
            log.warning(
                "rate-limit store %s; enforcing local limits (1/%d of each) until it answers",
                reason,
                self.local.share,
            )

    def _recovered(self) -> None:
        if self.degraded:
            self.degraded = False
            log.warning("rate-limit store answers again; shared limits apply")

    async def acquire(self, key: KeyRecord, route: str) -> Lease:
        if self._due():
            try:
                async with self._within():  # no task of its own, as wait_for
                    lease = await self.primary.acquire(key, route)
            except FaregateError:  # a refusal: Redis answered
                self._recovered()
                raise
            except Exception as exc:
                self._failed(exc)
            else:
                self._recovered()
                return lease
        self.metrics.limiter_degraded.inc()
        return self.local.acquire_now(key, route)

    async def record_tokens(self, key: KeyRecord, route: str, tokens: int) -> None:
        if not self.degraded:
            try:
                async with self._within():
                    await self.primary.record_tokens(key, route, tokens)
                return
            except Exception as exc:
                self._failed(exc)
        self.local.record_now(key, route, tokens)

    async def close(self) -> None:
        await self.primary.close()
        await self.local.close()
