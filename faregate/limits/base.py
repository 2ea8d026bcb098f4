"""What the request path asks of a rate limiter."""

from __future__ import annotations

from typing import Protocol

from faregate.billing.types import KeyRecord


class Lease(Protocol):
    """An admitted request's place under its limits."""

    headers: dict[str, str]
    """The `X-RateLimit-*` headers for the response (names in lower case, as ASGI sends them;
    empty when no limit applies to the route class)."""

    def release(self) -> None:
        """Give back the concurrency slot (idempotent); called when the response has ended."""
        ...


class Limiter(Protocol):
    """Counts per API key id and route class, under the limits of the key's account's plan
    and its overrides. `faregate.limits.factory.make_limiter` picks one: `Unlimited`,
    `LocalLimiter` (one replica), or `FallbackLimiter` (`RedisLimiter`, shared by replicas,
    with the local limiter while Redis fails)."""

    async def acquire(self, key: KeyRecord, route: str) -> Lease:
        """Admit one request of route class `route` for `key`, or raise `RateLimited` (429,
        with `Retry-After`, its headers, and a message naming the limit that was hit)."""
        ...

    async def record_tokens(self, key: KeyRecord, route: str, tokens: int) -> None:
        """Count the tokens a finished request used against the token limits."""
        ...

    async def close(self) -> None: ...


class _OpenLease:
    headers: dict[str, str] = {}

    def release(self) -> None:
        return None


class Unlimited:
    """The limiter when no plan sets any limit: admits everything, adds no headers."""

    async def acquire(self, key: KeyRecord, route: str) -> Lease:
        return _OpenLease()

    async def record_tokens(self, key: KeyRecord, route: str, tokens: int) -> None:
        return None

    async def close(self) -> None:
        return None
