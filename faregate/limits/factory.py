"""The limiter the app runs with, chosen from the `[limits]` and `[plans]` config sections."""

from __future__ import annotations

from faregate.limits.base import Limiter, Unlimited
from faregate.limits.config import Limits, LimitsConfigError, Plan, any_limits, check_plans
from faregate.limits.fallback import FallbackLimiter
from faregate.limits.local import LocalLimiter
from faregate.metrics import Metrics


def make_limiter(limits: Limits, plans: dict[str, Plan], metrics: Metrics) -> Limiter:
    """`Unlimited` when nothing can limit a request; in process with one replica and no
    `redis_url`; else Redis, with the local limiter while Redis fails. Raises
    `LimitsConfigError` for limits that cannot hold (several replicas counting apart)."""
    try:
        check_plans(limits, plans)
    except ValueError as exc:
        raise LimitsConfigError(str(exc)) from None
    if limits.replicas > 1 and not limits.redis_url:
        raise LimitsConfigError(
            f"limits.replicas: {limits.replicas} replicas without limits.redis_url would each"
            f" admit the whole of every limit ({limits.replicas} times the plan); set"
            ' limits.redis_url = "redis://HOST:6379/0" so they share counters, or replicas = 1'
        )
    if not any_limits(limits, plans):
        return Unlimited()
    if not limits.redis_url:
        return LocalLimiter(limits, plans)
    from faregate.limits.redis_limiter import RedisLimiter  # only with Redis: it is large

    local = LocalLimiter(limits, plans, share=limits.replicas)
    return FallbackLimiter(RedisLimiter(limits, plans), local, metrics, limits)
