"""The fallback limiter: Redis first, local limits while it fails or stalls, back to Redis."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from harness import never_answers, tcp_server

from faregate.billing.types import KeyRecord
from faregate.errors import RateLimited
from faregate.limits.base import Lease
from faregate.limits.config import Limits, Plan
from faregate.limits.factory import make_limiter
from faregate.limits.fallback import FallbackLimiter
from faregate.limits.local import LocalLimiter
from faregate.metrics import Metrics

PLANS = {"p": Plan.model_validate({"chat": {"rpm": 4, "tpm": 100}})}
LIMITS = Limits(
    default_plan="p",
    redis_url="redis://127.0.0.1:1/0",
    replicas=2,
    redis_timeout_seconds=0.05,
    redis_retry_seconds=5,
)
KEY = KeyRecord("k1", "a1", None, None, False, plan="p")


class _Lease:
    headers = {"x-from": "primary"}

    def release(self) -> None:
        return None


class Primary:
    """A stand-in for the Redis limiter: fails, stalls, refuses or answers, as told."""

    def __init__(self) -> None:
        self.mode = "fail"
        self.calls = 0
        self.tokens = 0

    async def acquire(self, key: KeyRecord, route: str) -> Lease:
        self.calls += 1
        if self.mode == "fail":
            raise ConnectionError("connection refused")
        if self.mode == "stall":
            await asyncio.sleep(30)
        if self.mode == "refuse":
            raise RateLimited("no", retry_after=3)
        return _Lease()

    async def record_tokens(self, key: KeyRecord, route: str, tokens: int) -> None:
        if self.mode != "ok":
            raise ConnectionError("connection refused")
        self.tokens += tokens

    async def close(self) -> None:
        return None


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def build(primary: Primary, metrics: Metrics, clock: Clock) -> FallbackLimiter:
    local = LocalLimiter(LIMITS, PLANS, share=2)
    return FallbackLimiter(primary, local, metrics, LIMITS, clock=clock)


def degraded(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("faregate_limiter_degraded_total")
    return value or 0.0


async def test_failures_fall_back_once_per_back_off_and_recover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    primary, metrics, clock = Primary(), Metrics(), Clock()
    lim = build(primary, metrics, clock)
    caplog.set_level(logging.WARNING, "faregate.limits")
    lease = await lim.acquire(KEY, "chat")
    assert lease.headers["x-ratelimit-limit-requests"] == "2"  # 4 shared by 2 replicas
    await lim.acquire(KEY, "chat")
    with pytest.raises(RateLimited):  # the local share is spent
        await lim.acquire(KEY, "chat")
    assert primary.calls == 1  # in the back-off, checks go straight to the local limiter
    assert degraded(metrics) == 3
    clock.now += 5
    with pytest.raises(RateLimited):
        await lim.acquire(KEY, "chat")
    assert primary.calls == 2  # one probe after the back-off; it failed
    warnings = [r for r in caplog.records if "enforcing local limits" in r.message]
    assert len(warnings) == 1  # one warning per outage
    primary.mode = "ok"
    clock.now += 5
    assert (await lim.acquire(KEY, "chat")).headers == {"x-from": "primary"}
    assert not lim.degraded
    assert any("answers again" in r.message for r in caplog.records)
    await lim.acquire(KEY, "chat")
    assert primary.calls == 4
    assert degraded(metrics) == 4


async def test_a_stalled_store_costs_at_most_the_timeout() -> None:
    primary, metrics = Primary(), Metrics()
    primary.mode = "stall"
    lim = build(primary, metrics, Clock())
    started = time.monotonic()
    lease = await lim.acquire(KEY, "chat")
    assert time.monotonic() - started < 0.5
    assert lease.headers["x-ratelimit-remaining-requests"] == "1"
    assert lim.degraded
    assert degraded(metrics) == 1


async def test_a_refusal_from_the_store_is_a_refusal() -> None:
    primary, metrics = Primary(), Metrics()
    primary.mode = "refuse"
    lim = build(primary, metrics, Clock())
    with pytest.raises(RateLimited) as exc:
        await lim.acquire(KEY, "chat")
    assert exc.value.retry_after == 3
    assert degraded(metrics) == 0
    assert not lim.degraded


async def test_tokens_go_to_the_store_else_to_the_local_limiter() -> None:
    primary, metrics, clock = Primary(), Metrics(), Clock()
    primary.mode = "ok"
    lim = build(primary, metrics, clock)
    await lim.record_tokens(KEY, "chat", 30)
    assert primary.tokens == 30
    primary.mode = "fail"
    await lim.record_tokens(KEY, "chat", 60)  # fails over; local tpm is 100 / 2
    assert lim.degraded
    with pytest.raises(RateLimited) as exc:
        await lim.acquire(KEY, "chat")
    assert exc.value.code == "tokens_per_minute_exceeded"


async def test_a_dead_redis_never_hangs_a_request() -> None:
    metrics = Metrics()
    lim = make_limiter(LIMITS, PLANS, metrics)
    assert isinstance(lim, FallbackLimiter)
    started = time.monotonic()
    lease = await lim.acquire(KEY, "chat")
    lease.release()
    assert time.monotonic() - started < 0.5
    assert degraded(metrics) == 1
    await lim.close()


async def test_a_silent_redis_falls_back_within_the_timeout() -> None:
    async with tcp_server(never_answers) as port:
        metrics = Metrics()
        limits = LIMITS.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
        lim = make_limiter(limits, PLANS, metrics)
        assert isinstance(lim, FallbackLimiter) and getattr(lim.primary, "bounded", False)
        started = time.monotonic()
        lease = await lim.acquire(KEY, "chat")
        lease.release()
        assert time.monotonic() - started < 0.5
        assert lim.degraded and degraded(metrics) == 1
        await lim.close()
